"""Which new series the store takes in, and from whom.

A series costs the server about 2 KB of memory and stays until retention has dropped all its
samples, so a target whose label values change every scrape (a timestamp, a session or pod name
in a label) grows the store without bound, and the store's total limit alone would then refuse
every other target's new series (a new job's) for as long as the retention. Three rules keep one
such exporter from taking the cluster's monitoring with it:

- churn: a target creates at most as many new series in an hour as it may expose in one scrape
  (VictoriaMetrics bounds new series an hour the same way, for the whole store);
- share: past ``HIGH_WATER`` of the total, a target may add series only while it holds no more
  than an equal share of the total, so the targets holding the most are refused first;
- reserve: the server's own series (rule outputs, a failed scrape's ``up 0``) may use a reserve
  above the total, so that the alerts saying the store is full can still be recorded.

Counts are in sample time (milliseconds), so history loaded at start is held to them as it
happened. This module decides; the store (tsdb/store.py) counts series and holds the lock.
"""
from __future__ import annotations

import time
from collections import Counter, deque

CHURN_WINDOW_MS = 3_600_000
HIGH_WATER = 0.9  # of the total, past which the equal share holds
RESERVE = 0.1  # of the total, above it, for rule outputs and scrape reports
PROBLEM_WINDOW_MS = 5 * 60_000  # a refusal is a problem of the store's for this long


class LimitError(Exception):
    """A target exceeded a configured limit; its scrape is rejected, nothing of it is stored."""


class SeriesAdmission:
    """Not thread-safe: the store calls it holding its lock."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.held: Counter[str] = Counter()  # series in the store each scrape target created
        self.refused: Counter[str] = Counter()  # appends refused, by reason
        self._created: dict[str, deque[tuple[int, int]]] = {}  # target -> (ms, series created)
        self._last_refusal: tuple[int, str] | None = None

    def admit(self, target: str, timestamp_ms: int, new: int, stored: int, allowance: int | None) -> None:
        """Raise LimitError unless ``target`` may add ``new`` series to a store holding ``stored``.
        ``allowance`` is the target's series a scrape (its hourly churn allowance); None for the
        server's own series, which only the total and its reserve bound."""
        if allowance is None:
            ceiling = self.total + int(self.total * RESERVE)
            if self.total and stored + new > ceiling:
                self._refuse("total", timestamp_ms,
                             f"store holds {stored:,} series: the maximum of {self.total:,} series and its reserve "
                             f"for rule outputs and scrape reports are used up")
            return
        recent = self._recent(target, timestamp_ms)
        if allowance and recent + new > allowance:
            self._refuse("churn", timestamp_ms,
                         f"target {target} would create {new:,} new series after {recent:,} in the hour before, "
                         f"more than the {allowance:,} a target may create in an hour (series churn limit: label "
                         f"values that change every scrape?)", problem=False)
        if not self.total:
            return
        if stored + new > self.total:
            self._refuse("total", timestamp_ms, f"store holds {stored:,} series, the maximum of {self.total:,} series")
        if stored + new > self.total * HIGH_WATER:
            share = self.total // len(self.held.keys() | {target})
            if self.held[target] + new > share:
                self._refuse("share", timestamp_ms,
                             f"store holds {stored:,} of its maximum of {self.total:,} series, and target {target} "
                             f"would hold {self.held[target] + new:,}, more than an equal share ({share:,})")

    def created(self, target: str, timestamp_ms: int, count: int) -> None:
        self.held[target] += count
        self._created.setdefault(target, deque()).append((timestamp_ms, count))

    def deleted(self, target: str) -> None:
        self.held[target] -= 1
        if self.held[target] <= 0 and not self._created.get(target):
            del self.held[target]

    def problems(self, now_ms: float | None = None) -> dict[str, str]:
        """The store's refusals of the last ``PROBLEM_WINDOW_MS``: the store is full."""
        now_ms = time.time() * 1000 if now_ms is None else now_ms
        if self._last_refusal is None or now_ms - self._last_refusal[0] > PROBLEM_WINDOW_MS:
            return {}
        return {"series_limit": f"new series refused ({self.refused['total'] + self.refused['share']:,} appends "
                                f"in all); last: {self._last_refusal[1]}"}

    def _recent(self, target: str, timestamp_ms: int) -> int:
        created = self._created.get(target)
        if not created:
            return 0
        while created and created[0][0] <= timestamp_ms - CHURN_WINDOW_MS:
            created.popleft()
        return sum(count for _, count in created)

    def _refuse(self, reason: str, timestamp_ms: int, message: str, problem: bool = True) -> None:
        self.refused[reason] += 1
        if problem:
            self._last_refusal = (timestamp_ms, message)
        raise LimitError(message)
