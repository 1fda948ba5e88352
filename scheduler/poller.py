"""The poller that protects slurmctld: one poll at a time, a minimum interval, cached answers.

A large cluster's ``squeue --json`` can take minutes and loads slurmctld, so every reader (the
metrics collector, pages, the action API) reads the cached snapshot; only the poller asks Slurm.
The interval counts from the end of the previous poll, so a slow poll is never followed straight
away by another. When a poll fails, the last good snapshot stays and its age grows, which the
metrics expose: stale data is visible, never mistaken for fresh.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, replace
from typing import Callable

from cwkernel.loopwatch import LoopWatch
from scheduler.model import SchedulerSnapshot

log = logging.getLogger("clusterwatch.scheduler.poller")

DEFAULT_MIN_INTERVAL = 15.0
DEFAULT_TIMEOUT = 120.0


@dataclass(frozen=True)
class PollStatus:
    snapshot: SchedulerSnapshot | None  # the last good snapshot, kept across failures
    polls: int = 0
    errors: int = 0
    last_attempt_end: float | None = None  # Unix seconds
    last_success: float | None = None  # Unix seconds
    last_duration: float | None = None  # seconds the last poll took, failed or not
    last_error: str = ""  # "" when the last poll succeeded
    in_progress: bool = False

    def age(self, now: float) -> float | None:
        """Seconds since the snapshot was taken; None before the first success."""
        return None if self.snapshot is None else max(0.0, now - self.snapshot.taken_at)

    @property
    def healthy(self) -> bool:
        return self.snapshot is not None and not self.last_error


class Poller:
    def __init__(self, fetch: Callable[[float], SchedulerSnapshot], min_interval: float = DEFAULT_MIN_INTERVAL,
                 timeout: float = DEFAULT_TIMEOUT, monotonic: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time) -> None:
        if min_interval <= 0 or timeout <= 0:
            raise ValueError("min_interval and timeout must be positive")
        self._fetch = fetch
        self.min_interval = min_interval
        self.timeout = timeout
        self.loops = LoopWatch()
        self._monotonic = monotonic
        self._wall_clock = wall_clock
        self._status = PollStatus(snapshot=None)
        self._state_lock = threading.Lock()  # guards _status, _next_due
        self._poll_lock = threading.Lock()  # held for the whole of one poll
        self._next_due = float("-inf")  # monotonic time from which the next poll may start
        self._expired = False  # expire() called while a poll ran: that poll may predate the change
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # Readers -----------------------------------------------------------------------------
    def status(self) -> PollStatus:
        with self._state_lock:
            return self._status

    def snapshot(self) -> SchedulerSnapshot | None:
        return self.status().snapshot

    def due(self) -> bool:
        with self._state_lock:
            return self._monotonic() >= self._next_due

    # Polling -----------------------------------------------------------------------------
    def refresh(self, wait: bool = False) -> PollStatus:
        """Poll if due and nobody else is polling; return the (possibly cached) status.

        With ``wait`` a caller that finds a poll in progress waits for it (up to the timeout)
        instead of getting the cached status at once; still no second poll is started.
        """
        if not self.due():
            return self.status()
        if not self._poll_lock.acquire(blocking=wait, timeout=self.timeout if wait else -1):
            return self.status()
        try:
            if not self.due():  # another caller polled while we waited for the lock
                return self.status()
            return self._poll_once()
        finally:
            self._poll_lock.release()

    def _poll_once(self) -> PollStatus:
        with self._state_lock:
            self._status = replace(self._status, in_progress=True)
            self._expired = False
        started = self._monotonic()
        snapshot: SchedulerSnapshot | None = None
        error = ""
        try:
            snapshot = self._fetch(self.timeout)
        except Exception as exc:  # noqa: BLE001 - any failure keeps the last good data
            error = f"{type(exc).__name__}: {exc}"[:1000]
            log.warning("scheduler poll failed: %s", error)
        ended = self._monotonic()
        now = self._wall_clock()
        with self._state_lock:
            previous = self._status
            self._status = PollStatus(
                snapshot=snapshot if snapshot is not None else previous.snapshot,
                polls=previous.polls + 1,
                errors=previous.errors + (1 if error else 0),
                last_attempt_end=now,
                last_success=now if not error else previous.last_success,
                last_duration=ended - started,
                last_error=error,
                in_progress=False,
            )
            self._next_due = float("-inf") if self._expired else ended + self.min_interval
            return self._status

    def expire(self) -> None:
        """Make the next refresh poll now (after an action, so its effect shows at once)."""
        with self._state_lock:
            self._next_due = float("-inf")
            self._expired = True
        self._wake.set()

    # Background loop ---------------------------------------------------------------------
    def start(self) -> None:
        """Poll in a daemon thread until ``stop()``; readers then only read the cache."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="scheduler-poller", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self.loops.stopped()

    def _loop(self) -> None:
        while not self._stop.is_set():
            # A poll ends by its timeout and the loop rests at most the interval: three of both is wedged.
            self.loops.tick("scheduler poll", 3 * (self.min_interval + self.timeout) + 60)
            self.refresh()
            with self._state_lock:
                delay = max(0.0, self._next_due - self._monotonic())
            self._wake.wait(delay)
            self._wake.clear()
