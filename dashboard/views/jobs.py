"""Jobs table and the job page.

Job metadata comes from the scheduler snapshot (or ``slurm_job_info`` through PromQL without an
adapter). On a small fleet the list's utilisation, memory and flags come from per-GPU queries over
the chosen range, joined in Python on (node, GPU) so that each metric is one query for the whole
cluster; from ``PER_JOB_FROM_GPUS`` GPUs held by running jobs, from one series per job
(dashboard/views/jobs_at_scale.py). The job page asks range queries restricted to the job's
nodes, from its start (or the range start) to now.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping

import numpy as np
from pydantic import BaseModel, Field

from dashboard.context import DashboardContext
from dashboard.definitions import (
    IDLE_BELOW, MEASURES, SM_ACTIVE, UTILIZATION, Measure, efficiency, efficiency_low, job_flags, job_measure, stragglers,
)
from dashboard.params import TimeRange, is_pod_job_id, regex_of
from dashboard.promql import GpuKey, by_gpu, gpu_key, split_by_name
from dashboard.views.jobs_at_scale import PER_JOB_FROM_GPUS, per_job_figures
from tsdb.client import QueryClient


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
    measure: str | None = Field(default=None, description=(
        "what mean_utilization, efficiency and the straggler flag read: \"sm_active\" (SM activity, NVML GPM) "
        "when every GPU of the job has it, else \"utilization\" (docs/architecture.md#definitions)"))
    mean_utilization: float | None = Field(description="mean activity over the range of the job's GPUs (0-1), by `measure`")
    memory_used_bytes: float | None = Field(description="GPU memory in use now, all GPUs")
    power_watts: float | None = Field(default=None, description="power drawn now, all GPUs")
    efficiency: float | None = Field(description="GPU-hour-weighted mean activity over the range, by `measure`")
    flags: dict[str, int] = Field(description=(
        "idle / hung / straggler / held_but_unused: GPUs affected. Over the range (idle, hung: peak "
        "utilisation over the range; straggler: means over the range), except where `source` is "
        "\"recorded\": then the job rules' conditions now (idle: peak over the last 5 minutes; hung: "
        "every GPU idle now holding over 1 GiB; straggler: GpuStragglerUtilization's GPUs, pending or "
        "firing; held_but_unused: no process now)"))


class JobsView(BaseModel):
    time: float
    start: float
    end: float
    source: str = Field(default="gpus", description=(
        "where the running jobs' figures come from: \"gpus\" (every GPU's series), \"recorded\" (the "
        "rule pack's per-job series, from 16,000 GPUs held by running jobs) or \"computed per job\" "
        "(the same per job by the engine when they are not recorded)"))
    jobs: list[JobRow]


class JobRecord(BaseModel):
    """What the scheduler says about a job, whichever source said it; for a Kubernetes pod, what
    the exporters' ``gpu_job_info`` says (``pod_record``)."""

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
    namespace: str = Field(default="", description="a Kubernetes pod's namespace; empty for a Slurm job")
    pod: str = Field(default="", description="a Kubernetes pod's name; empty for a Slurm job")


POD_ENDED = "ENDED"  # a pod no longer seen: how it ended is the kubelet's to say, not ours


def job_records(ctx: DashboardContext, at: float, window: str, job_id: str | None = None) -> list[JobRecord]:
    """Every job the scheduler knows (or only ``job_id``, an already validated id, whose series
    alone are then read without an adapter). Without an adapter, from ``PER_JOB_FROM_GPUS``
    allocated GPUs up, the jobs' nodes come from a series per job and node (their GPU indices
    are then left out: the list shows nodes only)."""
    snapshot = ctx.snapshot()
    if snapshot is not None:
        return [JobRecord(job_id=j.job_id, name=j.name, user=j.user, account=j.account, partition=j.partition,
                          state=j.state, nodes=list(j.nodes), gpus=j.gpus,
                          gpu_indices={n: list(i) for n, i in j.gpu_indices.items()}, start_time=j.start_time,
                          end_time=j.end_time, time_limit_seconds=j.time_limit_seconds) for j in snapshot.jobs]
    # No adapter: the scheduler's metrics as Prometheus scraped them from a serve that has one.
    only = f',job_id="{job_id}"' if job_id else ""
    info = ctx.query.instant(f"last_over_time({_only('slurm_job_info', job_id)}[{window}])", at).series
    facts = split_by_name(ctx.query.instant(
        f'{{__name__=~"slurm_job_start_time_seconds|slurm_job_time_limit_seconds|slurm_job_gpus"{only}}}', at))
    fact = {name: {s.labels.get("job_id"): s.value for s in r.series} for name, r in facts.items()}
    allocated = sum(fact.get("slurm_job_gpus", {}).get(s.labels.get("job_id"), 0) for s in info
                    if s.labels.get("state") == "RUNNING")
    indices = _job_nodes(ctx, at) if job_id is None and allocated >= PER_JOB_FROM_GPUS else \
        _job_gpu_indices(ctx, at, job_id)
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


