"""Overview: KPIs, the node x GPU heatmap and the node status grid grouped by rack; from
NODE_CELLS_FROM_NODES nodes (dashboard/definitions.py) one cell per node instead
(dashboard/views/overview_nodes.py), the same page and route for every fleet and engine.

Payload size matters here (16,384 nodes x 8 GPUs): the heatmap is sent as one row of integers per
node plus a job index per cell into a table of job ids, never as an object per cell, and the
status grid as parallel arrays per rack.

So does what the engine ships back, and how many times it selects every GPU's series (each such
selection costs the engine seconds at 131,072 GPUs: docs/performance.md, "Scale: 16,384 nodes").
Only the heatmap's metric and the GPU -> job mapping come back per GPU, with every label but
``instance``, ``gpu`` (and ``job_id``) stripped by the engine; GPUs per node come back as one count
per node and unhealthy GPUs as the few that are, both read from the dashboard's recording rules
when they run (``fleet_gpus``); idle GPUs and set Slurm flags are filtered by the engine (only the
few that match come back, over the range and now); busy GPUs (allocated, read, and not idle now) and
the mean utilisation are computed here from those and the heatmap's values rather than selected
again; the remaining totals are one query. The per-GPU answers are
placed into the heatmap's grid with numpy, not a Python object per cell.
"""
from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np
from pydantic import BaseModel, Field

import dashboard.definitions as definitions
from dashboard.context import DashboardContext
from dashboard.definitions import (DOWN_FLAGS, DRAIN_FLAGS, allocation_samples, fleet_gpus, gpus_present,
                                   idle_gpus,
                                   node_targets, scheduler_node_flags, xid_errors_seen)
from dashboard.params import TimeRange
from dashboard.promql import GpuKey, GpuSamples, gpu_samples, scalars
from dashboard.views.cells import color_range, json_values, rounded
from dashboard.views.overview_nodes import JOB_COUNTS, NodeAnswers, NodeCells, ask_nodes, node_cells
from tsdb.client import QueryClient, QueryResult, Series

ColorBy = Literal["util", "util_min", "memory", "temperature", "power", "errors", "unhealthy", "status"]
# A colour of one scale's overview asked of the other: its nearest there (a deep link shared
# between a small and a large fleet still opens).
GPU_COLOR = {"util_min": "util", "unhealthy": "errors", "status": "util"}
NODE_COLOR = {"errors": "unhealthy"}
# colour -> (PromQL per GPU, scale applied to the value, unit shown, fixed colour range or None)
# (one series per GPU, labelled instance and gpu only).
HEAT_METRICS: dict[str, tuple[str, float, str, tuple[float, float] | None]] = {
    "util": ("max by (instance, gpu) (gpu_utilization_ratio)", 100.0, "%", (0.0, 100.0)),
    "memory": ("max by (instance, gpu) (gpu_memory_used_bytes)", 1 / 2**30, "GiB", None),
    "temperature": ("max by (instance, gpu) (gpu_temperature_celsius)", 1.0, "°C", None),
    "power": ("max by (instance, gpu) (gpu_power_watts)", 1.0, "W", None),
    # XIDs as the unhealthy definition counts them (a GPU's first XID included), {window} left for
    # the page's range.
    "errors": (f"sum by (instance, gpu) ({xid_errors_seen('gpu_xid_errors_total', '{window}')})"
               " or sum by (instance, gpu) (increase(gpu_ecc_errors_total{{type=\"uncorrected\"}}[{window}]))",
               1.0, "errors", None),
}
STATUS_CODES = ("ok", "alloc", "drain", "fault", "down", "unknown")
QUERY_THREADS = 4  # the overview's queries in flight at once
# Idle (docs/architecture.md#definitions): allocated and below 1% for the whole range. The engine returns only the GPUs
# below 1% (allocated or free); the allocation is matched here. (Joining with the job mapping in
# the engine returns fewer series but costs two more selections of every GPU: slower, measured.)
# Each GPU by its own measure (SM activity where it has GPM, else utilisation): idle_gpus().
IDLE = "max by (instance, gpu) (" + idle_gpus("{window}") + ")"
IDLE_NOW = "max by (instance, gpu) (" + idle_gpus() + ")"  # not busy (definitions.busy_gpus)


