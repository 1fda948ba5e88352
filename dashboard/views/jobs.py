"""Jobs table and the job page.

Job metadata comes from the scheduler snapshot (or ``slurm_job_info`` through PromQL without an
adapter); utilisation, memory and flags from per-GPU queries over the chosen range, joined in
Python on (node, GPU) so that each metric is one query for the whole cluster. The job page asks
range queries restricted to the job's nodes, from its start (or the range start) to now.
"""
from __future__ import annotations

import math
import statistics
from typing import Iterable

from pydantic import BaseModel, Field

from dashboard.context import DashboardContext
from dashboard.definitions import IDLE_BELOW, efficiency, job_flags, stragglers
from dashboard.params import TimeRange, regex_of
from dashboard.promql import GpuKey, by_gpu, gpu_key, split_by_name


class JobRow(BaseModel):
    job_id: str
    name: str
    user: str
    account: str
    partition: str
    state: str
    nodes: list[str]
    gpus: int
    start_time: float | None
    run_seconds: float | None
    time_limit_seconds: float | None
    mean_utilization: float | None = Field(description="mean over the range of the job's GPUs (0-1)")
    memory_used_bytes: float | None = Field(description="GPU memory in use now, all GPUs")
    efficiency: float | None = Field(description="GPU-hour-weighted mean utilisation over the range")
    flags: dict[str, int] = Field(description="idle / hung / straggler / held_but_unused: GPUs affected")


class JobsView(BaseModel):
    time: float
    start: float
    end: float
    jobs: list[JobRow]


class JobRecord(BaseModel):
    """What the scheduler says about a job, whichever source said it."""

    job_id: str
    name: str = ""
    user: str = ""
    account: str = ""
    partition: str = ""
    state: str = ""
    nodes: list[str] = []
    gpus: int = 0
    gpu_indices: dict[str, list[int]] = {}
    start_time: float | None = None
    end_time: float | None = None
    time_limit_seconds: float | None = None


def job_records(ctx: DashboardContext, at: float, window: str) -> list[JobRecord]:
    snapshot = ctx.snapshot()
    if snapshot is not None:
        return [JobRecord(job_id=j.job_id, name=j.name, user=j.user, account=j.account, partition=j.partition,
                          state=j.state, nodes=list(j.nodes), gpus=j.gpus,
                          gpu_indices={n: list(i) for n, i in j.gpu_indices.items()}, start_time=j.start_time,
                          end_time=j.end_time, time_limit_seconds=j.time_limit_seconds) for j in snapshot.jobs]
    # No adapter: the scheduler's metrics as Prometheus scraped them from a serve that has one.
    info = ctx.query.instant(f"last_over_time(slurm_job_info[{window}])", at).series
    facts = split_by_name(ctx.query.instant(
        '{__name__=~"slurm_job_start_time_seconds|slurm_job_time_limit_seconds|slurm_job_gpus"}', at))
    fact = {name: {s.labels.get("job_id"): s.value for s in r.series} for name, r in facts.items()}
    indices: dict[str, dict[str, list[int]]] = {}
    for s in ctx.query.instant("slurm_job_gpu_info", at).series:
        if (key := gpu_key(s.labels)) is not None:
            indices.setdefault(s.labels.get("job_id", ""), {}).setdefault(key[0], []).append(key[1])
    records = []
    for s in info:
        job_id = s.labels.get("job_id", "")
        gpu_map = {n: sorted(i) for n, i in indices.get(job_id, {}).items()}
        records.append(JobRecord(
            job_id=job_id, name=s.labels.get("name", ""), user=s.labels.get("user", ""),
            account=s.labels.get("account", ""), partition=s.labels.get("partition", ""),
            state=s.labels.get("state", ""), nodes=sorted(gpu_map), gpu_indices=gpu_map,
            gpus=int(fact.get("slurm_job_gpus", {}).get(job_id, 0)),
            start_time=fact.get("slurm_job_start_time_seconds", {}).get(job_id),
            time_limit_seconds=fact.get("slurm_job_time_limit_seconds", {}).get(job_id)))
    return records


