"""Shared by the fabric tests: the infiniband-diags samples and fake tool executables."""
from __future__ import annotations

import stat
import sys
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "infiniband-diags"


def read(name: str) -> str:
    return (FIXTURES / name).read_text()


def tool(directory: Path, name: str, body: str) -> None:
    """An executable ``directory/name`` running ``body`` (Python, with sys and time imported)."""
    path = directory / name
    path.write_text(f"#!{sys.executable}\nimport sys, time\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
