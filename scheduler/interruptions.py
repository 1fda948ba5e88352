"""Interruptions of running jobs, seen by comparing one poll's snapshot with the previous one.

An interruption is a running job's unplanned end or restart (docs/architecture.md#definitions):
between two polls its restart count (Slurm's ``restart_cnt``) grew, whoever requeued it, or it
went from RUNNING to an unplanned end state (``INTERRUPTED_END_STATES``: a node failure, a launch
failure, preemption, a crash). A job that completes, is cancelled or runs out of its time limit
ends as planned. The time recorded is the job's ``end_time`` when Slurm gives one between the two
polls, else the poll that saw it (at most one poll interval late); the nodes are those the job
held at the previous poll. What failed, and why, is not the scheduler's to know: the goodput
definitions (dashboard/goodput.py) explain each record from the alerts on those nodes.

The ledger keeps what it saw in memory, bounded (``MAX_RECORDS``, ``KEEP_SECONDS``), and the
metrics expose each record as ``slurm_job_interruption_time_seconds``, whose value is the time;
the store keeps the history. A restart the adapter did not see happen (it started after it) is
not recorded: its time is unknown, only the restart count shows it.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

from scheduler.model import Job, SchedulerSnapshot

# Ends that cut a running job short; COMPLETED, CANCELLED, TIMEOUT and DEADLINE are planned (by the
# job, its user or its limit).
INTERRUPTED_END_STATES = frozenset({"NODE_FAIL", "BOOT_FAIL", "PREEMPTED", "FAILED", "OUT_OF_MEMORY"})
MAX_RECORDS = 10_000  # 30 days of a 16,384-node cluster's interruptions (~8 a day) many times over
KEEP_SECONDS = 7 * 86400.0  # exposed this long; the store keeps the history after that


@dataclass(frozen=True)
class Interruption:
    job_id: str
    ordinal: int  # the job's restart count after it (a requeue), or its count plus one (an end)
    time: float  # Unix seconds
    state: str  # the job's state as the poll saw it (PENDING after a requeue, NODE_FAIL, ...)
    reason: str
    nodes: tuple[str, ...]


def interruption_of(before: Job, after: Job, previous_poll: float, this_poll: float) -> Interruption | None:
    """The interruption between two polls of one job, if there was one."""
    requeued = after.restart_count > before.restart_count
    ended = before.state == "RUNNING" and after.state in INTERRUPTED_END_STATES
    if not (requeued or ended):
        return None
    when = this_poll
    if after.end_time is not None and previous_poll < after.end_time <= this_poll:
        when = after.end_time
    ordinal = after.restart_count if requeued else after.restart_count + 1
    return Interruption(after.job_id, ordinal, when, after.state, after.reason, before.nodes or after.nodes)


class InterruptionLedger:
    """Feed it every snapshot (``observe``); ``records()`` is what it saw, oldest first."""

    def __init__(self, max_records: int = MAX_RECORDS, keep_seconds: float = KEEP_SECONDS) -> None:
        self._max = max_records
        self._keep = keep_seconds
        self._previous: SchedulerSnapshot | None = None
        self._records: OrderedDict[tuple[str, int], Interruption] = OrderedDict()
        self._lock = threading.Lock()

    def observe(self, snapshot: SchedulerSnapshot) -> SchedulerSnapshot:
        """Compare with the previous snapshot and record; returns the snapshot (a fetch wrapper)."""
        with self._lock:
            previous, self._previous = self._previous, snapshot
            if previous is None:
                return snapshot
            before = {job.job_id: job for job in previous.jobs}
            for job in snapshot.jobs:
                old = before.get(job.job_id)
                if old is None:
                    continue
                found = interruption_of(old, job, previous.taken_at, snapshot.taken_at)
                if found is not None:
                    # The first sighting stands: a job seen NODE_FAIL and then requeued (PENDING,
                    # its count one up) is one interruption, at the failure's time.
                    self._records.setdefault((found.job_id, found.ordinal), found)
            self._expire(snapshot.taken_at)
        return snapshot

    def _expire(self, now: float) -> None:
        while self._records:
            key, oldest = next(iter(self._records.items()))
            if len(self._records) <= self._max and oldest.time >= now - self._keep:
                break
            del self._records[key]

    def records(self) -> tuple[Interruption, ...]:
        with self._lock:
            return tuple(self._records.values())
