"""What every view needs: the one query interface, the scheduler adapter (optional) and its log
of recent actions. Built once by the dashboard component's ``build`` and handed to the routers."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

from scheduler.audit import AuditLog
from tsdb.client import QueryClient


@dataclass
class DashboardContext:
    query: QueryClient
    # The scheduler adapter (``scheduler.SchedulerAdapter``) or None when serve runs without one:
    # then job and node metadata come from the scheduler's metrics through PromQL alone.
    scheduler: Any = None
    audit: AuditLog = field(default_factory=AuditLog)
    # The notification pipeline (``alerts.notify.pipeline.Pipeline``): the authority on alert state,
    # silences, acknowledgements and history. None: the alerts page shows only pending alerts.
    alerting: Any = None
    clock: Callable[[], float] = time.time

    def snapshot(self):
        """The scheduler's cached snapshot (never polls), or None."""
        return self.scheduler.snapshot() if self.scheduler is not None else None
