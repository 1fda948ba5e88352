"""The product's layers, held by test: imports flow one way, down ``LAYERS``, no package imports
what its docstring's "Must not touch" line names, and no two top-level packages import each other.

Every import counts, inside functions too (a lazy import is still a dependency), except under
``if TYPE_CHECKING:`` (annotations only). The product is the packages pyproject.toml installs;
tests/ and bench/ may import anything.
"""
from __future__ import annotations

import ast
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Bottom first. A package imports only packages of the layers below its own: not its own layer's
# other packages, never a layer above.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("cwkernel",),                           # Component/build_app, settings, errors, durations, auth, metric tables
    ("tsdb", "exporter", "scheduler"),       # the store; the per-node exporter; the Slurm adapter
    ("simulator", "alerts"),                 # a fake cluster over the real exporter; rules, evaluator, pipeline
    ("remediation", "dashboard"),            # the automation engine; the web UI
    ("clusterwatch",),                       # the CLI and the wiring of the components into processes
)

# Each package's "Must not touch" line, as (forbidden package or module, the one door through it).
# Packages of a layer above or beside are forbidden by LAYERS already; these name the ones below.
MUST_NOT_TOUCH: dict[str, tuple[tuple[str, str | None], ...]] = {
    "simulator": (("tsdb", None),),
    "alerts": (("tsdb", "tsdb.client"), ("exporter", None), ("scheduler", None)),
    "remediation": (("tsdb", "tsdb.client"), ("exporter", None)),
    "dashboard": (("tsdb", "tsdb.client"), ("exporter", None)),
}

# Holes that are known and have an issue: (importing module, imported module) -> why it is still
# there. A hole that is closed must leave this list (test_known_holes_are_still_open).
KNOWN_HOLES: dict[tuple[str, str], str] = {}


@dataclass(frozen=True)
class Import:
    module: str    # the importing module, e.g. "alerts.api"
    line: int
    target: str    # the imported module, e.g. "cwkernel.auth"

    @property
    def site(self) -> str:
        return f"{self.module} (line {self.line}) imports {self.target}"


