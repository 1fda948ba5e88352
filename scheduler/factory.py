"""``build_scheduler``: the one entry point the CLI uses to get a scheduler adapter.

Kinds:
- ``slurm-cli``: the local Slurm client commands. Options: ``squeue``, ``sinfo``, ``scontrol``
  (argument vectors or paths, to point at other binaries or at the simulator's executables),
  ``command_prefix`` (e.g. ``["nsenter", "-t", PID, "-n"]``), ``squeue_args``, ``sinfo_args``,
  ``env``.
- ``slurmrestd``: ``url`` of slurmrestd; options ``token`` (JWT, sent as X-SLURM-USER-TOKEN),
  ``user_name``, ``api_version`` (discovered when omitted).
- ``simulator``: ``url`` of the simulator's Slurm command face (see
  ``scheduler.backends.runners``); the same Slurm command backend as ``slurm-cli``, so the real
  and the simulated Slurm are read by the same code.
Common options: ``min_interval`` (default 15 s), ``timeout`` (poll, default 120 s),
``action_timeout`` (default 30 s), ``audit`` (a callable receiving ``AuditRecord``).
"""
from __future__ import annotations

import shlex
from typing import Any, Sequence

from scheduler.adapter import SchedulerAdapter
from scheduler.backends.runners import TOOLS, HttpRunner, LocalRunner
from scheduler.backends.slurm_commands import DEFAULT_SINFO_ARGS, DEFAULT_SQUEUE_ARGS, SlurmCommandBackend
from scheduler.backends.slurmrestd import SlurmRestBackend

KINDS = ("slurm-cli", "slurmrestd", "simulator")
_ADAPTER_OPTIONS = ("min_interval", "timeout", "action_timeout", "audit", "wall_clock", "monotonic")


def _argv(value: str | Sequence[str]) -> list[str]:
    # A path with spaces is rare, a command with arguments ("clusterwatch simulate slurm squeue")
    # common: strings are split like a shell would, but nothing is ever run through a shell.
    return shlex.split(value) if isinstance(value, str) else list(value)


def build_scheduler(kind: str, url: str | None = None, **options: Any) -> SchedulerAdapter:
    """A ready ``SchedulerAdapter`` (not yet polling: call ``start()`` or ``refresh()``)."""
    adapter_options = {key: options.pop(key) for key in _ADAPTER_OPTIONS if key in options}
    # The backend stamps its snapshots (the interruptions' times) with the adapter's clock.
    clock = {"wall_clock": adapter_options["wall_clock"]} if "wall_clock" in adapter_options else {}
    squeue_args = options.pop("squeue_args", DEFAULT_SQUEUE_ARGS)
    sinfo_args = options.pop("sinfo_args", DEFAULT_SINFO_ARGS)
    if kind == "slurm-cli":
        commands = {tool: _argv(options.pop(tool)) for tool in TOOLS if options.get(tool)}
        for tool in TOOLS:
            options.pop(tool, None)
        runner = LocalRunner(commands, prefix=_argv(options.pop("command_prefix", ()) or ()),
                             env=options.pop("env", None))
        backend: Any = SlurmCommandBackend(runner, "slurm-cli", squeue_args, sinfo_args, **clock)
    elif kind == "simulator":
        if not url:
            raise ValueError("the simulator scheduler needs a url (its Slurm command face)")
        backend = SlurmCommandBackend(HttpRunner(url, token=options.pop("token", None)), "simulator",
                                      squeue_args, sinfo_args, **clock)
    elif kind == "slurmrestd":
        if not url:
            raise ValueError("the slurmrestd scheduler needs a url")
        backend = SlurmRestBackend(url, token=options.pop("token", None), user_name=options.pop("user_name", None),
                                   api_version=options.pop("api_version", None), **clock)
    else:
        raise ValueError(f"unknown scheduler kind {kind!r} (expected one of {', '.join(KINDS)})")
    if options:
        raise ValueError(f"unknown options for {kind}: {', '.join(sorted(options))}")
    return SchedulerAdapter(backend, **adapter_options)
