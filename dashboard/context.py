"""What every view needs: the one query interface, the scheduler adapter (optional) and its log
of recent actions, the alerting pipeline's reader (optional) and whether the server runs the
remediation engine. Built once by the dashboard component's ``build`` from what ``serve`` hands
it, and handed to the routers."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

from alerts.reader import AlertingReader
from scheduler.adapter import SchedulerAdapter
from scheduler.audit import AuditLog
from scheduler.model import SchedulerSnapshot
from tsdb.client import QueryClient


@dataclass
class DashboardContext:
    query: QueryClient
    # The scheduler adapter, or None when serve runs without one: then job and node metadata come
    # from the scheduler's metrics through PromQL alone.
    scheduler: SchedulerAdapter | None = None
    audit: AuditLog = field(default_factory=AuditLog)
    # The notification pipeline, read: the authority on alert state, silences, acknowledgements
    # and history. None: the alerts page shows only pending alerts.
    alerting: AlertingReader | None = None
    clock: Callable[[], float] = time.time
    # This server runs the remediation engine (serve --automation dry-run|auto), whose own API
    # (/api/automation/cases, /audit) the alerts and job pages point to.
    automation: bool = False
    # A notice shown above every page (serve --banner): the demo says the cluster is simulated.
    banner: str = ""

    def snapshot(self) -> SchedulerSnapshot | None:
        """The scheduler's cached snapshot (never polls), or None."""
        return self.scheduler.snapshot() if self.scheduler is not None else None
