"""Ways to run a Slurm client command: a local process, or the simulator's HTTP command face.

Both take a tool name (``squeue``, ``sinfo``, ``scontrol``, ``scancel``) and an argument list, and give back
exit status, stdout and stderr, so the Slurm backend reads a real Slurm and the simulator the same
way. No shell is involved anywhere: arguments travel as a list from the caller to ``execve`` (or
as a JSON list to the simulator).

HTTP command protocol (what the simulator serves): ``POST {base_url}/{tool}`` with the JSON body
``{"args": ["--json"]}``, answered with ``{"returncode": 0, "stdout": "...", "stderr": ""}``.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from typing import Mapping, Protocol, Sequence

import httpx

from cwkernel import httpdeadline
from cwkernel.boundedproc import OutputTooLarge, ProcessTimeout, run_bounded
from scheduler.backends import base
from scheduler.backends.base import SchedulerError, SchedulerTimeout, read_answer

TOOLS = ("squeue", "sinfo", "scontrol", "scancel")


@dataclass(frozen=True)
class CommandOutput:
    returncode: int
    stdout: str
    stderr: str
    command: tuple[str, ...]
    duration_seconds: float


class CommandRunner(Protocol):
    def run(self, tool: str, args: Sequence[str], timeout: float) -> CommandOutput: ...


class LocalRunner:
    """Runs ``prefix + commands[tool] + args`` as a process.

    ``commands`` maps each tool to its argument vector, so a site can point at other paths
    (``/opt/slurm/bin/squeue``) or at the simulator's executables
    (``["clusterwatch", "simulate", "slurm", "squeue"]``); ``prefix`` runs them elsewhere, e.g.
    ``["nsenter", "-t", PID, "-n"]`` to reach a Slurm in another network namespace.
    """

    def __init__(self, commands: Mapping[str, Sequence[str]] | None = None, prefix: Sequence[str] = (),
                 env: Mapping[str, str] | None = None) -> None:
        self.commands = {tool: [tool] for tool in TOOLS}
        for tool, argv in (commands or {}).items():
            if tool not in TOOLS:
                raise ValueError(f"unknown Slurm tool {tool!r} (expected one of {', '.join(TOOLS)})")
            if isinstance(argv, str) or not argv:
                raise ValueError(f"command for {tool} must be a non-empty argument list")
            self.commands[tool] = list(argv)
        self.prefix = list(prefix)
        self.env = None if env is None else {**os.environ, **env}

    def run(self, tool: str, args: Sequence[str], timeout: float) -> CommandOutput:
        argv = tuple(self.prefix + self.commands[tool] + list(args))
        try:
            done = run_bounded(argv, timeout, base.MAX_ANSWER_BYTES, env=self.env)
        except ProcessTimeout as exc:
            raise SchedulerTimeout(f"{' '.join(argv)}: {exc}") from None
        except OutputTooLarge as exc:
            raise SchedulerError(f"{' '.join(argv)}: {exc}") from None
        except OSError as exc:
            raise SchedulerError(f"{' '.join(argv)}: cannot run ({exc})") from exc
        return CommandOutput(done.returncode, done.stdout, done.stderr, argv, done.duration_seconds)


class HttpRunner:
    """Sends the tool and its arguments to an HTTP command face (the simulator's)."""

    def __init__(self, base_url: str, token: str | None = None, client: httpx.Client | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {"X-SLURM-USER-TOKEN": token} if token else {}
        self.client = client or httpdeadline.client(headers=headers)

    def run(self, tool: str, args: Sequence[str], timeout: float) -> CommandOutput:
        if tool not in TOOLS:
            raise ValueError(f"unknown Slurm tool {tool!r}")
        url = f"{self.base_url}/{tool}"
        command = (f"POST {url}", *args)
        started = time.monotonic()
        try:
            with httpdeadline.deadline(timeout) as extensions, \
                    self.client.stream("POST", url, json={"args": list(args)}, timeout=timeout,
                                       extensions=extensions) as response:
                text = read_answer(response, url)
        except httpx.TimeoutException as exc:
            raise SchedulerTimeout(f"{url}: no answer within {timeout:.1f}s") from exc
        except httpx.HTTPError as exc:
            raise SchedulerError(f"{url}: {exc}") from exc
        if response.status_code != 200:
            raise SchedulerError(f"{url}: HTTP {response.status_code}: {text[:200]}")
        try:
            body = json.loads(text)
            output = CommandOutput(int(body["returncode"]), str(body.get("stdout", "")),
                                   str(body.get("stderr", "")), command, time.monotonic() - started)
        except (ValueError, KeyError, TypeError, RecursionError) as exc:
            raise SchedulerError(f"{url}: not a command answer ({type(exc).__name__}): {text[:200]}") from None
        return output