def _job_gpu_indices(ctx: DashboardContext, at: float, job_id: str | None) -> dict[str, dict[str, list[int]]]:
    """job -> node -> its GPU indices, from the scheduler's per-GPU series."""
    indices: dict[str, dict[str, list[int]]] = {}
    for s in ctx.query.instant(_only("slurm_job_gpu_info", job_id), at).series:
        if (key := gpu_key(s.labels)) is not None:
            indices.setdefault(s.labels.get("job_id", ""), {}).setdefault(key[0], []).append(key[1])
    return indices


def _job_nodes(ctx: DashboardContext, at: float) -> dict[str, dict[str, list[int]]]:
    """job -> node -> no indices: one series per job and node, recorded (instance_job:gpus:count)
    or counted by the engine."""
    result = ctx.query.instant(JOB_NODES_RECORDED, at)
    if not result.series:
        result = ctx.query.instant("count by (instance, job_id) (slurm_job_gpu_info)", at)
    nodes: dict[str, dict[str, list[int]]] = {}
    for s in result.series:
        nodes.setdefault(s.labels.get("job_id", ""), {})[s.labels.get("instance", "")] = []
    return nodes


JOB_NODES_RECORDED = "instance_job:gpus:count"


def _only(metric: str, job_id: str | None) -> str:
    return f'{metric}{{job_id="{job_id}"}}' if job_id else metric


def job_gpus(job: JobRecord) -> list[GpuKey]:
    return [(node, int(i)) for node, indices in sorted(job.gpu_indices.items()) for i in indices]


def _mean(values: Iterable[float]) -> float | None:
    values = [v for v in values if math.isfinite(v)]
    return sum(values) / len(values) if values else None


def jobs(ctx: DashboardContext, tr: TimeRange, states: set[str] | None = None) -> JobsView:
    """The scheduler's jobs and the Kubernetes pods that held GPUs in the range."""
    records = [j for j in job_records(ctx, tr.end, tr.window) + pod_records(ctx, tr.end, tr.window)
               if not states or j.state in states]
    if sum(j.gpus for j in records if j.state == "RUNNING") >= PER_JOB_FROM_GPUS:
        return _jobs_per_job(ctx, tr, records)
    return _jobs_per_gpu(ctx, tr, records)


def _jobs_per_job(ctx: DashboardContext, tr: TimeRange, records: list[JobRecord]) -> JobsView:
    """The list at scale: a series per job for every figure (dashboard/views/jobs_at_scale.py)."""
    figures = per_job_figures(ctx.query, tr)
    rows = []
    for job in records:
        running, key = job.state == "RUNNING", job.job_id
        rows.append(JobRow(
            job_id=key, name=job.name, user=job.user, account=job.account, partition=job.partition,
            state=job.state, nodes=job.nodes, gpus=job.gpus, start_time=job.start_time,
            run_seconds=(tr.end - job.start_time) if running and job.start_time else None,
            time_limit_seconds=job.time_limit_seconds, measure=figures.measure.get(key) if running else None,
            mean_utilization=_rounded(figures.mean.get(key)) if running else None,
            memory_used_bytes=figures.memory.get(key) if running else None,
            power_watts=_rounded(figures.power.get(key), 1) if running else None,
            efficiency=_rounded(figures.efficiency.get(key)) if running else None,
            flags=figures.flags_of(key, job.gpus) if running else {},
        ))
    return _view(ctx, tr, rows, figures.source)


def _view(ctx: DashboardContext, tr: TimeRange, rows: list[JobRow], source: str) -> JobsView:
    rows.sort(key=lambda r: (r.state != "RUNNING", -(r.gpus or 0), r.job_id))
    return JobsView(time=ctx.clock(), start=tr.start, end=tr.end, source=source, jobs=rows)


