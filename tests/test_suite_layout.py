"""The suite's own layout (issue 16, item 9): a module named ``test_*`` holds tests and nothing
imports it; helpers and shared data live in support modules (``tests/**/<name>.py``), shared
fixtures in a ``conftest.py``, which nothing imports; bench/ never imports the tests."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def imported_modules(source: str) -> list[str]:
    """Every module an import statement names (``from a.b import c`` gives ``a.b`` and ``a.b.c``)."""
    names: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.append(node.module)
            names.extend(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def forbidden_imports(source: str) -> list[str]:
    """The imports of a test module or of a conftest in ``source``."""
    return sorted({name for name in imported_modules(source)
                   if (name.split(".")[0] in ("tests", "conftest"))
                   and any(part.startswith("test_") or part == "conftest" for part in name.split(".")[1:] or [name])})


def holds_tests(source: str) -> bool:
    return any(isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test")
               or isinstance(node, ast.ClassDef) and node.name.startswith("Test")
               for node in ast.parse(source).body)


def test_the_checks_catch_what_they_forbid() -> None:
    assert forbidden_imports("from tests.tsdb.test_scraper import server\n") == ["tests.tsdb.test_scraper",
                                                                                 "tests.tsdb.test_scraper.server"]
    assert forbidden_imports("from tests.dashboard.conftest import NODES\n")
    assert forbidden_imports("from tests.alerts import test_notify_dispatch\n")
    assert forbidden_imports("import conftest\n") == ["conftest"]
    assert forbidden_imports("from tests.alerts.notify_support import Clock\nimport pytest\n") == []
    assert not holds_tests('"""Helpers."""\ndef helper():\n    pass\n')
    assert holds_tests("def test_it():\n    pass\n") and holds_tests("class TestIt:\n    pass\n")


def test_every_test_module_holds_tests() -> None:
    empty = [str(p.relative_to(ROOT)) for p in sorted((ROOT / "tests").rglob("test_*.py"))
             if not holds_tests(p.read_text())]
    assert not empty, f"support modules named test_* (rename them, e.g. helpers.py): {empty}"


def test_no_module_imports_a_test_module_or_a_conftest() -> None:
    found = {str(p.relative_to(ROOT)): bad for p in sorted((ROOT / "tests").rglob("*.py"))
             if (bad := forbidden_imports(p.read_text()))}
    assert not found, ("move what is shared into a support module, and shared fixtures into the "
                       f"directory's conftest.py: {found}")


def test_bench_does_not_import_the_tests() -> None:
    found = {str(p.relative_to(ROOT)): names for p in sorted((ROOT / "bench").rglob("*.py"))
             if (names := [n for n in imported_modules(p.read_text()) if n.split(".")[0] == "tests"])}
    assert not found, f"bench/ imports from tests/ (move it into bench/ or the product): {found}"