def product_packages(root: Path = ROOT) -> list[str]:
    """The top-level packages pyproject.toml installs."""
    include = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    return sorted(name.rstrip("*") for name in include)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _module_names(root: Path, packages: list[str]) -> dict[str, Path]:
    modules = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def imports_of(root: Path, packages: list[str]) -> list[Import]:
    """Every import in the packages' modules, resolved to the module it loads."""
    modules = _module_names(root, packages)
    found = []
    for name, path in modules.items():
        is_package = path.name == "__init__.py"

        def visit(node: ast.AST) -> None:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.If) and _is_type_checking(child):
                    for other in child.orelse:
                        visit_one(other)
                else:
                    visit_one(child)

        def visit_one(node: ast.AST) -> None:
            if isinstance(node, ast.Import):
                found.extend(Import(name, node.lineno, alias.name) for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parent = name.split(".") if is_package else name.split(".")[:-1]
                    parent = parent[:len(parent) - node.level + 1]
                    base = ".".join(parent + ([node.module] if node.module else []))
                for alias in node.names:  # `from pkg import module` loads pkg.module
                    target = f"{base}.{alias.name}"
                    found.append(Import(name, node.lineno, target if target in modules else base))
            visit(node)

        visit(ast.parse(path.read_text(), str(path)))
    return found


def _layer_of(layers: tuple[tuple[str, ...], ...]) -> dict[str, int]:
    return {package: index for index, layer in enumerate(layers) for package in layer}


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def layer_violations(imports: list[Import], layers: tuple[tuple[str, ...], ...],
                     must_not_touch: dict[str, tuple[tuple[str, str | None], ...]],
                     known: dict[tuple[str, str], str] | None = None) -> list[str]:
    """One line per import that breaks the order of layers or a "Must not touch" rule."""
    layer = _layer_of(layers)
    problems = []
    for imp in imports:
        source, target = imp.module.split(".")[0], imp.target.split(".")[0]
        if source == target or target not in layer or (imp.module, imp.target) in (known or {}):
            continue
        if layer[target] > layer[source]:
            problems.append(f"{imp.site}: {source} is below {target} (imports flow down: "
                            f"{' < '.join('/'.join(names) for names in layers)})")
        elif layer[target] == layer[source]:
            problems.append(f"{imp.site}: {source} and {target} are one layer's peers; neither imports the other")
        for forbidden, door in must_not_touch.get(source, ()):
            if _within(imp.target, forbidden) and not (door and _within(imp.target, door)):
                through = f" except through {door}" if door else ""
                problems.append(f"{imp.site}: {source} must not touch {forbidden}{through} "
                                f"(its docstring's \"Must not touch\")")
    return list(dict.fromkeys(problems))  # `from a.b import c, d` is one line, not two


def package_cycles(imports: list[Import]) -> list[str]:
    """One line per import cycle between top-level packages, with an import of each step."""
    edges: dict[str, dict[str, Import]] = {}
    for imp in imports:
        source, target = imp.module.split(".")[0], imp.target.split(".")[0]
        if source != target:
            edges.setdefault(source, {}).setdefault(target, imp)
    cycles, seen = [], set()

    def walk(path: list[str]) -> None:
        for target in sorted(edges.get(path[-1], {})):
            if target == path[0]:
                key = frozenset(path)
                if key not in seen:
                    seen.add(key)
                    steps = [edges[a][b].site for a, b in zip(path, path[1:] + path[:1])]
                    cycles.append(" -> ".join(path + path[:1]) + ": " + "; ".join(steps))
            elif target not in path and target > path[0]:  # each cycle once, from its smallest package
                walk(path + [target])

    for start in sorted(edges):
        walk([start])
    return cycles


def docstring_of(root: Path, package: str) -> str:
    return ast.get_docstring(ast.parse((root / package / "__init__.py").read_text())) or ""


def must_not_touch_line(docstring: str) -> str:
    match = re.search(r"^Must not touch:(.*?)(?:\n\n|\Z)", docstring, re.M | re.S)
    return " ".join(match.group(1).split()) if match else ""


# --- the product ------------------------------------------------------------------------------


def test_every_product_package_has_a_layer():
    assert sorted(_layer_of(LAYERS)) == product_packages(), \
        "LAYERS and pyproject.toml's [tool.setuptools.packages.find] must name the same packages"


def test_imports_flow_down_the_layers_and_keep_out_of_what_each_package_must_not_touch():
    problems = layer_violations(imports_of(ROOT, product_packages()), LAYERS, MUST_NOT_TOUCH, KNOWN_HOLES)
    assert not problems, "layer rules broken (tests/test_layers.py):\n" + "\n".join(problems)


def test_no_import_cycle_between_packages():
    cycles = package_cycles(imports_of(ROOT, product_packages()))
    assert not cycles, "import cycles between packages:\n" + "\n".join(cycles)


def test_each_package_docstring_says_what_it_owns_and_must_not_touch():
    for package in product_packages():
        docstring = docstring_of(ROOT, package)
        line = must_not_touch_line(docstring)
        assert "\nOwns:" in docstring and line, f"{package}/__init__.py: no 'Owns:' or 'Must not touch:' paragraph"
        for forbidden, door in MUST_NOT_TOUCH.get(package, ()):
            for name in filter(None, (forbidden, door)):
                assert f"``{name}``" in line, \
                    f"{package}/__init__.py: 'Must not touch' does not name ``{name}``, which this test holds it to"


def test_known_holes_are_still_open():
    imports = {(imp.module, imp.target) for imp in imports_of(ROOT, product_packages())}
    closed = [f"{module} -> {target}" for module, target in KNOWN_HOLES if (module, target) not in imports]
    assert not closed, "closed holes: remove them from KNOWN_HOLES:\n" + "\n".join(closed)


# --- the checker catches what it is for ---------------------------------------------------------


def _tree(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_the_checker_reports_a_forbidden_import_an_upward_import_and_a_cycle(tmp_path):
    _tree(tmp_path, {
        "base/__init__.py": "",
        "base/util.py": "def late():\n    from top import app  # inside a function: still a dependency\n",
        "mid/__init__.py": "",
        "mid/api.py": "from base import util\n",
        "mid/internals.py": "",
        "top/__init__.py": "",
        "top/app.py": ("from typing import TYPE_CHECKING\n"
                       "from mid import api\n"
                       "from mid.internals import x\n"
                       "from . import other\n"
                       "if TYPE_CHECKING:\n    from mid import internals as y\n"),
        "top/other.py": "import mid.internals\n",
    })
    layers = (("base",), ("mid",), ("top",))
    rules = {"top": (("mid", "mid.api"),)}
    imports = imports_of(tmp_path, ["base", "mid", "top"])

    problems = layer_violations(imports, layers, rules)
    assert problems == [
        "base.util (line 2) imports top.app: base is below top (imports flow down: base < mid < top)",
        "top.app (line 3) imports mid.internals: top must not touch mid except through mid.api "
        "(its docstring's \"Must not touch\")",
        "top.other (line 1) imports mid.internals: top must not touch mid except through mid.api "
        "(its docstring's \"Must not touch\")",
    ]
    assert package_cycles(imports) == [
        "base -> top -> mid -> base: base.util (line 2) imports top.app; top.app (line 2) imports mid.api; "
        "mid.api (line 1) imports base.util"]
    assert layer_violations(imports, layers, rules, {("top.app", "mid.internals"): "known",
                                                     ("top.other", "mid.internals"): "known",
                                                     ("base.util", "top.app"): "known"}) == []


def test_the_checker_reports_peers_importing_each_other(tmp_path):
    _tree(tmp_path, {"left/__init__.py": "import right\n", "right/__init__.py": ""})
    problems = layer_violations(imports_of(tmp_path, ["left", "right"]), (("left", "right"),), {})
    assert problems == ["left (line 1) imports right: left and right are one layer's peers; neither imports the other"]
