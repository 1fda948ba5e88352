"""The interface every scheduler backend implements."""
from __future__ import annotations

from typing import Protocol, runtime_checkable

from scheduler.actions_model import Action, Answer
from scheduler.errors import SchedulerError, SchedulerTimeout
from scheduler.model import SchedulerSnapshot

__all__ = ["Backend", "SchedulerError", "SchedulerTimeout"]


@runtime_checkable
class Backend(Protocol):
    name: str
    # Actions this backend can carry out; the others are refused before anything runs.
    supported_actions: frozenset[str]

    def fetch(self, timeout: float) -> SchedulerSnapshot:
        """All jobs and nodes now; raises ``SchedulerError`` (or a subclass) on failure."""
        ...

    def execute(self, action: Action, timeout: float) -> Answer:
        """Carry out a validated action and return the scheduler's answer (failure included)."""
        ...
