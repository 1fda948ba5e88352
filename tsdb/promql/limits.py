"""Per-query limits: a deadline and a sample budget, as Prometheus's ``--query.timeout`` and
``--query.max-samples``, enforced cooperatively.

Python cannot stop a thread, so the evaluator asks: ``QueryGuard.check()`` at every node and in
every loop over steps or series raises the timeout once the deadline has passed, and
``charge(n)`` is called before anything of ``n`` samples is allocated (a store read, a subquery's
steps, a function's output), raising before the memory is taken. The budget counts what
Prometheus counts: the samples a query holds in memory at once. When a node of the tree is done,
what its operands held is released and its own result charged (``settle``).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

from tsdb.promql.values import PromQLError

DEFAULT_TIMEOUT_S = 120.0
DEFAULT_MAX_SAMPLES = 50_000_000
DEFAULT_MAX_CONCURRENCY = 20
# A windowed function (rate, *_over_time) over a range selector holds at most about this many of
# the selector's samples at once, whatever the range and the number of series: larger reads are
# read and applied a part of the series at a time (``Evaluator.windowed``). With their timestamps
# and the copy the store makes, about 24 bytes a sample: ~50 MB.
WINDOW_SAMPLES_AT_ONCE = 2_000_000
# What a charged sample costs the process, for the memory bound (cwkernel/memguard.py): its value
# and timestamp, and the copy a store read makes.
BYTES_PER_SAMPLE = 24


@dataclass(frozen=True)
class QueryLimits:
    """``timeout_s`` and ``max_samples`` bound every query; ``max_concurrency`` (and a queue of
    ``queue_per_slot`` waiting queries per slot) bounds those that come from outside
    (``tsdb.promql.gate``)."""

    timeout_s: float = DEFAULT_TIMEOUT_S
    max_samples: int = DEFAULT_MAX_SAMPLES
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    queue_per_slot: int = 4

    @property
    def max_queued(self) -> int:
        return self.max_concurrency * self.queue_per_slot


def timed_out(where: str) -> PromQLError:
    """Prometheus's timeout ("expression evaluation", "query queue"): HTTP 503."""
    return PromQLError(f"query timed out in {where}", "timeout", limit="queue_timeout" if where == "query queue"
                       else "timeout")


def too_many_samples() -> PromQLError:
    """Prometheus's ``ErrTooManySamples``: an execution error, HTTP 422."""
    return PromQLError("query processing would load too many samples into memory in query execution", "execution",
                       limit="max_samples")


class QueryGuard:
    """One query's deadline and sample budget. ``pause`` (optional) is called at each check: the
    gate's way to hold an outside query while the server's own queries run."""

    __slots__ = ("deadline", "max_samples", "current", "peak", "_pause", "_reserve")

    def __init__(self, deadline: float, max_samples: int,
                 pause: Callable[["QueryGuard"], None] | None = None,
                 reserve: Callable[[int], None] | None = None) -> None:
        self.deadline = deadline  # time.monotonic()
        self.max_samples = max_samples
        self.current = 0
        self.peak = 0
        self._pause = pause
        self._reserve = reserve  # told the bytes about to be allocated; raises past the memory bound

    @classmethod
    def unlimited(cls) -> "QueryGuard":
        return cls(float("inf"), 2**62)

    def check(self) -> None:
        if self._pause is not None:
            self._pause(self)
        if time.monotonic() > self.deadline:
            raise timed_out("expression evaluation")

    def charge(self, samples: int) -> None:
        """About to hold ``samples`` more: refused past the budget, before allocating."""
        current = self.current + samples
        if current > self.max_samples:
            raise too_many_samples()
        if self._reserve is not None:
            self._reserve(samples * BYTES_PER_SAMPLE)
        self.current = current
        if current > self.peak:
            self.peak = current

    def settle(self, mark: int, samples: int) -> None:
        """A node is done: what was charged since ``mark`` (its operands) is released, and its
        result of ``samples`` is held instead."""
        self.current = mark
        self.charge(samples)
