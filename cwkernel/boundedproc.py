"""Running another program with a time limit and capped output, and never waiting past the limit.

``subprocess.run(..., timeout=)`` kills the child at its timeout but then reads its pipes to their
end: a grandchild that inherited them (an ``ssh`` ControlMaster, a wrapper script's background
job) keeps the caller waiting for as long as it lives, and every byte the child writes is held.
Here the child gets a session of its own, the whole process group is killed at the limit or as
soon as the output passes its cap, and the pipes are read by threads that are not waited on past
the limit. No shell: ``argv`` goes to ``execve`` as given.
"""
from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from typing import IO, Mapping, Sequence

READ_CHUNK = 1 << 16
STDERR_CAP = 64 << 10
POLL_S = 0.01  # how often the output caps are looked at while the child runs


class ProcessTimeout(Exception):
    """No answer within the limit: the process group was killed."""


class OutputTooLarge(Exception):
    """The output passed its cap: the process group was killed."""


@dataclass(frozen=True)
class Finished:
    returncode: int
    stdout: str
    stderr: str
    duration_seconds: float


def run_bounded(argv: Sequence[str], timeout: float, max_stdout: int, max_stderr: int = STDERR_CAP,
                env: Mapping[str, str] | None = None) -> Finished:
    """Runs ``argv`` to its end within ``timeout`` seconds, keeping at most ``max_stdout`` bytes
    of its output and ``max_stderr`` of its errors (past the first cap: ``OutputTooLarge``).
    ``OSError`` when it cannot be started."""
    started = time.monotonic()
    process = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, env=None if env is None else dict(env),
                               start_new_session=True)
    out, err = Capped(process.stdout, max_stdout), Capped(process.stderr, max_stderr)
    readers = [threading.Thread(target=capped.drain, daemon=True) for capped in (out, err)]
    for reader in readers:
        reader.start()
    deadline = started + timeout
    try:
        while process.poll() is None:
            if out.over:
                raise OutputTooLarge(f"output over {max_stdout:,} bytes")
            if time.monotonic() >= deadline:
                raise ProcessTimeout(f"no answer within {timeout:g} s")
            try:
                process.wait(timeout=POLL_S)
            except subprocess.TimeoutExpired:
                pass
        # Ended: what it wrote is in the pipes, unless a child of its own still holds them open.
        for reader in readers:
            reader.join(timeout=max(0.0, deadline - time.monotonic()))
        if any(reader.is_alive() for reader in readers):
            raise ProcessTimeout(f"ended, but a process it started kept its output open past {timeout:g} s")
        if out.over:
            raise OutputTooLarge(f"output over {max_stdout:,} bytes")
    except (ProcessTimeout, OutputTooLarge):
        kill_group(process)
        raise
    return Finished(process.returncode, out.text(), err.text(), time.monotonic() - started)


class Capped:
    """Reads a pipe to its end, keeping at most ``limit`` bytes; ``over`` once it had more."""

    def __init__(self, pipe: IO[bytes] | None, limit: int) -> None:
        self.pipe, self.limit = pipe, limit
        self.chunks: list[bytes] = []
        self.size = 0
        self.over = False

    def drain(self) -> None:
        if self.pipe is None:
            return
        try:
            while chunk := self.pipe.read1(READ_CHUNK):  # type: ignore[attr-defined]
                if self.size + len(chunk) > self.limit:
                    self.over = True
                    return  # the process is killed; what it still writes goes nowhere
                self.chunks.append(chunk)
                self.size += len(chunk)
        except (OSError, ValueError):
            return
        finally:
            self.pipe.close()

    def text(self) -> str:
        return b"".join(self.chunks).decode("utf-8", "replace")


def kill_group(process: subprocess.Popen) -> None:
    """The process and everything it started, by its own process group (its session) only."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass
