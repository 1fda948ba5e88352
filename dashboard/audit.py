"""The recent operator and automation actions, kept in memory for the node page.

The scheduler adapter's ``audit`` option takes one sink; ``AuditLog.sink`` records each
``AuditRecord`` here and passes it on to the adapter's default sink (the log), so the dashboard
shows what happened without becoming the system of record (that is the remediation store's job).
"""
from __future__ import annotations

import threading
from collections import deque
from typing import Callable

from scheduler.audit import AuditRecord, log_sink


class AuditLog:
    def __init__(self, size: int = 1000, forward: Callable[[AuditRecord], None] | None = log_sink) -> None:
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