def job_gpus(job: JobRecord) -> list[GpuKey]:
    return [(node, int(i)) for node, indices in sorted(job.gpu_indices.items()) for i in indices]


def _mean(values: Iterable[float]) -> float | None:
    values = [v for v in values if math.isfinite(v)]
    return sum(values) / len(values) if values else None


def jobs(ctx: DashboardContext, tr: TimeRange, states: set[str] | None = None) -> JobsView:
    client, at, w = ctx.query, tr.end, tr.window
    records = [j for j in job_records(ctx, at, w) if not states or j.state in states]
    mean = by_gpu(client.instant(f"avg_over_time(gpu_utilization_ratio[{w}])", at))
    peak = by_gpu(client.instant(f"max_over_time(gpu_utilization_ratio[{w}])", at))
    metrics = split_by_name(client.instant('{__name__=~"gpu_memory_used_bytes|gpu_processes"}', at))
    memory = by_gpu(metrics.get("gpu_memory_used_bytes", _empty()))
    processes = by_gpu(metrics.get("gpu_processes", _empty()))
    rows = []
    for job in records:
        running = job.state == "RUNNING"
        # A finished job's GPUs now belong to others: their metrics say nothing about it.
        gpus = job_gpus(job) if running else []
        observed = {k: mean[k] for k in gpus if k in mean}
        rows.append(JobRow(
            job_id=job.job_id, name=job.name, user=job.user, account=job.account, partition=job.partition,
            state=job.state, nodes=job.nodes, gpus=job.gpus or len(gpus), start_time=job.start_time,
            run_seconds=(at - job.start_time) if running and job.start_time else None,
            time_limit_seconds=job.time_limit_seconds,
            mean_utilization=_rounded(_mean(observed.values())),
            memory_used_bytes=sum(memory[k] for k in gpus if k in memory) if running and gpus else None,
            efficiency=_rounded(efficiency(observed)),
            flags=job_flags(gpus, mean, peak, memory, processes, running) if running else {},
        ))
    rows.sort(key=lambda r: (r.state != "RUNNING", -(r.gpus or 0), r.job_id))
    return JobsView(time=ctx.clock(), start=tr.start, end=tr.end, jobs=rows)


def _empty():
    from tsdb.client import QueryResult
    return QueryResult("vector")


def _rounded(value: float | None, digits: int = 4) -> float | None:
    return round(value, digits) if value is not None else None


class GpuSeries(BaseModel):
    node: str
    gpu: int
    utilization: list[float | None]
    memory_bytes: list[float | None]
    power_watts: list[float | None]
    mean_utilization: float | None
    straggler: bool


class Efficiency(BaseModel):
    """In the spirit of Princeton's jobstats: how well the job used what it held."""

    gpu_hours: float
    gpu_efficiency: float | None = Field(description="GPU-hour-weighted mean utilisation (0-1)")
    memory_peak_bytes: float | None
    memory_total_bytes: float | None = Field(description="of one GPU")
    run_seconds: float | None
    time_limit_seconds: float | None
    time_used_ratio: float | None
    observed_from: float
    notes: list[str]


class JobView(BaseModel):
    time: float
    start: float
    end: float
    job: JobRecord
    flags: dict[str, int]
    timestamps: list[float]
    gpus: list[GpuSeries]
    efficiency: Efficiency


class JobNotFound(LookupError):
    pass


def _aligned(series_timestamps: list[float], values: list[float], grid: list[float]) -> list[float | None]:
    at = dict(zip(series_timestamps, values))
    return [None if (v := at.get(t)) is None or not math.isfinite(v) else round(v, 4) for t in grid]