def _jobs_per_gpu(ctx: DashboardContext, tr: TimeRange, records: list[JobRecord]) -> JobsView:
    """The list of a small fleet: every GPU's series, the definitions applied to the range."""
    client, at, w = ctx.query, tr.end, tr.window
    means = {m.name: by_gpu(client.instant(f"avg_over_time({m.metric}[{w}])", at)) for m in MEASURES.values()}
    # Idle by each GPU's own measure: its SM activity's peak where it has one, else its utilisation's.
    peak = {**by_gpu(client.instant(f"max_over_time({UTILIZATION.metric}[{w}])", at)),
            **by_gpu(client.instant(f"max_over_time({SM_ACTIVE.metric}[{w}])", at))}
    metrics = split_by_name(client.instant('{__name__=~"gpu_memory_used_bytes|gpu_power_watts|gpu_processes"}', at))
    memory = by_gpu(metrics.get("gpu_memory_used_bytes", _empty()))
    power = by_gpu(metrics.get("gpu_power_watts", _empty()))
    processes = by_gpu(metrics.get("gpu_processes", _empty()))
    rows = []
    for job in records:
        running = job.state == "RUNNING"
        # A finished job's GPUs now belong to others: their metrics say nothing about it.
        gpus = job_gpus(job) if running else []
        measure = job_measure(gpus, means[SM_ACTIVE.name])
        mean = means[measure.name]
        observed = {k: mean[k] for k in gpus if k in mean}
        rows.append(JobRow(
            job_id=job.job_id, name=job.name, user=job.user, account=job.account, partition=job.partition,
            state=job.state, nodes=job.nodes, gpus=job.gpus or len(gpus), start_time=job.start_time,
            run_seconds=(at - job.start_time) if running and job.start_time else None,
            time_limit_seconds=job.time_limit_seconds, measure=measure.name if running and gpus else None,
            mean_utilization=_rounded(_mean(observed.values())),
            memory_used_bytes=sum(memory[k] for k in gpus if k in memory) if running and gpus else None,
            power_watts=_rounded(sum(power[k] for k in gpus if k in power), 1) if running and gpus else None,
            efficiency=_rounded(efficiency(observed)),
            flags=job_flags(gpus, mean, peak, memory, processes, running, measure) if running else {},
        ))
    return _view(ctx, tr, rows, "gpus")


def _empty():
    from tsdb.client import QueryResult
    return QueryResult("vector")


def _rounded(value: float | None, digits: int = 4) -> float | None:
    return round(value, digits) if value is not None else None


DETAIL_GPUS = 64  # up to this many GPUs the page gets every GPU's memory and power series


class GpuSeries(BaseModel):
    node: str
    gpu: int
    utilization: list[float | None]
    sm_active: list[float | None] = Field(default=[], description=(
        "SM activity (NVML GPM), on GPUs that have it; like memory_bytes, every GPU's for jobs of up to "
        f"{DETAIL_GPUS} GPUs, above, stragglers' only"))
    memory_bytes: list[float | None] = Field(
        description=f"every GPU's for jobs of up to {DETAIL_GPUS} GPUs; above, stragglers' only (see `bands`)")
    power_watts: list[float | None] = Field(
        description=f"every GPU's for jobs of up to {DETAIL_GPUS} GPUs; above, stragglers' only (see `bands`)")
    mean_utilization: float | None = Field(description="mean activity over the range by the job's `measure` "
                                                       "(what the straggler flag compares)")
    straggler: bool


class Band(BaseModel):
    """A metric across the job's GPUs at each point of ``timestamps``."""

    min: list[float | None]
    median: list[float | None]
    max: list[float | None]


class Efficiency(BaseModel):
    """In the spirit of Princeton's jobstats: how well the job used what it held."""

    gpu_hours: float
    gpu_efficiency: float | None = Field(description="GPU-hour-weighted mean activity (0-1), by `measure`")
    measure: str = Field(default=UTILIZATION.name, description=(
        "\"sm_active\" (SM activity, NVML GPM) when every GPU of the job has it over the range, else "
        "\"utilization\" (docs/architecture.md#definitions)"))
    measure_title: str = Field(default=UTILIZATION.title, description="the measure as the page names it")
    low: bool = Field(default=False, description="below the measure's threshold (JobGpuEfficiencyLow's)")
    memory_peak_bytes: float | None
    memory_total_bytes: float | None = Field(description="of one GPU")
    run_seconds: float | None
    time_limit_seconds: float | None
    time_used_ratio: float | None
    observed_from: float
    notes: list[str]


class AlertSpan(BaseModel):
    """An alert firing on one of the job's nodes (or GPUs) during the range, as the evaluator's
    ``ALERTS`` series saw it at the page's points."""

    alertname: str
    severity: str
    instance: str
    gpu: int | None
    start: float
    end: float


class JobView(BaseModel):
    time: float
    start: float
    end: float
    step: float = Field(description="seconds between points: the range over at most MAX_POINTS points")
    job: JobRecord
    flags: dict[str, int]
    timestamps: list[float]
    gpus: list[GpuSeries]
    per_gpu_detail: bool = Field(description="every GPU's memory and power series are included")
    measure: str = Field(default=UTILIZATION.name, description="what the straggler flags and the efficiency "
                                                               "read: \"sm_active\" or \"utilization\"")
    bands: dict[str, Band] = Field(description="utilization, sm_active, memory_bytes, power_watts: "
                                               "min/median/max across the job's GPUs at each point")
    alerts: list[AlertSpan] = Field(default=[], description="alerts that fired on the job's nodes or GPUs "
                                                            "in the range (automation events: /api/automation/audit)")
    efficiency: Efficiency
    automation: bool = Field(default=False, description="this server runs the remediation engine, whose "
                                                        "/api/automation/audit lists the decisions about the job")


class JobNotFound(LookupError):
    pass


SERIES = {UTILIZATION.metric: ("utilization", 3), SM_ACTIVE.metric: ("sm_active", 3),
          "gpu_memory_used_bytes": ("memory_bytes", -6),
          "gpu_power_watts": ("power_watts", 1)}  # field, decimals kept (memory: whole megabytes)
# Above DETAIL_GPUS the page shows these as bands and the stragglers' own lines, so where answers
# are decoded (``QueryClient.decodes_results``: over HTTP) the engine aggregates them over the
# job's GPUs instead of sending every GPU's series: two thirds of a large job's points, which at 512
# GPUs cost more to decode than the engine takes to answer. In process the page bands them itself.
BANDED = ("gpu_memory_used_bytes", "gpu_power_watts")
BAND_ROWS = ("min", "median", "max")
# A job scattered over many partly held nodes needs a long selector of its GPUs; past this the page
# reads their series and bands them itself (VictoriaMetrics refuses queries over 16 KiB by default).
MAX_BAND_SELECTOR_CHARS = 4096


def job_record(ctx: DashboardContext, at: float, window: str, job_id: str) -> JobRecord:
    snapshot = ctx.snapshot()
    if snapshot is not None:
        for j in snapshot.jobs:
            if j.job_id == job_id:
                return JobRecord(job_id=j.job_id, name=j.name, user=j.user, account=j.account, partition=j.partition,
                                 state=j.state, nodes=list(j.nodes), gpus=j.gpus,
                                 gpu_indices={n: list(i) for n, i in j.gpu_indices.items()}, start_time=j.start_time,
                                 end_time=j.end_time, time_limit_seconds=j.time_limit_seconds)
        raise JobNotFound(f"job {job_id} is not known to the scheduler")
    found = [j for j in job_records(ctx, at, window, job_id) if j.job_id == job_id]
    if not found:
        raise JobNotFound(f"job {job_id} is not known to the scheduler")
    return found[0]


def pod_record(ctx: DashboardContext, tr: TimeRange, job_id: str) -> JobRecord:
    """A pod (an already validated ``<namespace>/<pod>``) has no scheduler record: its GPUs and
    lifetime are where and when the exporters' ``gpu_job_info`` named it in the range. It is
    RUNNING while still named at the range's last point (a pod gone from a page is stale at once),
    else ENDED at the last sample that named it; it started at the first (the range's start when it
    ran before). The series' values are their samples' own times, not the grid's."""
    step = tr.step()
    result = ctx.query.range(f'max by (instance, gpu) (timestamp(gpu_job_info{{job_id="{job_id}"}}))',
                             tr.start, tr.end, step)
    indices: dict[str, set[int]] = {}
    seen: list[float] = []
    running = False
    for s in result.series:
        if (key := gpu_key(s.labels)) is not None and s.values:
            indices.setdefault(key[0], set()).add(key[1])
            seen += (min(s.values), max(s.values))
            running |= s.timestamps[-1] > tr.end - step
    if not seen:
        raise JobNotFound(f"pod {job_id} held no GPU in the range")
    return _pod(job_id, indices, running, min(seen), None if running else max(seen))


# Pods that the kubelet attributes (exporter/collectors/jobs.py): a pod label and a job id. On a
# Slurm-only cluster no gpu_job_info series has a pod label, so selecting them costs nothing.
POD_ALLOCATIONS = 'gpu_job_info{pod!="", job_id!=""}'


def pod_records(ctx: DashboardContext, at: float, window: str) -> list[JobRecord]:
    """The pods that held GPUs in the range, for the jobs list: RUNNING while ``gpu_job_info``
    names them now, else ENDED (their start and end are on their pages, ``pod_record``)."""
    seen = ctx.query.instant(f"max by (instance, gpu, job_id) (last_over_time({POD_ALLOCATIONS}[{window}]))", at)
    now = {s.labels.get("job_id") for s in ctx.query.instant(f"count by (job_id) ({POD_ALLOCATIONS})", at).series}
    indices: dict[str, dict[str, set[int]]] = {}
    for s in seen.series:
        job_id = s.labels.get("job_id", "")
        if is_pod_job_id(job_id) and (key := gpu_key(s.labels)) is not None:
            indices.setdefault(job_id, {}).setdefault(key[0], set()).add(key[1])
    return [_pod(job_id, gpus, job_id in now) for job_id, gpus in sorted(indices.items())]


def _pod(job_id: str, indices: dict[str, set[int]], running: bool, start: float | None = None,
         end: float | None = None) -> JobRecord:
    namespace, _, pod = job_id.partition("/")
    gpu_indices = {node: sorted(i) for node, i in sorted(indices.items())}
    return JobRecord(job_id=job_id, name=pod, account=namespace, state="RUNNING" if running else POD_ENDED,
                     nodes=sorted(gpu_indices), gpus=sum(len(i) for i in gpu_indices.values()),
                     gpu_indices=gpu_indices, start_time=start, end_time=end, namespace=namespace, pod=pod)


def _matrix(result, keys: list[GpuKey], start: float, step: float, points: int, decimals: int):
    """Per-GPU series on the range's grid as one (GPU x point) array, NaN where there is no sample."""
    row_of = {k: i for i, k in enumerate(keys)}
    return _on_grid(result, lambda labels: row_of.get(gpu_key(labels)), len(keys), start, step, points, decimals)


def _on_grid(result, row_of: Callable[[Mapping[str, str]], int | None], rows: int, start: float, step: float,
             points: int, decimals: int) -> np.ndarray:
    """A range query's series on the grid as one (row x point) array, each series in the row its
    labels give (None: not kept), NaN where there is no sample, rounded to ``decimals``."""
    out = np.full((rows, points), np.nan)
    for s in result.series:
        row = row_of(s.labels)
        if row is None or not s.timestamps:
            continue
        cols = np.rint((np.asarray(s.timestamps, dtype=float) - start) / step).astype(np.int64)
        ok = (cols >= 0) & (cols < points)
        out[row, cols[ok]] = np.asarray(s.values, dtype=float)[ok]
    out[~np.isfinite(out)] = np.nan
    return np.round(out, decimals)


def _as_list(row) -> list[float | None]:
    import numpy as np

    values = row.tolist()
    for i in np.flatnonzero(np.isnan(row)).tolist():
        values[i] = None
    return values


def _alert_spans(client, nodes: str, gpus: set[GpuKey], lifetime: TimeRange, step: float) -> list[AlertSpan]:
    """Firing intervals from ``ALERTS`` at the page's step: a gap of more than one point ends one."""
    result = client.range(f'ALERTS{{alertstate="firing",instance=~"{nodes}"}}', lifetime.start, lifetime.end, step)
    spans = []
    for s in result.series:
        labels = s.labels
        try:
            gpu = int(labels["gpu"]) if "gpu" in labels else None
        except ValueError:
            gpu = None
        if gpu is not None and (labels.get("instance", ""), gpu) not in gpus:
            continue  # a GPU of the node that another job holds
        times = [t for t, v in zip(s.timestamps, s.values) if math.isfinite(v)]
        begin = prev = None
        for t in times + [math.inf]:
            if begin is not None and t - prev > 1.5 * step:
                spans.append(AlertSpan(alertname=labels.get("alertname", ""), severity=labels.get("severity", ""),
                                       instance=labels.get("instance", ""), gpu=gpu, start=begin, end=prev))
                begin = None
            if begin is None:
                begin = t
            prev = t
    spans.sort(key=lambda a: (a.start, a.instance, a.alertname))
    return spans


def _band(matrix) -> Band:
    import warnings

    import numpy as np

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a point where no GPU has a sample: None
        return Band(min=_as_list(np.nanmin(matrix, axis=0)) if len(matrix) else [],
                    median=_as_list(np.nanmedian(matrix, axis=0)) if len(matrix) else [],
                    max=_as_list(np.nanmax(matrix, axis=0)) if len(matrix) else [])


@dataclass
class _JobSeries:
    """What the job page reads from the store: the per-GPU matrices on the page's grid (trimmed
    to the points where some GPU of the job has a sample), the GPUs' values now, the alerts."""

    grid: list[float]
    matrices: dict[str, np.ndarray]  # metric of SERIES -> (GPU x point); BANDED: stragglers' rows only above DETAIL_GPUS
    now: dict[str, dict[GpuKey, float]]  # gpu_processes, gpu_memory_used_bytes, gpu_memory_total_bytes
    alerts: list[AlertSpan]
    bands: dict[str, np.ndarray] = field(default_factory=dict)  # BANDED metric -> (BAND_ROWS x point), by the engine

    def band(self, metric: str) -> "Band":
        if metric in self.bands:
            return Band(**{row: _as_list(self.bands[metric][i]) for i, row in enumerate(BAND_ROWS)})
        return _band(self.matrices[metric])

    def peak(self, metric: str) -> float | None:
        values = self.bands[metric][BAND_ROWS.index("max")] if metric in self.bands else self.matrices[metric]
        return float(np.nanmax(values)) if values.size and not np.isnan(values).all() else None


def job(ctx: DashboardContext, tr: TimeRange, job_id: str) -> JobView:
    """Per-GPU series over the job's lifetime inside the range, flags, stragglers and the
    efficiency summary. One range query for the three per-GPU metrics, restricted to the job's
    nodes, at a step that keeps every series within ``MAX_POINTS`` points whatever the range (a
    24 h job page reads 240 points per GPU, not 5,760); the matrices are aligned, rounded and
    reduced to bands with numpy. Jobs of more than ``DETAIL_GPUS`` GPUs get every GPU's
    utilisation (lines, heatmap) but memory and power as min/median/max bands plus the
    stragglers' own series: 512 GPUs' memory lines are unreadable and would triple the payload."""
    record = pod_record(ctx, tr, job_id) if is_pod_job_id(job_id) else job_record(ctx, tr.end, tr.window, job_id)
    gpus = job_gpus(record)
    lifetime = tr.clipped(record.start_time, record.end_time if record.state != "RUNNING" else None)
    step = lifetime.step()
    detail = len(gpus) <= DETAIL_GPUS
    series = _job_series(ctx.query, gpus, lifetime, step, tr.end, detail)
    usage = {m.name: _usage(series.matrices[m.metric], gpus, step) for m in MEASURES.values()}
    measure = job_measure(gpus, usage[SM_ACTIVE.name][0])
    mean, hours, _ = usage[measure.name]
    # Idle by each GPU's own measure, as the rules' idle_gpus: SM activity's peak where it has one.
    peak = {**usage[UTILIZATION.name][2], **usage[SM_ACTIVE.name][2]}
    slow = stragglers(mean, len(gpus), measure)
    if not detail:
        _read_rows(ctx.query, series, gpus, slow, step)
    flags = job_flags(gpus, mean, peak, series.now.get("gpu_memory_used_bytes", {}),
                      series.now.get("gpu_processes", {}), record.state == "RUNNING", measure)
    return JobView(
        time=ctx.clock(), start=lifetime.start, end=lifetime.end, step=step, job=record, flags=flags,
        timestamps=series.grid, gpus=_gpu_rows(series.matrices, gpus, mean, slow, detail), per_gpu_detail=detail,
        measure=measure.name,
        bands={name: series.band(metric) for metric, (name, _) in SERIES.items()}, alerts=series.alerts,
        efficiency=_efficiency(record, lifetime, step, tr.end, gpus, series, mean, hours, measure),
    )


def _job_series(client: QueryClient, gpus: list[GpuKey], lifetime: TimeRange, step: float, at: float,
                detail: bool) -> _JobSeries:
    """The per-GPU metrics over the lifetime (one range query on the job's nodes; without
    ``detail``, from a client that decodes its answers, the BANDED ones aggregated by the engine
    over the job's GPUs instead, their rows left for ``_read_rows``), the GPUs' values now and the
    alerts on them; nothing is asked for a job without GPUs."""
    points = int((lifetime.end - lifetime.start) // step) + 1
    grid = [lifetime.start + i * step for i in range(points)]
    matrices = {metric: np.full((len(gpus), points), np.nan) for metric in SERIES}
    bands: dict[str, np.ndarray] = {}
    now: dict[str, dict[GpuKey, float]] = {}
    alerts: list[AlertSpan] = []
    if gpus:
        nodes = regex_of([n for n, _ in gpus])
        selected = None if detail or not client.decodes_results else _selected(gpus)
        per_gpu = list(SERIES) if selected is None else [m for m in SERIES if m not in BANDED]
        parts = split_by_name(client.range(f'{{__name__=~"{"|".join(per_gpu)}",instance=~"{nodes}"}}',
                                           lifetime.start, lifetime.end, step))
        for metric in per_gpu:
            if metric in parts:
                matrices[metric] = _matrix(parts[metric], gpus, lifetime.start, step, points, SERIES[metric][1])
        if selected is not None:
            bands = {metric: _engine_bands(client, metric, selected, lifetime, step, points) for metric in BANDED}
        instant = split_by_name(client.instant(
            f'{{__name__=~"gpu_processes|gpu_memory_used_bytes|gpu_memory_total_bytes",instance=~"{nodes}"}}', at))
        now = {name: by_gpu(result) for name, result in instant.items()}
        alerts = _alert_spans(client, nodes, set(gpus), lifetime, step)
    first, last = _observed(matrices, gpus)
    return _JobSeries(grid[first:last], {m: x[:, first:last] for m, x in matrices.items()}, now, alerts,
                      {m: x[:, first:last] for m, x in bands.items()})


def _observed(matrices: dict[str, np.ndarray], gpus: list[GpuKey]) -> tuple[int, int]:
    """The part of the grid where some GPU of the job has a sample: the points before its first
    scrape and after the store's retention are dropped from its ends."""
    seen = np.flatnonzero(~np.isnan(matrices["gpu_utilization_ratio"]).all(axis=0)) if gpus else np.array([])
    return (int(seen[0]), int(seen[-1]) + 1) if len(seen) else (0, 0)


def gpu_selectors(gpus: Iterable[GpuKey]) -> list[str]:
    """Label matchers that select exactly these GPUs: one per set of GPU indices its nodes share
    (a job on whole nodes: one), since a node may hold another job's GPUs too."""
    indices: dict[str, list[int]] = {}
    for node, gpu in gpus:
        indices.setdefault(node, []).append(gpu)
    nodes_of: dict[tuple[int, ...], list[str]] = {}
    for node, held in indices.items():
        nodes_of.setdefault(tuple(sorted(set(held))), []).append(node)
    return [f'instance=~"{regex_of(nodes)}",gpu=~"{"|".join(map(str, held))}"'
            for held, nodes in sorted(nodes_of.items())]


def _selected(gpus: list[GpuKey]) -> list[str] | None:
    """The matchers of the job's GPUs (``gpu_selectors``), or None where a BANDED metric's selector
    of them would pass MAX_BAND_SELECTOR_CHARS."""
    matchers = gpu_selectors(gpus)
    return matchers if all(len(_union(metric, matchers)) <= MAX_BAND_SELECTOR_CHARS for metric in BANDED) else None


def _union(metric: str, matchers: list[str]) -> str:
    return " or ".join(f"{metric}{{{m}}}" for m in matchers)


def _engine_bands(client: QueryClient, metric: str, matchers: list[str], lifetime: TimeRange, step: float,
                  points: int) -> np.ndarray:
    """``metric``'s min, median and max across the GPUs ``matchers`` select at each point
    (BAND_ROWS x point), aggregated by the engine: one range query of three series."""
    selected = _union(metric, matchers)
    aggregates = {"min": f"min({selected})", "median": f"quantile(0.5, {selected})", "max": f"max({selected})"}
    expr = " or ".join(f'label_replace({aggregates[row]}, "band", "{row}", "", "")' for row in BAND_ROWS)
    rows = {row: i for i, row in enumerate(BAND_ROWS)}
    return _on_grid(client.range(expr, lifetime.start, lifetime.end, step), lambda labels: rows.get(labels.get("band", "")),
                    len(BAND_ROWS), lifetime.start, step, points, SERIES[metric][1])


def _read_rows(client: QueryClient, series: _JobSeries, gpus: list[GpuKey], slow: set[GpuKey], step: float) -> None:
    """The BANDED metrics' own series of the stragglers of a job above DETAIL_GPUS (whose page
    draws their lines over the bands), on the page's grid: one range query on those GPUs."""
    if not slow or not series.grid or not series.bands:  # without bands the rows were read with the rest
        return
    keys = sorted(slow)
    selected = " or ".join(f'{{__name__=~"{"|".join(BANDED)}",{matchers}}}' for matchers in gpu_selectors(keys))
    parts = split_by_name(client.range(selected, series.grid[0], series.grid[-1], step))
    row_of = {k: i for i, k in enumerate(gpus)}
    for metric in BANDED:
        if metric in parts:
            rows = _matrix(parts[metric], keys, series.grid[0], step, len(series.grid), SERIES[metric][1])
            for k, values in zip(keys, rows):
                series.matrices[metric][row_of[k]] = values


def _usage(util: np.ndarray, gpus: list[GpuKey], step: float) -> tuple[dict[GpuKey, float], dict[GpuKey, float],
                                                                       dict[GpuKey, float]]:
    """Per GPU with samples: its mean and peak utilisation over the observed points; per GPU:
    the hours observed."""
    observed = (~np.isnan(util)).sum(axis=1) if gpus else np.zeros(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.nansum(util, axis=1) / observed if gpus else np.zeros(0)
    mean = {k: float(means[i]) for i, k in enumerate(gpus) if observed[i]}
    hours = {k: float(observed[i]) * step / 3600 for i, k in enumerate(gpus)}
    peak_util = {k: float(np.nanmax(util[i])) for i, k in enumerate(gpus) if observed[i]}
    return mean, hours, peak_util


def _gpu_rows(matrices: dict[str, np.ndarray], gpus: list[GpuKey], mean: dict[GpuKey, float], slow: set[GpuKey],
              detail: bool) -> list[GpuSeries]:
    """Every GPU's utilisation; its SM activity, memory and power when the page has every GPU's
    (``detail``) or it is a straggler."""
    util, memory, sm = matrices[UTILIZATION.metric], matrices["gpu_memory_used_bytes"], matrices[SM_ACTIVE.metric]
    rows = []
    for i, k in enumerate(gpus):
        full = detail or k in slow
        # Built without re-validating 512 x 240 floats the code above has just made.
        rows.append(GpuSeries.model_construct(
            node=k[0], gpu=k[1], utilization=_as_list(util[i]),
            sm_active=_as_list(sm[i]) if full and not np.isnan(sm[i]).all() else [],
            memory_bytes=_as_list(memory[i]) if full else [],
            power_watts=_as_list(matrices["gpu_power_watts"][i]) if full else [],
            mean_utilization=_rounded(mean.get(k)), straggler=k in slow))
    return rows


def _efficiency(record: JobRecord, lifetime: TimeRange, step: float, at: float, gpus: list[GpuKey],
                series: _JobSeries, mean: dict[GpuKey, float], hours: dict[GpuKey, float],
                measure: Measure) -> Efficiency:
    peak = series.peak("gpu_memory_used_bytes")
    totals = series.now.get("gpu_memory_total_bytes", {})
    run = _run_seconds(record, at)
    gpu_eff = efficiency(mean, hours)
    return Efficiency(
        gpu_hours=round(sum(hours.values()), 3), gpu_efficiency=_rounded(gpu_eff),
        memory_peak_bytes=peak,
        memory_total_bytes=statistics.median(totals[k] for k in gpus if k in totals) if totals else None,
        run_seconds=run, time_limit_seconds=record.time_limit_seconds,
        time_used_ratio=_rounded(run / record.time_limit_seconds) if run and record.time_limit_seconds else None,
        measure=measure.name, measure_title=measure.title, low=efficiency_low(gpu_eff, measure),
        observed_from=lifetime.start, notes=_notes(record, lifetime, step, gpu_eff, measure))


def _run_seconds(record: JobRecord, at: float) -> float | None:
    """From the job's start to its end, or to ``at`` while it runs."""
    if not record.start_time:
        return None
    return (record.end_time if record.state != "RUNNING" and record.end_time else at) - record.start_time


def _notes(record: JobRecord, lifetime: TimeRange, step: float, gpu_eff: float | None,
           measure: Measure) -> list[str]:
    notes = []
    if record.start_time and lifetime.start > record.start_time + step:
        notes.append("the job started before the chosen range (or the store's retention): "
                     "figures cover the observed part only")
    if efficiency_low(gpu_eff, measure):
        notes.append(f"GPU efficiency below {measure.efficiency_low_below:.0%} ({measure.title}): "
                     "the job holds GPUs it barely uses")
    return notes


__all__ = ["JobsView", "JobView", "JobNotFound", "POD_ENDED", "jobs", "job", "IDLE_BELOW"]
