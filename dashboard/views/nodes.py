"""Nodes list and the node page: every GPU's time series, error history, NVLink and IB ports,
CPU/memory/disk, the jobs on it, the scheduler's state and the recent actions on it."""
from __future__ import annotations

import math

from pydantic import BaseModel, Field

from dashboard.context import DashboardContext
from dashboard.definitions import fleet_gpus, gpus_present, node_aggregate, node_targets, unhealthy_gpus
from dashboard.params import TimeRange, regex_of
from dashboard.promql import by_gpu, gpu_key, split_by_name
from dashboard.views.fabric_links import HcaLink, node_cables
from dashboard.views.overview import node_status
from tsdb.client import QueryClient

GPU_SERIES = {  # key in the view -> PromQL (one range query each, this node only)
    "utilization": "gpu_utilization_ratio",
    "memory_bytes": "gpu_memory_used_bytes",
    "temperature_celsius": "gpu_temperature_celsius",
    "power_watts": "gpu_power_watts",
    "sm_clock_hertz": "gpu_sm_clock_hertz",
}
IB_COUNTERS = ("link_downed_total", "symbol_error_total", "link_error_recovery_total",
               "port_errors_received_total", "local_link_integrity_errors_total",
               "excessive_buffer_overrun_errors_total", "port_discards_received_total")


class NodeRow(BaseModel):
    name: str
    rack: str
    status: str
    state: str
    flags: list[str]
    reason: str
    gpus: int
    gpus_allocated: int
    unhealthy_gpus: int
    mean_utilization: float | None


class NodesView(BaseModel):
    time: float
    nodes: list[NodeRow]


class Event(BaseModel):
    gpu: str
    kind: str = Field(description="xid, ecc or remap")
    detail: str
    count: float
    first_seen: float | None = Field(description="first time inside the range the counter went up")


class Port(BaseModel):
    device: str
    port: str
    state: float | None
    rate_bytes_per_second: float | None
    counters: dict[str, float]


class NvLink(BaseModel):
    gpu: int
    links: float | None
    active: float | None
    errors: dict[str, float]


class Action(BaseModel):
    time: float
    phase: str
    action: str
    actor: str
    reason: str
    detail: str


class NodeView(BaseModel):
    time: float
    start: float
    end: float
    name: str
    rack: str
    up: bool | None
    status: str
    scheduler: dict = Field(description="state, flags, reason, reason_set_by, reason_time, cpus, memory")
    timestamps: list[float]
    gpu_series: dict[str, dict[str, list[float | None]]] = Field(description="series -> GPU index -> values")
    throttle: dict[str, list[str]] = Field(description="GPU index -> clock-event reasons active now")
    unhealthy_gpus: list[int]
    events: list[Event]
    nvlink: list[NvLink]
    ib_ports: list[Port]
    fabric_links: list[HcaLink] = Field(description="the node's HCA cables in the fabric (fabric_link_info{node}), "
                                                    "their switch ports and recorded health")
    host_series: dict[str, list[float | None]] = Field(description="cpu_busy, memory_used ratios")
    filesystems: list[dict]
    jobs: list[dict]
    actions: list[Action]


class NodeNotFound(LookupError):
    pass


def _clean(values, grid, stamps) -> list[float | None]:
    at = dict(zip(stamps, values))
    return [None if (v := at.get(t)) is None or not math.isfinite(v) else round(v, 4) for t in grid]


def nodes(ctx: DashboardContext, tr: TimeRange) -> NodesView:
    client, at = ctx.query, tr.end
    # Per-node series only (the dashboard rules' when they run): at 16,384 nodes each read of
    # every GPU's series costs the engine about a second.
    present = gpus_present(client, at)
    counts, unhealthy = fleet_gpus(client, at, present=present)
    with_gpus = set(counts)
    util = client.instant(node_aggregate("instance:gpu_utilization:avg", present[1]), at).series
    mean = {s.labels.get("instance", ""): s.value for s in util}
    bad: dict[str, int] = {}
    for node, _ in unhealthy:
        bad[node] = bad.get(node, 0) + 1
    snapshot = ctx.snapshot()
    sched = snapshot.nodes_by_name if snapshot is not None else {}
    targets = node_targets(client, at, (with_gpus | set(sched)) - {""})
    rows = []
    for name in sorted(targets.keys() | (with_gpus | set(sched)) - {""}):
        node = sched.get(name)
        target = targets.get(name)
        rows.append(NodeRow(
            name=name, rack=target.labels.get("rack", "") if target else "",
            status=node_status(target.value if target else None, node, bad.get(name, 0)),
            state=node.state if node else "", flags=list(node.state_flags) if node else [],
            reason=node.reason if node else "", gpus=node.gpus if node else 0,
            gpus_allocated=node.gpus_allocated if node else 0, unhealthy_gpus=bad.get(name, 0),
            mean_utilization=round(mean[name], 4) if name in mean and math.isfinite(mean[name]) else None))
    return NodesView(time=ctx.clock(), nodes=rows)