class Kpis(BaseModel):
    gpus_total: int
    gpus_busy: int = Field(description="allocated and at least 1% active now, each GPU by its own measure (SM "
                                       "activity where it has NVML GPM, else utilisation): never also idle")
    gpus_idle: int = Field(description="allocated, below 1% for the whole range")
    gpus_free: int = Field(description="not allocated to any job")
    gpus_unhealthy: int
    mean_utilization: float | None = Field(description="ratio 0-1 over all GPUs now")
    power_kw: float | None
    jobs_running: int
    jobs_pending: int
    alerts_firing: dict[str, int] = Field(description="firing alerts by severity (from ALERTS)")
    nodes_total: int
    nodes_drained: int
    nodes_down: int


class Heatmap(BaseModel):
    color_by: str
    unit: str
    zmin: float | None
    zmax: float | None
    nodes: list[str]
    gpus_per_node: int
    z: list[list[int | float | None]] = Field(description="one row per node, one value per GPU (null: no data); "
                                                          "whole numbers from 10 up, one decimal below")
    job_ids: list[str] = Field(description="table the cell job indices point into")
    jobs: list[list[int]] = Field(description="per cell: index into job_ids, -1 for none")
    unhealthy: list[list[int]] = Field(description="[row, column] of each unhealthy GPU")


class RackGroup(BaseModel):
    rack: str
    nodes: list[str]
    status: list[int] = Field(description="index into status_codes per node")
    unhealthy_gpus: list[int]


class Overview(BaseModel):
    time: float
    start: float
    end: float
    kpis: Kpis
    heatmap: Heatmap | None = Field(description="one cell per GPU, below NODE_CELLS_FROM_NODES nodes")
    status_codes: list[str] = list(STATUS_CODES)
    racks: list[RackGroup] = Field(description="the node status grid, with the heatmap")
    nodes: NodeCells | None = Field(None, description="one cell per node, from NODE_CELLS_FROM_NODES nodes")


def node_status(up: float | None, sched_node, unhealthy: int, flags: set[str] = frozenset(),
                allocated: bool = False) -> str:
    """One word per node for the status grid; the worst condition wins. ``flags`` and
    ``allocated`` stand in for the scheduler's node when there is no adapter (PromQL only)."""
    state = sched_node.state if sched_node is not None else ""
    if up == 0 or state in ("DOWN", "FAIL") or (sched_node is not None and sched_node.has_flag("NOT_RESPONDING")) \
            or flags & set(DOWN_FLAGS):
        return "down"
    if unhealthy:
        return "fault"
    if (sched_node is not None and sched_node.drain) or flags & set(DRAIN_FLAGS):
        return "drain"
    if state in ("ALLOCATED", "MIXED", "COMPLETING") or (sched_node is None and allocated):
        return "alloc"
    if up is None and sched_node is None:
        return "unknown"
    return "ok"


def _rows_of(samples: GpuSamples, row_of: dict[str, int]) -> np.ndarray:
    """Each sample's heatmap row, -1 for a node that has none."""
    return np.fromiter(map(row_of.get, samples.nodes, itertools.repeat(-1)), np.intp, len(samples.nodes))


def _grid(samples: GpuSamples, rows: np.ndarray, width: int, cells: int, fill: float | int | bool,
          values: Sequence | float | int | bool) -> np.ndarray:
    """One value per heatmap cell: ``values`` (one per sample, or one for all) where a sample
    lands (``rows``: ``_rows_of`` the samples), ``fill`` elsewhere; samples outside the grid are
    left out."""
    grid = np.full(cells, fill)
    if samples.nodes:
        gpus = np.asarray(samples.gpus, dtype=np.intp)
        inside = (rows >= 0) & (gpus < width)
        values = np.asarray(values)
        grid[rows[inside] * width + gpus[inside]] = values[inside] if values.ndim else values
    return grid


@dataclass
class _Answers:
    """What the overview's queries returned."""

    heat: GpuSamples  # the heatmap's metric per GPU
    held: GpuSamples  # the job holding each allocated GPU
    idle: GpuSamples  # GPUs below IDLE_BELOW over the whole range (allocated or free)
    idle_now: GpuSamples  # GPUs below IDLE_BELOW now, each by its own measure (the complement of busy)
    present: dict[str, int]  # node -> GPUs seen
    unhealthy: set[GpuKey]
    sums: dict[str, float | None]  # the fleet totals (_totals)
    targets: dict[str, Series]  # node -> its ``up`` series
    alerts: QueryResult  # firing alerts by severity
    flags: dict[str, set[str]]  # node -> Slurm flags set (without the scheduler adapter)


@dataclass
class _Layout:
    """The heatmap's shape: one row per node, in name order, ``width`` GPUs a row."""

    names: list[str]
    row_of: dict[str, int]
    gpu_count: np.ndarray  # GPUs per node (row)
    width: int
    heat_rows: np.ndarray  # each heatmap sample's row (-1: none), read once for the layout and the cells

    @property
    def cells(self) -> int:
        return len(self.names) * self.width


