"""The ``/reliability`` view model (issue 20): cluster ETTR, GPU-hours lost by cause,
interruptions per day by root-cause class, MTBI per 1,000 GPUs, lemon nodes and the jobs that lost
time, over the chosen range. ``clusterwatch report`` prints this same model as text or JSON, and
the job page's Continuity section (views/job_continuity.py) takes its rows from the same
accounting, so the three agree on a range by construction (tests/dashboard/test_reliability_agreement.py).
Every number is dashboard/goodput.py's definition; nothing here computes one.
"""
from __future__ import annotations

from pydantic import BaseModel, Field

from dashboard.goodput import CAUSES, CLASSES, Accounting, Interruption, JobAccount, account
from dashboard.params import TimeRange
from tsdb.client import QueryClient

JOBS_SHOWN = 200  # the jobs that lost most, worst first; the totals count every job


class InterruptionRow(BaseModel):
    job_id: str
    ordinal: int = Field(description="the job's interruption number (its restart count after it)")
    time: float
    day: str = Field(description="UTC date")
    state: str = Field(description="the job's Slurm state as the poll saw it")
    cause: str = Field(description="root-cause class (a key of classes)")
    node: str = Field(description="the node the cause points at; '' when unknown")
    nodes: list[str] = Field(description="the job's nodes before the interruption")
    evidence: str | None = Field(description="the alert that explains it; null: no alert, cause unknown")
    redone_seconds: float | None = Field(description="time since the last checkpoint; null: no checkpoint signal")


class JobRow(BaseModel):
    job_id: str
    gpus: float
    wall_gpu_hours: float
    productive_gpu_hours: float
    ettr: float | None
    ettr_upper_bound: bool = Field(description="redone work unknown (no checkpoint signal): ETTR at most this")
    lost_gpu_hours: dict[str, float | None] = Field(description="cause -> GPU-hours; null: unknown")
    interruptions: int


class Lemon(BaseModel):
    node: str
    interruptions: int
    classes: dict[str, int]


class ReliabilityView(BaseModel):
    time: float
    start: float
    end: float
    causes: dict[str, str] = Field(description="lost-time cause -> title, in display order")
    classes: dict[str, str] = Field(description="root-cause class -> title")
    ettr: float | None = Field(description="cluster ETTR: productive over wall GPU-hours of every job")
    ettr_upper_bound: bool
    wall_gpu_hours: float
    productive_gpu_hours: float
    lost_gpu_hours: dict[str, float] = Field(description="cause -> GPU-hours (redone work: where known)")
    redone_unknown_jobs: int = Field(description="interrupted jobs without a checkpoint signal")
    interruptions_total: int
    interruptions_by_class: dict[str, int]
    interruptions_by_day: dict[str, dict[str, int]] = Field(description="UTC day -> class -> count")
    fleet_gpus: int
    mtbi_per_1000_gpus_hours: float | None = Field(description="null: no interruption in the range")
    lemons: list[Lemon]
    jobs: list[JobRow]
    jobs_total: int
    interruptions: list[InterruptionRow]
    notes: list[str]


def interruption_row(item: Interruption) -> InterruptionRow:
    evidence = None
    if item.evidence is not None:
        e = item.evidence
        evidence = f"{e.alertname} on {e.instance}" + (f" GPU {e.gpu}" if e.gpu else "") + (f" (XID {e.xid})" if e.xid else "")
    return InterruptionRow(job_id=item.job_id, ordinal=item.ordinal, time=item.time, day=item.day, state=item.state,
                           cause=item.cause, node=item.node, nodes=list(item.nodes), evidence=evidence,
                           redone_seconds=item.redone_seconds)


def job_row(job: JobAccount) -> JobRow:
    return JobRow(job_id=job.job_id, gpus=job.gpus, wall_gpu_hours=job.wall_gpu_seconds / 3600,
                  productive_gpu_hours=job.productive_gpu_seconds / 3600, ettr=job.ettr,
                  ettr_upper_bound=not job.redone_known,
                  lost_gpu_hours={cause: None if job.lost_gpu_seconds.get(cause) is None
                                  else job.lost_gpu_seconds[cause] / 3600 for cause in CAUSES},
                  interruptions=len(job.interruptions))


def _lost(job: JobAccount) -> float:
    return job.wall_gpu_seconds - job.productive_gpu_seconds


def view_of(accounting: Accounting, now: float) -> ReliabilityView:
    tr, jobs = accounting.range, list(accounting.jobs.values())
    worst = sorted(jobs, key=lambda j: (not j.interruptions, -_lost(j), j.job_id))
    shown = [job for job in worst if job.interruptions or _lost(job) > 0][:JOBS_SHOWN]
    return ReliabilityView(
        time=now, start=tr.start, end=tr.end, causes=CAUSES, classes=CLASSES, ettr=accounting.ettr(),
        ettr_upper_bound=accounting.redone_unknown_jobs() > 0,
        wall_gpu_hours=sum(j.wall_gpu_seconds for j in jobs) / 3600,
        productive_gpu_hours=sum(j.productive_gpu_seconds for j in jobs) / 3600,
        lost_gpu_hours=accounting.lost_gpu_hours(), redone_unknown_jobs=accounting.redone_unknown_jobs(),
        interruptions_total=accounting.interruption_count, interruptions_by_class=accounting.by_class(),
        interruptions_by_day=accounting.by_day(), fleet_gpus=accounting.fleet_gpus,
        mtbi_per_1000_gpus_hours=accounting.mtbi_per_1000_gpus_hours(),
        lemons=[Lemon(node=n, interruptions=c, classes=k) for n, c, k in accounting.lemons()],
        jobs=[job_row(job) for job in shown], jobs_total=len(jobs),
        interruptions=[interruption_row(item) for item in accounting.interruptions], notes=accounting.notes)


def reliability(client: QueryClient, tr: TimeRange, now: float) -> ReliabilityView:
    return view_of(account(client, tr), now)