def _first_increase(series) -> float | None:
    for i in range(1, len(series.values)):
        if series.values[i] > series.values[i - 1]:
            return series.timestamps[i]
    return None


def node(ctx: DashboardContext, tr: TimeRange, name: str) -> NodeView:
    """``name`` must already be validated (dashboard.params.check_node)."""
    client, at, sel = ctx.query, tr.end, f'instance="{name}"'
    snapshot = ctx.snapshot()
    sched = snapshot.node(name) if snapshot is not None else None
    up_series = client.instant(f"up{{{sel}}}", at).series
    if not up_series and sched is None:
        raise NodeNotFound(f"node {name} is neither scraped nor known to the scheduler")
    up = up_series[0] if up_series else None
    step = tr.step()
    grid, gpu_series = _gpu_series(client, tr, sel, step)
    host_series = _host_series(client, tr, sel, step, grid)
    throttle = _throttle(client, at, sel)
    events = _events(client, tr, sel, step)
    nvlink = _nvlink(client, at, sel, name)
    ib_ports = _ib_ports(client, at, sel)
    fabric_links = node_cables(client, at, name)
    filesystems = _filesystems(client, at, sel)
    jobs = _jobs_on(snapshot, client, at, name, sel)
    unhealthy = sorted(g for n, g in unhealthy_gpus(client, at, regex_of([name])) if n == name)
    return NodeView(
        time=ctx.clock(), start=tr.start, end=tr.end, name=name, rack=up.labels.get("rack", "") if up else "",
        up=up.value == 1 if up else None, status=node_status(up.value if up else None, sched, len(unhealthy)),
        scheduler=_scheduler_facts(sched), timestamps=grid, gpu_series=gpu_series, throttle=throttle,
        unhealthy_gpus=unhealthy, events=events, nvlink=nvlink, ib_ports=ib_ports, fabric_links=fabric_links,
        host_series=host_series,
        filesystems=filesystems, jobs=jobs, actions=_actions(ctx, name),
    )


def _gpu_series(client: QueryClient, tr: TimeRange, sel: str,
                step: float) -> tuple[list[float], dict[str, dict[str, list[float | None]]]]:
    """The page's time grid (the first metric's timestamps) and each GPU metric's series per GPU
    index on it: one range query per metric, this node only."""
    grid: list[float] = []
    gpu_series: dict[str, dict[str, list[float | None]]] = {}
    for key, metric in GPU_SERIES.items():
        result = client.range(f"{metric}{{{sel}}}", tr.start, tr.end, step)
        if not grid:
            grid = sorted({t for s in result.series for t in s.timestamps})
        gpu_series[key] = {s.labels.get("gpu", ""): _clean(s.values, grid, s.timestamps)
                           for s in sorted(result.series, key=lambda s: int(s.labels.get("gpu", "0") or 0))}
    return grid, gpu_series


def _host_series(client: QueryClient, tr: TimeRange, sel: str, step: float,
                 grid: list[float]) -> dict[str, list[float | None]]:
    """CPU busy and memory used, as ratios on the page's grid."""
    host = {
        "cpu_busy": f'1 - avg(rate(node_cpu_seconds_total{{{sel},mode="idle"}}[{max(60, int(step * 2))}s]))',
        "memory_used": f"1 - node_memory_MemAvailable_bytes{{{sel}}} / node_memory_MemTotal_bytes{{{sel}}}",
    }
    host_series = {}
    for key, expr in host.items():
        result = client.range(expr, tr.start, tr.end, step).series
        host_series[key] = _clean(result[0].values, grid, result[0].timestamps) if result else []
    return host_series


def _throttle(client: QueryClient, at: float, sel: str) -> dict[str, list[str]]:
    """GPU index -> the clock-event reasons active now."""
    throttle: dict[str, list[str]] = {}
    for s in client.instant(f"gpu_clock_event_active{{{sel}}} == 1", at).series:
        throttle.setdefault(s.labels.get("gpu", ""), []).append(s.labels.get("reason", ""))
    return throttle


def _events(client: QueryClient, tr: TimeRange, sel: str, step: float) -> list[Event]:
    """XIDs, ECC errors and remapped rows counted in the range, newest first."""
    events: list[Event] = []
    history = client.range(f'{{{sel},__name__=~"gpu_xid_errors_total|gpu_ecc_errors_total|gpu_remapped_rows"}}',
                           tr.start, tr.end, step).series
    for s in history:
        if not s.values or s.values[-1] <= 0:
            continue
        kind, detail = _event_kind(s.labels)
        events.append(Event(gpu=s.labels.get("gpu", ""), kind=kind, detail=detail, count=s.values[-1],
                            first_seen=_first_increase(s)))
    events.sort(key=lambda e: (-(e.first_seen or 0), e.gpu))
    return events


