"""The job page's "Continuity" section (issue 20): the job's ETTR over the page's range, its time
lost by cause and its interruptions with their cause, from dashboard/goodput.py's accounting of
that one job (its own series only), in the same rows as ``/api/reliability`` and the report."""
from __future__ import annotations

from pydantic import BaseModel, Field

from dashboard.goodput import CAUSES, CLASSES, account
from dashboard.params import TimeRange, is_pod_job_id
from dashboard.views.reliability import InterruptionRow, JobRow, interruption_row, job_row
from tsdb.client import QueryClient

NO_CHECKPOINT = "unknown (no checkpoint signal)"


class JobContinuity(BaseModel):
    job_id: str
    start: float
    end: float
    causes: dict[str, str]
    classes: dict[str, str]
    account: JobRow | None = Field(description="null: the job neither ran nor waited to restart in the range")
    wall_seconds: float
    lost_seconds: dict[str, float | None] = Field(description="cause -> seconds of the job's time; null: unknown")
    interruptions: list[InterruptionRow]
    notes: list[str]


# Restarts, requeues and checkpoints are the scheduler's records (dashboard/goodput.py).
POD_NOTE = ("continuity is not measured for a Kubernetes pod: ETTR and interruptions come from the "
            "scheduler's job states and restart records, which a pod has none of (a restarted pod is "
            "another pod)")


def job_continuity(client: QueryClient, tr: TimeRange, job_id: str) -> JobContinuity:
    if is_pod_job_id(job_id):
        return JobContinuity(job_id=job_id, start=tr.start, end=tr.end, causes={}, classes=CLASSES, account=None,
                             wall_seconds=0.0, lost_seconds={}, interruptions=[], notes=[POD_NOTE])
    accounting = account(client, tr, job_id)
    job = accounting.jobs.get(job_id)
    notes = list(accounting.notes)
    row = job_row(job) if job is not None else None
    gpus = job.gpus if job is not None and job.gpus else None
    lost: dict[str, float | None] = {}
    for cause in CAUSES:
        value = job.lost_gpu_seconds.get(cause) if job is not None else 0.0
        lost[cause] = None if value is None else (value / gpus if gpus else 0.0)
    if job is not None and not job.redone_known:
        notes.append(f"work redone after its interruptions: {NO_CHECKPOINT}; its ETTR is an upper bound")
    return JobContinuity(job_id=job_id, start=tr.start, end=tr.end, causes=CAUSES, classes=CLASSES, account=row,
                         wall_seconds=job.wall_gpu_seconds / gpus if job is not None and gpus else 0.0,
                         lost_seconds=lost,
                         interruptions=[interruption_row(item) for item in accounting.interruptions], notes=notes)