@dataclass
class _Cells:
    """Per-GPU answers as values at flat cell indices (row * width + GPU) of the heatmap's grid."""

    raw: np.ndarray  # the heatmap's metric, unscaled (NaN: no data)
    job_ids: list[str]
    jobs: np.ndarray  # index into job_ids, -1 for none
    busy: np.ndarray  # read now and not idle now (definitions.busy_gpus: each GPU by its own measure)
    idle: np.ndarray  # idle over the whole range

    @property
    def held(self) -> np.ndarray:
        return self.jobs >= 0


def overview(ctx: DashboardContext, tr: TimeRange, color_by: ColorBy = "util") -> Overview:
    snapshot = ctx.snapshot()
    present = gpus_present(ctx.query, tr.end)
    if _fleet_size(present[0], snapshot) >= definitions.NODE_CELLS_FROM_NODES:
        return _node_overview(ctx, tr, NODE_COLOR.get(color_by, color_by), snapshot, present)
    color_by = GPU_COLOR.get(color_by, color_by)
    answers = _ask(ctx.query, tr, color_by, snapshot, present)
    layout = _layout(answers, snapshot)
    cells = _cells(answers, layout)
    heatmap = _heatmap(cells, layout, answers.unhealthy, color_by)
    racks, statuses = _racks(answers, layout, snapshot)
    kpis = _kpis(answers, layout, cells, statuses, snapshot, color_by)
    return Overview(time=ctx.clock(), start=tr.start, end=tr.end, kpis=kpis, heatmap=heatmap, racks=racks)


def _totals(color_by: ColorBy, snapshot) -> dict[str, str]:
    """Fleet totals the heatmap's values cannot give, asked as one query. Busy GPUs and the mean
    utilisation are computed from the heatmap's utilisation (fetched per GPU, busy ones only, when
    the heatmap shows another metric): every selection of all GPUs' series costs the engine
    seconds at 131,072 GPUs (docs/performance.md), so none is asked twice."""
    totals = {"power": "sum(gpu_power_watts)"}
    if color_by != "util":
        totals["util"] = "avg(gpu_utilization_ratio >= 0)"  # >= 0: one NaN reading must not make it NaN
    if snapshot is None:
        totals.update(JOB_COUNTS)
    return totals


def _fleet_size(present: dict[str, int], snapshot) -> int:
    """GPU nodes: those with GPUs seen in the last hour and those the scheduler knows."""
    return len(set(present) | set(snapshot.nodes_by_name if snapshot is not None else ()))


def _ask(client: QueryClient, tr: TimeRange, color_by: ColorBy, snapshot,
         present: tuple[dict[str, int], bool]) -> _Answers:
    """Every query of the page. They are independent: in flight together when the client says the
    other side answers them in parallel (a server over HTTP, on its cores, the slowest first);
    otherwise (the in-process engine) one worker runs them one after another."""
    at, expr = tr.end, HEAT_METRICS[color_by][0]
    workers = QUERY_THREADS if client.concurrent_queries else 1
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="overview-query") as pool:
        fleet_f = pool.submit(fleet_gpus, client, at, None, present)
        heat_f = pool.submit(lambda: gpu_samples(client.instant(expr.format(window=tr.window), at)))
        held_f = pool.submit(allocation_samples, snapshot, client, at)
        idle_f = pool.submit(lambda: gpu_samples(client.instant(IDLE.format(window=tr.window), at)))
        idle_now_f = pool.submit(lambda: gpu_samples(client.instant(IDLE_NOW, at)))
        sums_f = pool.submit(scalars, client, _totals(color_by, snapshot), at)
        targets_f = pool.submit(node_targets, client, at, None)
        flags_f = pool.submit(scheduler_node_flags, client, at) if snapshot is None else None
        alerts_f = pool.submit(client.instant, 'count by (severity) (ALERTS{alertstate="firing"})', at)
        heat, held, idle = heat_f.result(), held_f.result(), idle_f.result()
        present, unhealthy = fleet_f.result()
        return _Answers(heat=heat, held=held, idle=idle, idle_now=idle_now_f.result(),
                        present=present, unhealthy=unhealthy, sums=sums_f.result(), targets=targets_f.result(),
                        alerts=alerts_f.result(), flags=flags_f.result() if flags_f is not None else {})


def _layout(answers: _Answers, snapshot) -> _Layout:
    """Nodes: every node with GPUs seen and every node the scheduler knows, in name order; a
    node's GPUs: the most any source shows (lost GPUs still count: they are the cluster's)."""
    sched_nodes = snapshot.nodes_by_name if snapshot is not None else {}
    heat, present = answers.heat, answers.present
    names = sorted(n for n in set(sched_nodes) | set(present) | set(heat.nodes) if n)
    row_of = {node: r for r, node in enumerate(names)}
    gpu_count = np.zeros(len(names), dtype=np.int64)
    heat_rows = _rows_of(heat, row_of)
    seen = heat_rows >= 0
    np.maximum.at(gpu_count, heat_rows[seen], np.asarray(heat.gpus, dtype=np.int64)[seen] + 1)
    for node, count in present.items():
        if node in row_of:
            gpu_count[row_of[node]] = max(gpu_count[row_of[node]], count)
    for name, node in sched_nodes.items():
        if name in row_of:
            gpu_count[row_of[name]] = max(gpu_count[row_of[name]], node.gpus)
    return _Layout(names, row_of, gpu_count, int(gpu_count.max(initial=0)), heat_rows)


def _cells(answers: _Answers, layout: _Layout) -> _Cells:
    row_of, width, cells = layout.row_of, layout.width, layout.cells
    heat, held = answers.heat, answers.held
    raw = _grid(heat, layout.heat_rows, width, cells, np.nan, heat.values)
    job_ids = sorted(set(held.values), key=lambda j: (len(j), j))
    job_index = {job: i for i, job in enumerate(job_ids)}
    jobs = _grid(held, _rows_of(held, row_of), width, cells, -1, [job_index[j] for j in held.values])
    idle_now = _grid(answers.idle_now, _rows_of(answers.idle_now, row_of), width, cells, False, True)
    idle = _grid(answers.idle, _rows_of(answers.idle, row_of), width, cells, False, True)
    # Not idle now is busy (definitions.busy_gpus), for a GPU with a reading: a lost one has none.
    return _Cells(raw, job_ids, jobs, np.isfinite(raw) & ~idle_now, idle)


def _heatmap(cells: _Cells, layout: _Layout, unhealthy: set[GpuKey], color_by: ColorBy) -> Heatmap:
    _, scale, unit, fixed = HEAT_METRICS[color_by]
    names, width = layout.names, layout.width
    shown = rounded(cells.raw * scale).reshape(len(names), width)
    marks = sorted([layout.row_of[node], g] for node, g in unhealthy if node in layout.row_of and g < width)
    zmin, zmax = color_range(shown, fixed)
    return Heatmap(color_by=color_by, unit=unit, zmin=zmin, zmax=zmax, nodes=names, gpus_per_node=width,
                   z=json_values(shown), job_ids=cells.job_ids, jobs=cells.jobs.reshape(len(names), width).tolist(),
                   unhealthy=marks)


