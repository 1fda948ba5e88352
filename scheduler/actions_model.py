"""A validated action request: what the backends receive (never raw user input)."""
from __future__ import annotations

from dataclasses import dataclass

DRAIN = "drain"
RESUME = "resume"
REQUEUE = "requeue"
REBOOT = "reboot"
SIGNAL = "signal"  # ask a job's batch script to checkpoint (scheduler.checkpoint)
ACTIONS = (DRAIN, RESUME, REQUEUE, REBOOT, SIGNAL)


@dataclass(frozen=True)
class Action:
    """``target`` is a node name (drain, resume, reboot) or a job id (requeue, signal)."""

    kind: str
    target: str
    actor: str
    reason: str = ""
    next_state: str = ""
    asap: bool = True
    signal: str = ""  # signal: the signal name without SIG (USR1)


@dataclass(frozen=True)
class Answer:
    """What the scheduler said to one action."""

    ok: bool
    message: str
    returncode: int | None
    command: tuple[str, ...]
