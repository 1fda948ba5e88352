"""The interface every scheduler backend implements, and the bound on any answer it reads."""
from __future__ import annotations

from typing import Protocol, runtime_checkable

import httpx

from cwkernel import httpdeadline
from scheduler.actions_model import Action, Answer
from scheduler.errors import SchedulerError, SchedulerTimeout
from scheduler.model import SchedulerSnapshot

__all__ = ["Backend", "SchedulerError", "SchedulerTimeout", "MAX_ANSWER_BYTES", "read_answer"]

# squeue --json is about 5 kB a job and sinfo -N --json 3 kB a node: 16,384 nodes and 20,000 jobs
# fit with room. An answer past it (a command printing without end, a server streaming one) is
# refused when it gets there, not when memory runs out.
MAX_ANSWER_BYTES = 256 << 20


def read_answer(response: httpx.Response, what: str) -> str:
    """A streamed answer's text within ``MAX_ANSWER_BYTES``; read inside the request's
    ``httpdeadline.deadline``, which ends it at the poll's deadline however slowly it comes."""
    try:
        body = httpdeadline.read_capped(response, MAX_ANSWER_BYTES)
    except httpdeadline.AnswerTooLarge as exc:
        raise SchedulerError(f"{what}: {exc}") from None
    return body.decode(response.encoding or "utf-8", "replace")


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
