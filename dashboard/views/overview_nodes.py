"""The overview at scale: from NODE_CELLS_FROM_NODES nodes (dashboard/definitions.py) one cell per
node instead of one per GPU, grouped by rack (and partition, when the scheduler says), coloured by a
per-node aggregate, with the same KPIs; and the drill-down to one node's GPUs.

Every number comes from one series per node or one per fleet: the dashboard's recording rules
(group clusterwatch-dashboard, NODE_AGGREGATES) when they run, else the same aggregations asked
of the raw series with ``by (instance)`` (an engine still reads every GPU then, but only one
series per node comes back; the page says which). At 16,384 nodes x 8 GPUs each read of a GPU
family costs an engine about a second, so with the rules running a refresh reads none.
docs/dashboard.md#the-overview-at-scale says why the switch is where it is.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, Field

from dashboard.context import DashboardContext
from dashboard.definitions import (CLUSTER_TOTALS, GPUS_PRESENT_RECORDED, IDLE_BELOW, IDLE_WINDOW,
                                   UNHEALTHY_RECORDED, allocations, cluster_total, fleet_gpus, node_aggregate,
                                   node_targets, scheduler_node_flags, unhealthy_gpus)
from dashboard.params import TimeRange, regex_of
from dashboard.promql import by_label, finite, gpu_key, scalars
from dashboard.views.cells import color_range, json_values, rounded
from tsdb.client import QueryClient, QueryResult, Series

# colour -> (the per-node series of NODE_AGGREGATES, or None where the page counts it itself;
# scale applied to the value, unit shown, fixed colour range or None, what the colour means)
NODE_COLORS: dict[str, tuple[str | None, float, str, tuple[float, float] | None, str]] = {
    "util": ("instance:gpu_utilization:avg", 100.0, "%", (0.0, 100.0), "mean utilisation of the node's GPUs now"),
    "util_min": ("instance:gpu_utilization:min", 100.0, "%", (0.0, 100.0),
                 "utilisation of the node's least busy GPU now: an idle or straggling GPU shows"),
    "temperature": ("instance:gpu_temperature:max", 1.0, "°C", None, "temperature of the node's hottest GPU now"),
    "memory": ("instance:gpu_memory_used:sum", 1 / 2**30, "GiB", None, "device memory used on the node's GPUs, summed"),
    "power": ("instance:gpu_power:sum", 1.0, "W", None, "power drawn by the node's GPUs, summed"),
    "unhealthy": (None, 1.0, "GPUs", None, "unhealthy GPUs on the node: lost, an XID in the last 15 minutes, "
                                           "or row remapping pending or failed"),
    "status": (None, 1.0, "", None, "the node's status: down, GPU fault, drained, allocated or idle"),
}
# What the KPIs at scale mean where they differ from the per-GPU overview's (shown in the page).
IDLE_NOW = (f"allocated GPUs whose peak activity (SM activity where the GPU has it, else utilisation) over the "
            f"last {IDLE_WINDOW} stayed below {IDLE_BELOW:.0%} (now, not over the page's range)")
MEAN_UTILIZATION = "mean of the nodes' mean GPU utilisation now, weighted by their GPUs"


class NodeRack(BaseModel):
    rack: str
    partition: str = Field(description="the scheduler's first partition of these nodes ('' unknown): a rack "
                                       "across partitions is a group in each")
    nodes: list[str]
    status: list[int] = Field(description="index into the overview's status_codes per node")
    unhealthy_gpus: list[int]
    gpus: list[int] = Field(description="GPUs per node")
    value: list[int | float | None] = Field(description="the colour's value per node (null: no data); "
                                                        "whole numbers from 10 up, one decimal below")


class NodeCells(BaseModel):
    color_by: str
    unit: str
    zmin: float | None
    zmax: float | None
    description: str = Field(description="what the colour means")
    recorded: bool = Field(description="read from the dashboard's recording rules; false: computed by the page "
                                       "from the raw series (the rules have not run)")
    notes: dict[str, str] = Field(description="KPI -> what it means at this scale")
    racks: list[NodeRack]


@dataclass
class NodeAnswers:
    """What the node overview's queries returned."""

    present: dict[str, int]  # node -> GPUs present
    recorded: bool
    unhealthy: set[tuple[str, int]]
    values: dict[str, float]  # node -> the colour's aggregate
    allocated: dict[str, float]  # node -> GPUs allocated (asked without the scheduler adapter only)
    sums: dict[str, float | None]
    targets: dict[str, Series]
    alerts: QueryResult
    flags: dict[str, set[str]]


# Jobs running and pending from the scheduler's metrics, without its adapter's snapshot.
JOB_COUNTS = {f"jobs_{state}": f'count(slurm_job_info{{state="{state}"}})' for state in ("RUNNING", "PENDING")}
# The KPIs whose fleet totals (CLUSTER_TOTALS) are sums of per-node series (for ``util``, the mean
# weighted by GPUs present): without the rules the page sums its per-node answers.
PER_NODE_TOTALS = {"allocated": "instance:gpus_allocated:count", "power": "instance:gpu_power:sum",
                   "util": "instance:gpu_utilization:avg"}


def summed(per_node: dict[str, dict[str, float]], present: dict[str, int]) -> dict[str, float | None]:
    """The PER_NODE_TOTALS from per-node answers: without the rules each per-node expression reads
    every GPU's series, so it is asked once and summed here rather than asked again inside a sum."""
    totals = {name: finite(sum(per_node[record].values())) if per_node[record] else None
              for name, record in PER_NODE_TOTALS.items() if name != "util"}
    avg = per_node[PER_NODE_TOTALS["util"]]
    weight = sum(present[n] for n in avg if n in present)
    totals["util"] = finite(sum(v * present[n] for n, v in avg.items() if n in present) / weight) if weight else None
    return totals


def ask_nodes(client: QueryClient, at: float, color: str, snapshot, present: tuple[dict[str, int], bool],
              workers: int) -> NodeAnswers:
    """Every query of the node overview, none returning more than one series per node (the
    unhealthy GPUs: one per unhealthy GPU), each asked once."""
    counts, recorded = present
    record = NODE_COLORS[color][0]
    wanted = {record} if record else set()
    if snapshot is None:  # the status grid's "allocated" without the scheduler's nodes
        wanted.add(PER_NODE_TOTALS["allocated"])
    if recorded:
        totals = {kpi: cluster_total(kpi, True) for kpi in CLUSTER_TOTALS}
    else:
        wanted |= set(PER_NODE_TOTALS.values())
        totals = {kpi: cluster_total(kpi, False) for kpi in CLUSTER_TOTALS if kpi not in PER_NODE_TOTALS}
    if snapshot is None:
        totals.update(JOB_COUNTS)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="overview-query") as pool:
        # Recorded whenever the rules run, at any size: NODE_CELLS_FROM_NODES is the scale at which
        # every refresh computing the unhealthy expression costs seconds.
        unhealthy_f = pool.submit(fleet_gpus, client, at, 0, present)
        per_node_f = {r: pool.submit(_per_node, client, node_aggregate(r, recorded), at) for r in sorted(wanted)}
        sums_f = pool.submit(scalars, client, totals, at) if totals else None
        targets_f = pool.submit(node_targets, client, at, None)
        flags_f = pool.submit(scheduler_node_flags, client, at, recorded) if snapshot is None else None
        alerts_f = pool.submit(client.instant, 'count by (severity) (ALERTS{alertstate="firing"})', at)
        per_node = {r: f.result() for r, f in per_node_f.items()}
        sums = sums_f.result() if sums_f is not None else {}
        if not recorded:
            sums.update(summed(per_node, counts))
        return NodeAnswers(
            present=counts, recorded=recorded, unhealthy=unhealthy_f.result()[1],
            values=per_node.get(record, {}) if record else {}, allocated=per_node.get(PER_NODE_TOTALS["allocated"], {}),
            sums=sums, targets=targets_f.result(), alerts=alerts_f.result(),
            flags=flags_f.result() if flags_f is not None else {})


def _per_node(client: QueryClient, expr: str, at: float) -> dict[str, float]:
    return by_label(client.instant(expr, at), "instance")


