"""Who asked for which action, why, and what happened: one record per step of every call.

The action API calls its audit sink three times at most per call: ``refused`` (validation failed,
nothing ran), or ``started`` before the scheduler is asked and ``done`` / ``failed`` after. The
automation (issue 7) passes a sink that persists records in SQLite; recording ``started`` before
running is what lets it avoid repeating a reboot after a crash. The default sink logs.

``AuditLog`` keeps the recent records in memory as well, for the dashboard's node page: ``serve``
gives its ``sink`` to the adapter, which records each one there and passes it on to the log, so
the page shows what happened without becoming the system of record (that is the remediation
store's job).
"""
from __future__ import annotations

import logging
import threading
from collections import deque
from dataclasses import dataclass
from typing import Callable

REFUSED = "refused"
STARTED = "started"
DONE = "done"
FAILED = "failed"

log = logging.getLogger("clusterwatch.scheduler.audit")


@dataclass(frozen=True)
class AuditRecord:
    time: float  # Unix seconds
    phase: str  # refused | started | done | failed
    action: str
    target: str
    actor: str
    reason: str
    detail: str = ""  # the refusal, or the scheduler's answer
    command: tuple[str, ...] = ()


AuditSink = Callable[[AuditRecord], None]


def log_sink(record: AuditRecord) -> None:
    level = logging.INFO if record.phase in (STARTED, DONE) else logging.WARNING
    log.log(level, "action %s %s on %s by %s (reason: %s)%s", record.action, record.phase,
            record.target, record.actor, record.reason or "-",
            f": {record.detail}" if record.detail else "")


class AuditLog:
    """The recent operator and automation actions, newest last, at most ``size``."""

    def __init__(self, size: int = 1000, forward: AuditSink | None = log_sink) -> None:
        self._records: deque[AuditRecord] = deque(maxlen=size)
        self._lock = threading.Lock()
        self._forward = forward

    def sink(self, record: AuditRecord) -> None:
        with self._lock:
            self._records.append(record)
        if self._forward is not None:
            self._forward(record)

    def records(self, target: str | None = None, limit: int = 50) -> list[AuditRecord]:
        """Newest first; only those about ``target`` when given."""
        with self._lock:
            found = [r for r in reversed(self._records) if target is None or r.target == target]
        return found[:limit]
