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
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from typing import Protocol

TOOLS = ("ibnetdiscover", "iblinkinfo", "perfquery", "ibqueryerrors")
_ARG = re.compile(r"-[A-Za-z]|--[a-z][a-z-]{0,30}|0x[0-9a-fA-F]{1,16}|[0-9]{1,3}(?:,[0-9]{1,3}){0,254}|[A-Za-z0-9_]{1,32}")
STDERR_CAP = 64 << 10
READ_CHUNK = 1 << 16


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
            process = subprocess.Popen([executable, *argv[1:]], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, start_new_session=True)
        except OSError as exc:
            raise ToolError(tool, f"cannot run: {exc.strerror or exc}") from None
        out, err = _Capped(process.stdout, max_bytes), _Capped(process.stderr, STDERR_CAP)
        readers = [threading.Thread(target=capped.drain, daemon=True) for capped in (out, err)]
        for reader in readers:
            reader.start()
        deadline = time.monotonic() + timeout
        reason = None
        while process.poll() is None:
            if out.over:
                reason = f"output over {max_bytes} bytes"
                break
            if time.monotonic() >= deadline:
                reason = f"no answer within {timeout:g} s"
                break
            time.sleep(0.01)
        if reason is not None:
            _kill(process)
        for reader in readers:
            reader.join(timeout=5)
        if reason is None and out.over:
            reason = f"output over {max_bytes} bytes"
        if reason is not None:
            raise ToolError(tool, reason)
        stderr = err.text()
        if process.returncode != 0:
            raise ToolError(tool, f"exit status {process.returncode}: {stderr.strip()[:200]}")
        return ToolResult(out.text(), stderr)


class _Capped:
    """Reads a pipe to its end, keeping at most ``limit`` bytes; ``over`` once it had more."""

    def __init__(self, pipe, limit: int) -> None:  # noqa: ANN001 - a binary pipe
        self.pipe, self.limit = pipe, limit
        self.chunks: list[bytes] = []
        self.size = 0
        self.over = False

    def drain(self) -> None:
        try:
            while chunk := self.pipe.read1(READ_CHUNK):
                if self.size + len(chunk) > self.limit:
                    self.over = True
                    return  # the process is killed; what it still writes goes nowhere
                self.chunks.append(chunk)
                self.size += len(chunk)
        except (OSError, ValueError):
            return

    def text(self) -> str:
        return b"".join(self.chunks).decode("utf-8", "replace")


def _kill(process: subprocess.Popen) -> None:
    # Its own session: the tool and anything it started go together, by this process group only.
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass
