"""One object that wires a backend to its poller, action API and metrics collector."""
from __future__ import annotations

import time
from typing import Callable

from scheduler.actions import Actions
from scheduler.audit import AuditSink, log_sink
from scheduler.backends.base import Backend
from scheduler.interruptions import InterruptionLedger
from scheduler.metrics import SchedulerCollector
from scheduler.model import SchedulerSnapshot
from scheduler.poller import DEFAULT_MIN_INTERVAL, DEFAULT_TIMEOUT, Poller, PollStatus


class SchedulerAdapter:
    """``poller`` reads (cached), ``actions`` acts (validated, audited), ``collector`` exposes;
    ``interruptions`` records the running jobs each poll finds interrupted."""

    def __init__(self, backend: Backend, min_interval: float = DEFAULT_MIN_INTERVAL,
                 timeout: float = DEFAULT_TIMEOUT, action_timeout: float = 30.0,
                 audit: AuditSink = log_sink, wall_clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.backend = backend
        self.interruptions = InterruptionLedger()
        self.poller = Poller(lambda timeout: self.interruptions.observe(backend.fetch(timeout)),
                             min_interval=min_interval, timeout=timeout, monotonic=monotonic, wall_clock=wall_clock)
        self.actions = Actions(backend, self.poller.snapshot, audit=audit, on_change=self.poller.expire,
                               timeout=action_timeout, wall_clock=wall_clock)
        self.collector = SchedulerCollector(self.poller.status, backend.name, self.actions.counts,
                                            wall_clock=wall_clock, interruptions=self.interruptions.records)

    def snapshot(self) -> SchedulerSnapshot | None:
        """The cached snapshot (never polls)."""
        return self.poller.snapshot()

    def status(self) -> PollStatus:
        return self.poller.status()

    def refresh(self, wait: bool = False) -> PollStatus:
        """Poll now if the minimum interval allows; see ``Poller.refresh``."""
        return self.poller.refresh(wait=wait)

    def start(self) -> None:
        self.poller.start()

    def stop(self) -> None:
        self.poller.stop()
