"""A validated action request: what the backends receive (never raw user input)."""
from __future__ import annotations

from dataclasses import dataclass

DRAIN = "drain"
RESUME = "resume"
REQUEUE = "requeue"
REBOOT = "reboot"
ACTIONS = (DRAIN, RESUME, REQUEUE, REBOOT)


@dataclass(frozen=True)
class Action:
    """``target`` is a node name (drain, resume, reboot) or a job id (requeue)."""

    kind: str
    target: str
    actor: str
    reason: str = ""
    next_state: str = ""
    asap: bool = True


@dataclass(frozen=True)
class Answer:
    """What the scheduler said to one action."""

    ok: bool
    message: str
    returncode: int | None
    command: tuple[str, ...]
