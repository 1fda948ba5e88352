"""Who asked for which action, why, and what happened: one record per step of every call.

The action API calls its audit sink three times at most per call: ``refused`` (validation failed,
nothing ran), or ``started`` before the scheduler is asked and ``done`` / ``failed`` after. The
automation (issue 7) passes a sink that persists records in SQLite; recording ``started`` before
running is what lets it avoid repeating a reboot after a crash. The default sink logs.
"""
from __future__ import annotations

import logging
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