def node_cells(answers: NodeAnswers, names: list[str], statuses: list[str], status_codes: tuple[str, ...],
               unhealthy_by_node: dict[str, int], gpu_count: dict[str, int], snapshot, color: str) -> NodeCells:
    """The node cells, grouped by partition and rack, in name order within a rack."""
    _, scale, unit, fixed, description = NODE_COLORS[color]
    if color == "unhealthy":
        raw = np.array([unhealthy_by_node.get(n, 0) for n in names], dtype=float)
    elif color == "status":
        raw = np.array([status_codes.index(s) for s in statuses], dtype=float)
    else:
        raw = np.array([answers.values.get(n, np.nan) for n in names], dtype=float)
    shown = rounded(raw * scale)
    zmin, zmax = color_range(shown, fixed)
    values = json_values(shown)
    sched_nodes = snapshot.nodes_by_name if snapshot is not None else {}
    targets = answers.targets
    racks: dict[tuple[str, str], NodeRack] = {}
    for i, node in enumerate(names):
        target = targets.get(node)
        rack = (target.labels.get("rack", "") if target is not None else "") or "(no rack)"
        sched = sched_nodes.get(node)
        partition = sched.partitions[0] if sched is not None and sched.partitions else ""
        group = racks.get((partition, rack))
        if group is None:
            group = racks[(partition, rack)] = NodeRack(rack=rack, partition=partition, nodes=[], status=[],
                                                        unhealthy_gpus=[], gpus=[], value=[])
        group.nodes.append(node)
        group.status.append(status_codes.index(statuses[i]))
        group.unhealthy_gpus.append(unhealthy_by_node.get(node, 0))
        group.gpus.append(gpu_count.get(node, 0))
        group.value.append(values[i])
    ordered = sorted(racks.values(), key=lambda g: (g.partition == "", g.partition, g.rack))
    notes = {"gpus_idle": IDLE_NOW, "mean_utilization": MEAN_UTILIZATION,
             "source": "dashboard recording rules (clusterwatch-dashboard)" if answers.recorded
             else "computed by the page: the dashboard's recording rules have not run"}
    return NodeCells(color_by=color, unit=unit, zmin=zmin, zmax=zmax, description=description,
                     recorded=answers.recorded, notes=notes, racks=ordered)


# The drill-down to one node's GPUs: a few series of that node only.
GPU_GAUGES = {"utilization": "gpu_utilization_ratio", "memory_bytes": "gpu_memory_used_bytes",
              "temperature": "gpu_temperature_celsius", "power_watts": "gpu_power_watts"}


class NodeGpu(BaseModel):
    gpu: int
    utilization: float | None
    memory_bytes: float | None
    temperature: float | None
    power_watts: float | None
    job_id: str | None
    unhealthy: bool


class NodeGpus(BaseModel):
    time: float
    node: str
    gpus: list[NodeGpu]


def node_gpus(ctx: DashboardContext, tr: TimeRange, name: str) -> NodeGpus:
    """Each GPU of one node now: the heat colours' gauges, its job, whether it is unhealthy.
    ``name`` must already be validated (dashboard.params.check_node)."""
    client, at, sel = ctx.query, tr.end, f'instance="{name}"'
    names = "|".join(GPU_GAUGES.values())
    gauges: dict[int, dict[str, float]] = {}
    for series in client.instant(f'{{__name__=~"{names}", {sel}}}', at).series:
        key = gpu_key(series.labels)
        if key is not None:
            gauges.setdefault(key[1], {})[series.labels.get("__name__", "")] = series.value
    jobs = _jobs_of(ctx.snapshot(), client, at, name, sel)
    unhealthy = _unhealthy_of(client, at, name, sel)
    indices = sorted(set(gauges) | set(jobs) | unhealthy)
    if not indices:
        raise LookupError(f"no GPUs seen on node {name}")
    rows = [NodeGpu(gpu=g, job_id=jobs.get(g), unhealthy=g in unhealthy,
                    **{field: _finite(gauges.get(g, {}).get(metric)) for field, metric in GPU_GAUGES.items()})
            for g in indices]
    return NodeGpus(time=ctx.clock(), node=name, gpus=rows)


def _finite(value: float | None) -> float | None:
    return value if value is not None and np.isfinite(value) else None


def _jobs_of(snapshot, client: QueryClient, at: float, name: str, sel: str) -> dict[int, str]:
    if snapshot is not None:
        return {gpu: job for (node, gpu), job in allocations(snapshot, client, at).items() if node == name}
    query = f'max by (instance, gpu, job_id) (gpu_job_info{{job_id!="", {sel}}})'  # ALLOCATED, this node's
    return {key[1]: labels["job_id"] for labels, _ in client.instant(query, at).samples()
            if (key := gpu_key(labels)) is not None}


def _unhealthy_of(client: QueryClient, at: float, name: str, sel: str) -> set[int]:
    """The recorded unhealthy GPUs of the node when the rules run (the node has a recorded GPU
    count), else the unhealthy expression asked for this node."""
    if client.instant(f"{GPUS_PRESENT_RECORDED}{{{sel}}}", at).series:
        result = client.instant(f"{UNHEALTHY_RECORDED}{{{sel}}}", at)
        return {key[1] for labels, _ in result.samples() if (key := gpu_key(labels)) is not None}
    return {gpu for node, gpu in unhealthy_gpus(client, at, regex_of([name])) if node == name}
