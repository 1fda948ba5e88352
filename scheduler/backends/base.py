"""The interface every scheduler backend implements, and the bound on any answer it reads."""
from __future__ import annotations

import time
from typing import Protocol, runtime_checkable

import httpx

from scheduler.actions_model import Action, Answer
from scheduler.errors import SchedulerError, SchedulerTimeout
from scheduler.model import SchedulerSnapshot

__all__ = ["Backend", "SchedulerError", "SchedulerTimeout", "MAX_ANSWER_BYTES", "read_answer"]

# squeue --json is about 5 kB a job and sinfo -N --json 3 kB a node: 16,384 nodes and 20,000 jobs
# fit with room. An answer past it (a command printing without end, a server streaming one) is
# refused when it gets there, not when memory runs out.
MAX_ANSWER_BYTES = 256 << 20


def read_answer(response: httpx.Response, deadline: float, timeout: float, what: str) -> str:
    """A streamed answer's text, read by ``deadline`` (httpx's timeout bounds each read, so a
    server sending a byte at a time would otherwise hold the poll) and within ``MAX_ANSWER_BYTES``."""
    chunks, size = [], 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > MAX_ANSWER_BYTES:
            raise SchedulerError(f"{what}: answer over {MAX_ANSWER_BYTES:,} bytes")
        if time.monotonic() > deadline:
            raise SchedulerTimeout(f"{what}: no answer within {timeout:.1f}s")
        chunks.append(chunk)
    return b"".join(chunks).decode(response.encoding or "utf-8", "replace")


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
