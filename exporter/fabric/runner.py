"""Running infiniband-diags' tools: argv only, a time limit and an output cap on every call.

``ToolRunner`` is the one interface the sweep reads the fabric through; ``SubprocessRunner`` runs
the real binaries (Debian's ``infiniband-diags``), the simulator answers the same argv with text
in the same formats. Only the four tools are allowed and every argument is checked against what
the sweep builds (flags, hex GUIDs, port lists, a CA name), so nothing from a label or a file
reaches a command line unvalidated.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Protocol

from cwkernel.boundedproc import OutputTooLarge, ProcessTimeout, run_bounded

TOOLS = ("ibnetdiscover", "iblinkinfo", "perfquery", "ibqueryerrors")
_ARG = re.compile(r"-[A-Za-z]|--[a-z][a-z-]{0,30}|0x[0-9a-fA-F]{1,16}|[0-9]{1,3}(?:,[0-9]{1,3}){0,254}|[A-Za-z0-9_]{1,32}")


class ToolError(Exception):
    """A tool that could not give an answer: not installed, timed out, too much output, failed."""

    def __init__(self, tool: str, reason: str) -> None:
        super().__init__(f"{tool}: {reason}")
        self.tool = tool
        self.reason = reason


@dataclass(frozen=True)
class ToolResult:
    stdout: str
    stderr: str = ""


class ToolRunner(Protocol):
    def run(self, argv: list[str], timeout: float, max_bytes: int) -> ToolResult:
        """Run ``argv`` (its first element one of ``TOOLS``); raise ``ToolError`` when it gives no answer."""


def check_argv(argv: list[str]) -> None:
    if not argv or argv[0] not in TOOLS:
        raise ToolError(argv[0] if argv else "?", f"not a fabric tool (allowed: {', '.join(TOOLS)})")
    for arg in argv[1:]:
        if not _ARG.fullmatch(arg):
            raise ToolError(argv[0], f"refused argument {arg[:40]!r}")


class SubprocessRunner:
    """The real tools, found on PATH (or under ``directory``)."""

    def __init__(self, directory: str | None = None) -> None:
        self.directory = directory

    def run(self, argv: list[str], timeout: float, max_bytes: int) -> ToolResult:
        check_argv(argv)
        tool = argv[0]
        executable = os.path.join(self.directory, tool) if self.directory else tool
        try:
            done = run_bounded([executable, *argv[1:]], timeout, max_bytes)
        except (ProcessTimeout, OutputTooLarge) as exc:
            raise ToolError(tool, str(exc)) from None
        except OSError as exc:
            raise ToolError(tool, f"cannot run: {exc.strerror or exc}") from None
        if done.returncode != 0:
            raise ToolError(tool, f"exit status {done.returncode}: {done.stderr.strip()[:200]}")
        return ToolResult(done.stdout, done.stderr)