def job(ctx: DashboardContext, tr: TimeRange, job_id: str) -> JobView:
    """Per-GPU series over the job's lifetime inside the range (one range query per metric,
    restricted to the job's nodes), flags, stragglers and the efficiency summary."""
    client = ctx.query
    found = [j for j in job_records(ctx, tr.end, tr.window) if j.job_id == job_id]
    if not found:
        raise JobNotFound(f"job {job_id} is not known to the scheduler")
    record = found[0]
    gpus = job_gpus(record)
    lifetime = tr.clipped(record.start_time, record.end_time if record.state != "RUNNING" else None)
    step = lifetime.step()
    grid: list[float] = []
    series: dict[str, dict[GpuKey, list[float | None]]] = {}
    if gpus:
        nodes = regex_of([n for n, _ in gpus])
        for metric in ("gpu_utilization_ratio", "gpu_memory_used_bytes", "gpu_power_watts"):
            result = client.range(f'{metric}{{instance=~"{nodes}"}}', lifetime.start, lifetime.end, step)
            if not grid:
                stamps = sorted({t for s in result.series for t in s.timestamps})
                grid = stamps
            wanted = set(gpus)
            series[metric] = {k: _aligned(s.timestamps, s.values, grid) for s in result.series
                              if (k := gpu_key(s.labels)) in wanted}
    util = series.get("gpu_utilization_ratio", {})
    mean = {k: m for k in gpus if (m := _mean(v for v in util.get(k, []) if v is not None)) is not None}
    hours = {k: sum(1 for v in util.get(k, []) if v is not None) * step / 3600 for k in gpus}
    slow = stragglers(mean)
    memory = series.get("gpu_memory_used_bytes", {})
    peaks = [v for values in memory.values() for v in values if v is not None]
    at = tr.end
    totals = by_gpu(client.instant(f'gpu_memory_total_bytes{{instance=~"{regex_of([n for n, _ in gpus])}"}}', at)) \
        if gpus else {}
    run = ((record.end_time if record.state != "RUNNING" and record.end_time else at) - record.start_time) \
        if record.start_time else None
    notes = []
    if record.start_time and lifetime.start > record.start_time + step:
        notes.append("the job started before the chosen range (or the store's retention): "
                     "figures cover the observed part only")
    gpu_eff = efficiency(mean, hours)
    if gpu_eff is not None and gpu_eff < 0.25:
        notes.append("GPU efficiency below 25%: the job holds GPUs it barely uses")
    instant = split_by_name(client.instant('{__name__=~"gpu_processes|gpu_memory_used_bytes"}', at))
    peak_now = {k: max((v for v in util.get(k, []) if v is not None), default=0.0) for k in gpus}
    flags = job_flags(gpus, mean, {k: v for k, v in peak_now.items() if k in util},
                      by_gpu(instant.get("gpu_memory_used_bytes", _empty())),
                      by_gpu(instant.get("gpu_processes", _empty())), record.state == "RUNNING")
    return JobView(
        time=ctx.clock(), start=lifetime.start, end=lifetime.end, job=record, flags=flags, timestamps=grid,
        gpus=[GpuSeries(node=k[0], gpu=k[1], utilization=util.get(k, []),
                        memory_bytes=memory.get(k, []),
                        power_watts=series.get("gpu_power_watts", {}).get(k, []),
                        mean_utilization=_rounded(mean.get(k)), straggler=k in slow) for k in gpus],
        efficiency=Efficiency(
            gpu_hours=round(sum(hours.values()), 3), gpu_efficiency=_rounded(gpu_eff),
            memory_peak_bytes=max(peaks) if peaks else None,
            memory_total_bytes=statistics.median(totals.values()) if totals else None,
            run_seconds=run, time_limit_seconds=record.time_limit_seconds,
            time_used_ratio=_rounded(run / record.time_limit_seconds) if run and record.time_limit_seconds else None,
            observed_from=lifetime.start, notes=notes),
    )


__all__ = ["JobsView", "JobView", "JobNotFound", "jobs", "job", "IDLE_BELOW"]