def _unhealthy_by_node(unhealthy: set[GpuKey]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for node, _ in unhealthy:
        counts[node] = counts.get(node, 0) + 1
    return counts


def _racks(answers: _Answers, layout: _Layout, snapshot) -> tuple[list[RackGroup], dict[str, str]]:
    """The status grid, nodes grouped by rack, and each node's status."""
    sched_nodes = snapshot.nodes_by_name if snapshot is not None else {}
    targets = [answers.targets[n] for n in layout.names if n in answers.targets]
    rack_of = {s.labels.get("instance", ""): s.labels.get("rack", "") for s in targets}
    up_of = {s.labels.get("instance", ""): s.value for s in targets}
    unhealthy_by_node = _unhealthy_by_node(answers.unhealthy)
    held_nodes = set(answers.held.nodes)
    groups: dict[str, RackGroup] = {}
    statuses: dict[str, str] = {}
    for node in layout.names:
        status = node_status(up_of.get(node), sched_nodes.get(node), unhealthy_by_node.get(node, 0),
                             answers.flags.get(node, set()), node in held_nodes)
        statuses[node] = status
        rack = rack_of.get(node) or "(no rack)"
        group = groups.setdefault(rack, RackGroup(rack=rack, nodes=[], status=[], unhealthy_gpus=[]))
        group.nodes.append(node)
        group.status.append(STATUS_CODES.index(status))
        group.unhealthy_gpus.append(unhealthy_by_node.get(node, 0))
    return sorted(groups.values(), key=lambda g: g.rack), statuses


def _kpis(answers: _Answers, layout: _Layout, cells: _Cells, statuses: dict[str, str], snapshot,
          color_by: ColorBy) -> Kpis:
    sums = answers.sums
    mean_util = _mean_utilization(cells.raw) if color_by == "util" else sums["util"]
    running, pending, drained = _job_and_drain_counts(snapshot, sums, answers.flags)
    total = int(layout.gpu_count.sum())
    held = cells.held
    busy = int(np.count_nonzero(held & cells.busy))
    allocated = int(np.count_nonzero(held))
    return Kpis(
        gpus_total=total, gpus_busy=busy, gpus_idle=int(np.count_nonzero(held & cells.idle)),
        gpus_free=max(0, total - allocated), gpus_unhealthy=len(answers.unhealthy),
        mean_utilization=round(mean_util, 4) if mean_util is not None else None,
        power_kw=round(sums["power"] / 1000, 2) if sums["power"] is not None else None,
        jobs_running=running, jobs_pending=pending, alerts_firing=_alerts_firing(answers.alerts),
        nodes_total=len(layout.names), nodes_drained=drained,
        nodes_down=sum(1 for s in statuses.values() if s == "down"),
    )


def _mean_utilization(raw: np.ndarray) -> float | None:
    readings = raw[np.isfinite(raw)]
    return float(readings.mean()) if len(readings) else None


def _job_and_drain_counts(snapshot, sums: dict[str, float | None], flags: dict[str, set[str]]) -> tuple[int, int, int]:
    """(jobs running, jobs pending, nodes drained): the scheduler's snapshot, or its metrics."""
    if snapshot is not None:
        running = sum(1 for j in snapshot.jobs if j.state == "RUNNING")
        pending = sum(1 for j in snapshot.jobs if j.state == "PENDING")
        return running, pending, sum(1 for n in snapshot.nodes if n.drain)
    drained = sum(1 for node_flags in flags.values() if node_flags & set(DRAIN_FLAGS))
    return int(sums["jobs_RUNNING"] or 0), int(sums["jobs_PENDING"] or 0), drained


def _alerts_firing(result: QueryResult) -> dict[str, int]:
    alerts: dict[str, int] = {}
    for series in result.series:
        alerts[series.labels.get("severity") or "none"] = int(series.value)
    return alerts


def _node_overview(ctx: DashboardContext, tr: TimeRange, color: str, snapshot,
                   present: tuple[dict[str, int], bool]) -> Overview:
    """The overview at scale: node cells instead of the heatmap and the status grid, the same KPIs
    (idle: over the last minutes, not the range; docs/dashboard.md#the-overview-at-scale)."""
    workers = QUERY_THREADS if ctx.query.concurrent_queries else 1
    answers = ask_nodes(ctx.query, tr.end, color, snapshot, present, workers)
    sched_nodes = snapshot.nodes_by_name if snapshot is not None else {}
    names = sorted(n for n in set(sched_nodes) | set(answers.present) if n)
    gpu_count = {n: max(answers.present.get(n, 0), sched_nodes[n].gpus if n in sched_nodes else 0) for n in names}
    unhealthy_by_node = _unhealthy_by_node(answers.unhealthy)
    up_of = {n: s.value for n, s in answers.targets.items()}
    statuses = [node_status(up_of.get(n), sched_nodes.get(n), unhealthy_by_node.get(n, 0),
                            answers.flags.get(n, set()), answers.allocated.get(n, 0) > 0) for n in names]
    cells = node_cells(answers, names, statuses, STATUS_CODES, unhealthy_by_node, gpu_count, snapshot, color)
    return Overview(time=ctx.clock(), start=tr.start, end=tr.end, heatmap=None, racks=[], nodes=cells,
                    kpis=_node_kpis(answers, snapshot, sum(gpu_count.values()), statuses))


def _node_kpis(answers: NodeAnswers, snapshot, total: int, statuses: list[str]) -> Kpis:
    sums = answers.sums
    running, pending, drained = _job_and_drain_counts(snapshot, sums, answers.flags)
    return Kpis(
        gpus_total=total, gpus_busy=int(sums["busy"] or 0), gpus_idle=int(sums["idle"] or 0),
        gpus_free=max(0, total - int(sums["allocated"] or 0)), gpus_unhealthy=len(answers.unhealthy),
        mean_utilization=round(sums["util"], 4) if sums["util"] is not None else None,
        power_kw=round(sums["power"] / 1000, 2) if sums["power"] is not None else None,
        jobs_running=running, jobs_pending=pending, alerts_firing=_alerts_firing(answers.alerts),
        nodes_total=len(statuses), nodes_drained=drained, nodes_down=statuses.count("down"),
    )
