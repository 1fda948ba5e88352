"""Slurm through its client commands: ``squeue``/``sinfo`` JSON to read, ``scontrol`` to act,
``scancel --signal --batch`` to ask a job to checkpoint.

Works over any ``CommandRunner``: the real binaries (``LocalRunner``), the same in a network
namespace (a prefix), or the simulator's Slurm face (its executables, or ``HttpRunner``).
"""
from __future__ import annotations

import time
from typing import Callable, Sequence

from scheduler.actions_model import DRAIN, REBOOT, REQUEUE, RESUME, SIGNAL, Action, Answer
from scheduler.backends.base import SchedulerError, SchedulerTimeout
from scheduler.backends.runners import CommandOutput, CommandRunner
from scheduler.checkpoint import scancel_args
from scheduler.model import SchedulerSnapshot
from scheduler.parsers import load_document, parse_jobs, parse_nodes, source_info

# -N gives one record per node in the grouped sinfo shape of 23.02+; 22.05 accepts and ignores it.
DEFAULT_SQUEUE_ARGS = ("--json",)
DEFAULT_SINFO_ARGS = ("-N", "--json")


def scontrol_args(action: Action) -> list[str]:
    """The scontrol argument vector for a validated action (one node or job, never a list)."""
    if action.kind == DRAIN:
        return ["update", f"NodeName={action.target}", "State=DRAIN", f"Reason={action.reason}"]
    if action.kind == RESUME:
        return ["update", f"NodeName={action.target}", "State=RESUME"]
    if action.kind == REQUEUE:
        return ["requeue", action.target]
    if action.kind == REBOOT:
        args = ["reboot"]
        if action.asap:
            args.append("ASAP")
        args.append(f"nextstate={action.next_state}")
        if action.reason:
            args.append(f"reason={action.reason}")
        return args + [action.target]
    raise ValueError(f"unknown action {action.kind!r}")


class SlurmCommandBackend:
    supported_actions = frozenset({DRAIN, RESUME, REQUEUE, REBOOT, SIGNAL})

    def __init__(self, runner: CommandRunner, name: str = "slurm-cli",
                 squeue_args: Sequence[str] = DEFAULT_SQUEUE_ARGS,
                 sinfo_args: Sequence[str] = DEFAULT_SINFO_ARGS,
                 wall_clock: Callable[[], float] = time.time) -> None:
        self.runner = runner
        self.name = name
        self.squeue_args = list(squeue_args)
        self.sinfo_args = list(sinfo_args)
        self._wall_clock = wall_clock

    def _json(self, tool: str, args: list[str], deadline: float) -> dict:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise SchedulerTimeout(f"{tool}: poll timeout used up before it ran")
        output = self.runner.run(tool, args, remaining)
        if output.returncode != 0:
            raise SchedulerError(f"{' '.join(output.command)} exited {output.returncode}: "
                                 f"{_message(output)}")
        return load_document(output.stdout, tool)

    def fetch(self, timeout: float) -> SchedulerSnapshot:
        deadline = time.monotonic() + timeout
        jobs_document = self._json("squeue", self.squeue_args, deadline)
        nodes_document = self._json("sinfo", self.sinfo_args, deadline)
        return SchedulerSnapshot(
            jobs=tuple(parse_jobs(jobs_document)),
            nodes=tuple(parse_nodes(nodes_document)),
            taken_at=self._wall_clock(),
            source=source_info(jobs_document, self.name),
        )

    def execute(self, action: Action, timeout: float) -> Answer:
        if action.kind == SIGNAL:
            output = self.runner.run("scancel", scancel_args(action.target, action.signal), timeout)
        else:
            output = self.runner.run("scontrol", scontrol_args(action), timeout)
        return Answer(ok=output.returncode == 0, message=_message(output) or "ok",
                      returncode=output.returncode, command=output.command)


def _message(output: CommandOutput) -> str:
    return " ".join(part.strip() for part in (output.stdout, output.stderr) if part.strip())[:2000]