def _event_kind(labels: dict[str, str]) -> tuple[str, str]:
    metric = labels.get("__name__", "")
    if metric == "gpu_xid_errors_total":
        return "xid", f"XID {labels.get('xid', '?')} (action: {labels.get('action', '-')})"
    if metric == "gpu_ecc_errors_total":
        return "ecc", f"{labels.get('type', '')} {labels.get('counter', '')}".strip()
    return "remap", f"rows remapped ({labels.get('type', '')})"


def _nvlink(client: QueryClient, at: float, sel: str, name: str) -> list[NvLink]:
    """Per GPU: NVLink links, those active, and the error counters by type."""
    links = split_by_name(client.instant(
        f'{{{sel},__name__=~"gpu_nvlink_links|gpu_nvlink_links_active"}}', at))
    link_total, link_active = by_gpu(links.get("gpu_nvlink_links", _empty())), \
        by_gpu(links.get("gpu_nvlink_links_active", _empty()))
    link_errors: dict[int, dict[str, float]] = {}
    for s in client.instant(f"gpu_nvlink_errors_total{{{sel}}}", at).series:
        if (k := gpu_key(s.labels)) is not None:
            link_errors.setdefault(k[1], {})[s.labels.get("type", "")] = s.value
    gpus = sorted({k[1] for k in link_total} | {k[1] for k in link_active} | set(link_errors))
    return [NvLink(gpu=g, links=link_total.get((name, g)), active=link_active.get((name, g)),
                   errors=link_errors.get(g, {})) for g in gpus]


def _ib_ports(client: QueryClient, at: float, sel: str) -> list[Port]:
    """Each InfiniBand port's state, rate and error counters, by device and port."""
    names = "|".join(("state_id", "rate_bytes_per_second") + IB_COUNTERS)
    ports: dict[tuple[str, str], Port] = {}
    for s in client.instant(f'{{{sel},__name__=~"node_infiniband_({names})"}}', at).series:
        key = (s.labels.get("device", ""), s.labels.get("port", ""))
        port = ports.setdefault(key, Port(device=key[0], port=key[1], state=None, rate_bytes_per_second=None,
                                          counters={}))
        field = s.labels.get("__name__", "").removeprefix("node_infiniband_")
        if field == "state_id":
            port.state = s.value
        elif field == "rate_bytes_per_second":
            port.rate_bytes_per_second = s.value
        else:
            port.counters[field] = s.value
    return sorted(ports.values(), key=lambda p: (p.device, p.port))


def _filesystems(client: QueryClient, at: float, sel: str) -> list[dict]:
    fs = split_by_name(client.instant(
        f'{{{sel},__name__=~"node_filesystem_size_bytes|node_filesystem_avail_bytes"}}', at))
    avail = {s.labels.get("mountpoint"): s.value for s in fs.get("node_filesystem_avail_bytes", _empty()).series}
    return [{"mountpoint": s.labels.get("mountpoint", ""), "fstype": s.labels.get("fstype", ""),
             "size_bytes": s.value, "avail_bytes": avail.get(s.labels.get("mountpoint"))}
            for s in fs.get("node_filesystem_size_bytes", _empty()).series]


def _jobs_on(snapshot, client: QueryClient, at: float, name: str, sel: str) -> list[dict]:
    """The jobs running on the node: the scheduler's snapshot, or its metrics without an adapter."""
    if snapshot is None:
        return [{"job_id": s.labels.get("job_id", ""), "gpus": [int(s.labels.get("gpu", 0))]}
                for s in client.instant(f"slurm_job_gpu_info{{{sel}}}", at).series]
    return [{"job_id": job.job_id, "name": job.name, "user": job.user, "state": job.state,
             "gpus": list(job.gpu_indices.get(name, ())), "start_time": job.start_time}
            for job in snapshot.jobs if name in job.nodes and job.state in ("RUNNING", "COMPLETING")]


def _scheduler_facts(sched) -> dict:
    """What the scheduler says about the node ({} without an adapter or when it does not know it)."""
    if not sched:
        return {}
    return {"state": sched.state, "flags": list(sched.state_flags), "reason": sched.reason,
            "reason_set_by": sched.reason_set_by, "reason_time": sched.reason_time, "cpus": sched.cpus,
            "cpus_allocated": sched.cpus_allocated, "memory_bytes": sched.memory_bytes,
            "gpus": sched.gpus, "gpus_allocated": sched.gpus_allocated}


def _actions(ctx: DashboardContext, name: str) -> list[Action]:
    """The scheduler adapter's recent actions on the node (drain, resume...), as audited."""
    return [Action(time=r.time, phase=r.phase, action=r.action, actor=r.actor, reason=r.reason, detail=r.detail)
            for r in ctx.audit.records(name)]


def _empty():
    from tsdb.client import QueryResult
    return QueryResult("vector")
