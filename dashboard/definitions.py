"""docs/architecture.md's definitions, written once for every page and for the rule pack: idle,
hung, straggler, held-but-unused, unhealthy, job GPU efficiency, and where "which job holds which
GPU" comes from.

The thresholds below are the rule pack's: ``JOB_RULES`` writes the job rules of
alerts/rules/jobs.yml (and the recorded series they read) from them, and
tests/alerts/test_rules_pack.py holds the YAML equal to it, as it holds the XID rules to
``xid_errors_seen``; tests/dashboard/test_definitions.py shows page and rules flagging the same GPUs
and jobs on one data set. The page applies each to the range it shows (per-GPU means and peaks over
the range), the rules to the last minutes (their windows and ``for``)."""
from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Iterable, Mapping

from dashboard.promql import GpuKey, GpuSamples, by_label, gpu_key, gpu_samples
from tsdb.client import QueryClient, QueryResult, Series

IDLE_BELOW = 0.01  # activity (either measure) under which an allocated GPU counts as idle
IDLE_WINDOW, IDLE_FOR = "5m", "25m"  # JobGpusIdle: the peak over 5 minutes stays below it for 25 more
HUNG_MEMORY_ABOVE = 2**30  # a hung job's idle GPUs hold more than a bare CUDA context: over 1 GiB
HUNG_FOR = "15m"
STRAGGLER_BELOW_MEDIAN = 0.7  # a GPU below 0.7x its job's median activity ...
STRAGGLER_MIN_GPUS = 4  # ... while the median is busy (Measure.straggler_busy_above), in a job of 4 GPUs or more
STRAGGLER_FOR = "15m"
CLOCK_STRAGGLER_BELOW_MEDIAN = 0.85  # a busy GPU's SM clock (of its maximum) below 0.85x its job's median
HELD_UNUSED_FOR = "30m"  # an allocated GPU with no process on it for this long
EFFICIENCY_WINDOW = "1h"  # the rule's job GPU efficiency is over the last hour, low below
EFFICIENCY_LOW_FOR = "2h"  # Measure.efficiency_low_below for two hours


@dataclass(frozen=True)
class Measure:
    """What a GPU's activity is read from (docs/architecture.md#definitions): the SM activity of
    NVML's GPM where the GPU has it, else NVML's utilisation. The two are not the same scale (a
    GPU 100% "utilised" by one small kernel may have 5% of its SMs busy; a healthy training step
    keeps roughly 40-80% of them busy at 100% utilisation), so the thresholds that compare a level,
    not GPUs with each other, are per measure; idle (1%) and the straggler ratio (0.7x the median)
    hold for both."""

    name: str  # the ``measure`` label of the recorded series and alerts, and the API's field
    metric: str  # the exporter's per-GPU series
    title: str  # how pages, panels and alerts name it
    efficiency_low_below: float  # JobGpuEfficiencyLow
    straggler_busy_above: float  # GpuStragglerUtilization: the job's median is above this


SM_ACTIVE = Measure("sm_active", "gpu_sm_active_ratio", "SM activity", 0.2, 0.25)
UTILIZATION = Measure("utilization", "gpu_utilization_ratio", "utilisation", 0.3, 0.5)
MEASURES = {m.name: m for m in (SM_ACTIVE, UTILIZATION)}
# The utilisation thresholds under their former names (the rule pack's before GPM).
EFFICIENCY_LOW_BELOW = UTILIZATION.efficiency_low_below
STRAGGLER_BUSY_ABOVE = UTILIZATION.straggler_busy_above


def job_measure(gpus: Iterable[GpuKey], with_sm_active: Iterable[GpuKey]) -> Measure:
    """A job's measure: SM activity when every one of its GPUs has it, else utilisation for all of
    them. One measure per job, because the straggler and efficiency definitions compare or average
    its GPUs: an SM activity beside another GPU's utilisation says nothing."""
    gpus, present = list(gpus), set(with_sm_active)
    return SM_ACTIVE if gpus and all(k in present for k in gpus) else UTILIZATION


def idle_gpus(window: str | None = None) -> str:
    """PromQL: the GPUs (by instance and gpu) whose peak activity over ``window`` (None: now) is
    below ``IDLE_BELOW``, each by its own measure: SM activity where it has it, else utilisation.
    Per GPU, not per job: idle compares a GPU with a threshold that holds for both measures."""
    def level(metric: str) -> str:
        return f"max_over_time({metric}[{window}])" if window else metric

    return by_own_measure(level(SM_ACTIVE.metric), level(UTILIZATION.metric), f"< {IDLE_BELOW}")


def busy_gpus(sm_active: str = SM_ACTIVE.metric, utilization: str = UTILIZATION.metric) -> str:
    """PromQL: the GPUs active now, at ``IDLE_BELOW`` or above by their own measure, so that no GPU
    is busy and idle at once (idle: its peak over a window, which holds the value now, below it).
    A GPU "utilised" by a kernel spinning on idle SMs (a hung collective) is not busy. The
    arguments: the two series to read, per GPU (the raw families, or recorded per-GPU-and-job ones)."""
    return by_own_measure(sm_active, utilization, f">= {IDLE_BELOW}", has_sm_active=sm_active)


def by_own_measure(sm_active: str, utilization: str, condition: str, has_sm_active: str = SM_ACTIVE.metric) -> str:
    """PromQL: the GPUs whose SM activity meets ``condition`` where they have one (a series in
    ``has_sm_active``), else whose utilisation does (``sm_active`` and ``utilization``: per-GPU
    expressions)."""
    return (f"({sm_active} {condition})"
            f" or (({utilization} {condition}) unless on (instance, gpu) {has_sm_active})")


def job_activity_by_measure(sm_active: str, utilization: str, allocated: str) -> dict[str, str]:
    """PromQL per measure name: per (GPU, job) the activity of the jobs of that measure
    (``job_measure``), with a ``measure`` label naming it. ``sm_active`` and ``utilization`` are
    per-(GPU, job) series with a ``job_id`` label, ``allocated`` one series per GPU allocated to a
    job: a job whose every allocated GPU has an SM activity gets those, any other its GPUs'
    utilisation."""
    every_gpu = f"(count by (job_id) ({sm_active}) == count by (job_id) ({allocated}))"
    return {SM_ACTIVE.name: f'label_replace(({sm_active}) and on (job_id) {every_gpu}, "measure", "{SM_ACTIVE.name}", "", "")',
            UTILIZATION.name: (f'label_replace(({utilization}) unless on (job_id) {every_gpu},'
                               f' "measure", "{UTILIZATION.name}", "", "")')}


def job_activity(sm_active: str, utilization: str, allocated: str) -> str:
    """PromQL: per (GPU, job) the activity by the job's measure, every job
    (``job_activity_by_measure``'s parts joined)."""
    return " or ".join(job_activity_by_measure(sm_active, utilization, allocated).values())


def by_measure(expr: str, condition: str, threshold: str) -> str:
    """PromQL: ``expr`` (series with a ``measure`` label) where ``condition`` (``<`` or ``>``) holds
    against each measure's ``threshold`` (a Measure attribute): one selector per measure."""
    return " or ".join(f'({expr}{{measure="{m.name}"}} {condition} {getattr(m, threshold)})'
                       for m in MEASURES.values())


HEALTH_WINDOW = "15m"  # an XID or a row-remap event this recent makes a GPU unhealthy now
# How long before a window an XID counter's value still counts as its value at the window's start:
# Prometheus's staleness lookback. A series missing for a scrape or two there (an exporter restart,
# which recovers the same count from the kernel log) keeps its count; one absent that long is new.
XID_WINDOW_START = "5m"


def xid_errors_seen(selector: str, window: str) -> str:
    """PromQL: per XID counter series of ``selector``, the XIDs first seen in the last ``window``;
    only series with at least one. The one definition of "had an XID in the last W": the
    dashboard's unhealthy GPUs and errors colour, its recording rule and the XID alert rules
    (alerts/rules/hardware.yml) all use it, tests hold the YAML equal.

    The window's samples, not the instant value, so a series that stops (the node reboots; its
    exporter starts again without the old boot's counters) keeps its XIDs for the whole window.
    The latest count is compared with the count at the window's start, not left to increase()
    alone, which needs two samples and so never sees a series born at 1 (a GPU's first XID of a
    code) nor a count that rose while the series was missing:
      - no count at the window's start: the series is new, every XID it counts is;
      - more than at the start: the difference;
      - less than at the start: the counter restarted (a reboot), every XID it counts since;
      - else what increase() sees within the window (a restart and new XIDs inside it).
    Each case, and the two this cannot tell apart, in docs/alerts.md#xid-errors-first-seen-in-a-window.
    """
    latest = f"last_over_time({selector}[{window}])"
    at_start = f"last_over_time({selector}[{XID_WINDOW_START}] offset {window})"
    return (f"({latest} > 0 unless {at_start})"
            f" or ({latest} - {at_start} > 0)"
            f" or ({latest} < {at_start})"
            f" or (increase({selector}[{window}]) > 0)")


# A GPU is unhealthy when NVML lost it, when it raised an XID recently, or when HBM row remapping
# is pending (needs a reset) or failed (needs an RMA).
def unhealthy_expression(matchers: str = "") -> str:
    """PromQL: one series per unhealthy GPU (whichever conditions hold), over the GPUs that
    ``matchers`` (label matchers, e.g. ``instance=~"n1|n2"``) select: the matchers go into every
    selector, so a node's page reads that node's series, not every GPU's and then filters."""
    def selector(metric: str) -> str:
        return f"{metric}{{{matchers}}}" if matchers else metric

    return (f"({selector('gpu_up')} == 0)"
            f" or (sum by (instance, gpu) ({xid_errors_seen(selector('gpu_xid_errors_total'), HEALTH_WINDOW)}))"
            f" or ({selector('gpu_remapped_rows_pending')} > 0) or ({selector('gpu_remapped_rows_failure')} > 0)")


UNHEALTHY = unhealthy_expression()


NODE_LOOKBACK = "1h"
# Every GPU that exposed the exporter's gpu_up within the lookback: a GPU whose node has just gone
# down (its series stale) still counts, and still marks its node as a GPU node.
GPU_PRESENT = f"last_over_time(gpu_up[{NODE_LOOKBACK}])"
# The same, counted per node: one series per node instead of one per GPU (131,072 at 16,384 nodes).
GPUS_PRESENT_BY_NODE = f"count by (instance) ({GPU_PRESENT})"
# Slurm node flags (scheduler/metrics.py writes them in lower case) that make a node's status.
DRAIN_FLAGS = ("drain",)
DOWN_FLAGS = ("down", "fail", "not_responding")


def node_targets(client: QueryClient, at: float, nodes: set[str] | None) -> dict[str, Series]:
    """instance -> ``up`` series (value, rack label) of the given nodes (None: every instance; the
    caller keeps its GPU nodes). GPU nodes are those with
    GPUs present or known to the scheduler: a real Prometheus also scrapes targets that are not
    (ClusterWatch's own /metrics, other services), which must not appear as nodes."""
    # Labels other than the node and its rack stripped by the engine: at 16,384 nodes every label
    # dropped there is one less to encode, ship and parse here.
    return {name: s for s in client.instant("max by (instance, rack) (up)", at).series
            if (name := s.labels.get("instance", "")) and (nodes is None or name in nodes)}


def unhealthy_gpus(client: QueryClient, at: float, instance_regex: str | None = None) -> set[GpuKey]:
    query = unhealthy_expression(f'instance=~"{instance_regex}"' if instance_regex else "")
    return _gpu_keys(client.instant(f"count by (instance, gpu) ({query})", at))  # whichever condition matched


def _gpu_keys(result: QueryResult) -> set[GpuKey]:
    return {k for labels, _ in result.samples() if (k := gpu_key(labels)) is not None}


# The same facts over the whole fleet, as the dashboard's recording rules record them
# (alerts/rules/recording.yml, group clusterwatch-dashboard; a test holds the expressions equal).
GPUS_PRESENT_RECORDED = "instance:gpus_present:count"
UNHEALTHY_RECORDED = "instance_gpu:gpu_unhealthy:count"


# Below this many nodes the unhealthy expression is cheap (milliseconds at 140 nodes) and is
# asked directly, so a fault shows on the next refresh; above it, the recorded series (up to one
# rule interval old) spare the engine four reads of every GPU's series per refresh.
RECORDED_UNHEALTHY_FROM_NODES = 2_000


def gpus_present(client: QueryClient, at: float) -> tuple[dict[str, int], bool]:
    """Per node the GPUs present, and whether the dashboard's recording rules are being evaluated
    (then read from their series: at 16,384 nodes computing it costs ~0.4 s a refresh). The rules
    record a node's GPUs present whenever there are any, so an empty answer means they are not
    loaded (a Prometheus without the pack, or a server just started)."""
    present = by_label(client.instant(GPUS_PRESENT_RECORDED, at), "instance")
    recorded = bool(present)
    if not recorded:
        present = by_label(client.instant(GPUS_PRESENT_BY_NODE, at), "instance")
    return {node: int(count) for node, count in present.items()}, recorded


def fleet_gpus(client: QueryClient, at: float, recorded_from_nodes: int | None = None,
               present: tuple[dict[str, int], bool] | None = None) -> tuple[dict[str, int], set[GpuKey]]:
    """Per node the GPUs present (``gpus_present``, unless given), and every unhealthy GPU: read
    from the recording rules' series when they are being evaluated and the fleet has
    ``recorded_from_nodes`` nodes or more, else computed here."""
    if recorded_from_nodes is None:
        recorded_from_nodes = RECORDED_UNHEALTHY_FROM_NODES
    counts, recorded = present if present is not None else gpus_present(client, at)
    if recorded and len(counts) >= recorded_from_nodes:
        unhealthy = _gpu_keys(client.instant(UNHEALTHY_RECORDED, at))
    else:
        unhealthy = unhealthy_gpus(client, at)
    return counts, unhealthy


def allocations(snapshot, client: QueryClient, at: float) -> dict[GpuKey, str]:
    """GPU -> job id. The scheduler is the authority on allocation; without an adapter the
    exporters' ``gpu_job_info`` (cgroup/process mapping) says the same through PromQL."""
    if snapshot is not None:
        held: dict[GpuKey, str] = {}
        for job in snapshot.jobs:
            if job.state != "RUNNING":
                continue
            for node, indices in job.gpu_indices.items():
                for index in indices:
                    held[(node, int(index))] = job.job_id
        return held
    return {k: labels["job_id"] for labels, _ in client.instant(ALLOCATED, at).samples()
            if labels.get("job_id") and (k := gpu_key(labels)) is not None}


# GPU -> job from the exporters' process mapping, reduced by the engine to the three labels used.
ALLOCATED = 'max by (instance, gpu, job_id) (gpu_job_info{job_id!=""})'
def allocation_samples(snapshot, client: QueryClient, at: float) -> GpuSamples:
    """GPU -> job id, as ``allocations`` says, in columns (the overview's shape).

    (Asking the engine for one series per node held whole by one job, and per GPU only for the
    others, was tried: at 131,072 GPUs it cost VictoriaMetrics four more selections of every
    GPU's mapping, 15 s on the bench machine, to save parsing 100,000 short series here, 0.5 s.)"""
    if snapshot is None:
        return gpu_samples(client.instant(ALLOCATED, at), "job_id")
    held = GpuSamples()
    for (node, gpu), job in allocations(snapshot, client, at).items():
        held.add(node, gpu, job)
    return held


# The Slurm flags that make a node's status, only where set: a few series, but the engine reads
# four per node (65,536 at 16,384 nodes), so the overview at scale reads them recorded.
NODE_FLAGS_SET = f'slurm_node_flag{{flag=~"{"|".join(DRAIN_FLAGS + DOWN_FLAGS)}"}} == 1'
NODE_FLAGS_RECORDED = "instance_flag:slurm_node_flag:set"


def scheduler_node_flags(client: QueryClient, at: float, recorded: bool = False) -> dict[str, set[str]]:
    """instance -> the Slurm flags set on it (drain, down, ...), from the scheduler's metrics
    (``NODE_FLAGS_SET``, or with ``recorded`` the dashboard rules' copy of it)."""
    flags: dict[str, set[str]] = {}
    for s in client.instant(NODE_FLAGS_RECORDED if recorded else NODE_FLAGS_SET, at).series:
        flags.setdefault(s.labels.get("instance", ""), set()).add(s.labels.get("flag", ""))
    return flags


def efficiency(mean_by_gpu: Mapping[GpuKey, float], hours_by_gpu: Mapping[GpuKey, float] | None = None) -> float | None:
    """Job GPU efficiency: the job's activity (by its measure, ``job_measure``) weighted by each
    GPU's hours (equal weights when the GPUs were observed for the same time)."""
    keys = [k for k in mean_by_gpu if hours_by_gpu is None or hours_by_gpu.get(k, 0) > 0]
    if not keys:
        return None
    weights = [hours_by_gpu[k] if hours_by_gpu else 1.0 for k in keys]
    return sum(mean_by_gpu[k] * w for k, w in zip(keys, weights)) / sum(weights)


def stragglers(mean_by_gpu: Mapping[GpuKey, float], job_gpus: int | None = None,
               measure: Measure = UTILIZATION) -> set[GpuKey]:
    """The GPUs below ``STRAGGLER_BELOW_MEDIAN`` x the median of the job's GPUs' activity (by
    ``measure``, the job's) while that median is above the measure's ``straggler_busy_above``, in
    a job of ``STRAGGLER_MIN_GPUS`` or more (``job_gpus``, its allocated GPUs; default: those with
    an activity), as GpuStragglerUtilization says; ``mean_by_gpu`` is each GPU's mean over the
    page's range."""
    if (len(mean_by_gpu) if job_gpus is None else job_gpus) < STRAGGLER_MIN_GPUS or not mean_by_gpu:
        return set()
    median = statistics.median(mean_by_gpu.values())
    if not median > measure.straggler_busy_above:
        return set()
    return {k for k, v in mean_by_gpu.items() if v < STRAGGLER_BELOW_MEDIAN * median}


def gpu_efficiency(activity: str, window: str) -> str:
    """PromQL: per job, the job GPU efficiency over ``window`` of ``activity``, a per-(GPU, job)
    activity with ``job_id`` and ``measure`` labels (a subquery's ``(expr)`` with ``window`` as
    ``1h:1m``). Every sample is the same slice of GPU time, so the GPU-hour-weighted mean is the
    samples' sum over their count: what ``efficiency`` computes from per-GPU means and hours."""
    return (f"sum by (job_id, measure) (sum_over_time({activity}[{window}]))"
            f" / sum by (job_id, measure) (count_over_time({activity}[{window}]))")


def efficiency_low(value: float | None, measure: Measure = UTILIZATION) -> bool:
    """A job GPU efficiency below its measure's ``efficiency_low_below`` (JobGpuEfficiencyLow)."""
    return value is not None and value < measure.efficiency_low_below


def job_flags(gpus: Iterable[GpuKey], mean: Mapping[GpuKey, float], peak: Mapping[GpuKey, float],
              memory: Mapping[GpuKey, float], processes: Mapping[GpuKey, float], running: bool,
              measure: Measure = UTILIZATION) -> dict[str, int]:
    """Flag -> how many of the job's GPUs show it (hung: all of them, or 0). ``mean``: each GPU's
    mean activity by the job's ``measure``; ``peak``: each GPU's peak by its own (``idle_gpus``)."""
    gpus = list(gpus)
    idle = [k for k in gpus if k in peak and peak[k] < IDLE_BELOW]
    flags = {
        "idle": len(idle),
        "straggler": len(stragglers({k: mean[k] for k in gpus if k in mean}, len(gpus), measure)),
        "held_but_unused": sum(1 for k in gpus if processes.get(k) == 0),
    }
    hung = running and gpus and len(idle) == len(gpus) and all(memory.get(k, 0) > HUNG_MEMORY_ABOVE for k in gpus)
    flags["hung"] = len(gpus) if hung else 0
    return {name: count for name, count in flags.items() if count}


# The job rules of alerts/rules/jobs.yml and the recorded series they and the jobs list read
# (alerts/rules/recording.yml, jobs.yml), written from the definitions above: rule -> (expression,
# ``for``). tests/alerts/test_rules_pack.py holds the YAML equal to these.
ALLOCATED_RECORDED = "instance_gpu_job:allocated:info"
_ON_ALLOCATED = f"{ALLOCATED_RECORDED} * on (instance, gpu) group_left ()"
# Per (GPU, job): the activity by the job's measure, with its ``measure`` label; the per-job
# series below are ``by (job_id, measure)``, one per job (two only while its measure changes).
ACTIVITY_RECORDED = "instance_gpu_job:gpu_activity:ratio"
# Per job, what its GPUs show now: the job rules' conditions before their ``for``, recorded in the
# jobs group, whose alerts compare them, so the jobs list reads one series per job (JOB_FLAGS_RECORDED).
GPUS_IDLE = "job_id:gpus_idle:count"
GPUS_IDLE_HOLDING_MEMORY = "job_id:gpus_idle_holding_memory:count"
GPUS_WITHOUT_PROCESSES = "job_id:gpus_without_processes:count"
JOB_RULES: dict[str, tuple[str, str | None]] = {
    "instance_gpu_job:gpu_sm_active:ratio": (
        f"{ALLOCATED_RECORDED} * on (instance, gpu) group_left (uuid) {SM_ACTIVE.metric}", None),
    ACTIVITY_RECORDED: (job_activity("instance_gpu_job:gpu_sm_active:ratio", "instance_gpu_job:gpu_utilization:ratio",
                                     ALLOCATED_RECORDED), None),
    "job_id:gpus:count": (f"count by (job_id) ({ALLOCATED_RECORDED})", None),
    "job_id:gpu_activity:median": (f"quantile by (job_id, measure) (0.5, {ACTIVITY_RECORDED})", None),
    # The sum and count of the job's GPUs' activity at each evaluation: the mean is their ratio,
    # the efficiency over an hour their sums' ratio, read from one series per job, not per GPU.
    "job_id:gpu_activity:sum": (f"sum by (job_id, measure) ({ACTIVITY_RECORDED})", None),
    "job_id:gpu_activity:count": (f"count by (job_id, measure) ({ACTIVITY_RECORDED})", None),
    "job_id:gpu_activity:avg": ("job_id:gpu_activity:sum / job_id:gpu_activity:count", None),
    f"job_id:gpu_efficiency:ratio{EFFICIENCY_WINDOW}": (
        f"sum_over_time(job_id:gpu_activity:sum[{EFFICIENCY_WINDOW}])"
        f" / sum_over_time(job_id:gpu_activity:count[{EFFICIENCY_WINDOW}])", None),
    "job_id:gpu_memory_used:sum": (f"sum by (job_id) ({_ON_ALLOCATED} gpu_memory_used_bytes)", None),
    "job_id:gpu_power:sum": (f"sum by (job_id) ({_ON_ALLOCATED} gpu_power_watts)", None),
    "instance_job:gpus:count": (f"count by (instance, job_id) ({ALLOCATED_RECORDED})", None),
    GPUS_IDLE: (f"count by (job_id) ({_ON_ALLOCATED} ({idle_gpus(IDLE_WINDOW)}))", None),
    "JobGpusIdle": (GPUS_IDLE, IDLE_FOR),
    GPUS_IDLE_HOLDING_MEMORY: (
        f"count by (job_id) ({_ON_ALLOCATED} (({idle_gpus()})"
        f" and on (instance, gpu) (gpu_memory_used_bytes > {HUNG_MEMORY_ABOVE})))", None),
    "JobHung": (
        f"({GPUS_IDLE_HOLDING_MEMORY} == on (job_id) job_id:gpus:count)"
        ' and on (job_id) slurm_job_info{state="RUNNING"}', HUNG_FOR),
    "GpuStragglerUtilization": (
        f"({ACTIVITY_RECORDED}"
        f" < on (job_id, measure) group_left () ({STRAGGLER_BELOW_MEDIAN} * job_id:gpu_activity:median))"
        f" and on (job_id, measure) ({by_measure('job_id:gpu_activity:median', '>', 'straggler_busy_above')})"
        f" and on (job_id) (job_id:gpus:count >= {STRAGGLER_MIN_GPUS})", STRAGGLER_FOR),
    "GpuStragglerClock": (
        "(instance_gpu_job:gpu_sm_clock:ratio"
        f" < on (job_id) group_left () ({CLOCK_STRAGGLER_BELOW_MEDIAN} * job_id:gpu_sm_clock:median))"
        f" and on (instance, gpu, job_id) (instance_gpu_job:gpu_utilization:ratio > {STRAGGLER_BUSY_ABOVE})"
        f" and on (job_id) (job_id:gpus:count >= {STRAGGLER_MIN_GPUS})", STRAGGLER_FOR),
    GPUS_WITHOUT_PROCESSES: (f"count by (job_id) ({_ON_ALLOCATED} (gpu_processes == 0))", None),
    "JobGpusHeldUnused": (GPUS_WITHOUT_PROCESSES, HELD_UNUSED_FOR),
    "JobGpuEfficiencyLow": (by_measure(f"job_id:gpu_efficiency:ratio{EFFICIENCY_WINDOW}", "<", "efficiency_low_below"),
                            EFFICIENCY_LOW_FOR),
}


# The overview at scale (docs/dashboard.md#the-overview-at-scale). From this many GPU nodes it
# shows one cell per node, coloured by a per-node aggregate, and reads only per-node and fleet-wide
# series: at 16,384 nodes every read of one GPU family costs an engine about a second, and 131,072
# cells are more than a person can read.
NODE_CELLS_FROM_NODES = 2_000
# Per node, what the overview at scale reads: record name -> expression, job facts written with
# {allocated_by_job} (GPUs allocated per node and job). The group clusterwatch-dashboard records
# them, job facts from the series the recording groups record anyway (NODE_SOURCES_RECORDED);
# without the rules the page computes them from the raw series (NODE_SOURCES_RAW). Either way it
# gets one series per node. tests/dashboard/test_overview_nodes.py holds recording.yml equal to
# these. Each colour costs the rules one read of a GPU family per evaluation (~0.7 s at 131,072
# GPUs in VictoriaMetrics): five colours, no more.
NODE_AGGREGATES: dict[str, str] = {
    "instance:gpu_utilization:avg": "avg by (instance) (gpu_utilization_ratio)",
    "instance:gpu_utilization:min": "min by (instance) (gpu_utilization_ratio)",
    "instance:gpu_temperature:max": "max by (instance) (gpu_temperature_celsius)",
    "instance:gpu_memory_used:sum": "sum by (instance) (gpu_memory_used_bytes)",
    "instance:gpu_power:sum": "sum by (instance) (gpu_power_watts)",
    "instance:gpus_allocated:count": "sum by (instance) ({allocated_by_job})",
}
# The fleet totals of its KPIs, one series each for the page to read: busy and idle from the
# per-GPU and per-job series recorded anyway (the page shows them only as totals), the rest over
# the per-node series above (not 16,384 series summed on every refresh). KPI -> (record, expression).
CLUSTER_TOTALS: dict[str, tuple[str, str]] = {
    "busy": ("cluster:gpus_busy:count", "count(max by (instance, gpu) ({allocated_busy}))"),
    "idle": ("cluster:gpus_idle:count", "sum({idle_by_job})"),
    "allocated": ("cluster:gpus_allocated:sum", "sum(instance:gpus_allocated:count)"),
    "power": ("cluster:gpu_power:sum", "sum(instance:gpu_power:sum)"),
    # The nodes' mean utilisation weighted by their GPUs present.
    "util": ("cluster:gpu_utilization:mean",
             f"sum(instance:gpu_utilization:avg * on (instance) {GPUS_PRESENT_RECORDED})"
             f" / sum({GPUS_PRESENT_RECORDED} and on (instance) instance:gpu_utilization:avg)"),
}
# GPU -> job as the recording group's instance_gpu_job:allocated:info joins it: the exporters'
# process mapping or the scheduler's allocation.
ALLOCATED_ANY = ('max by (instance, gpu, job_id) (gpu_job_info{job_id!=""})'
                 " or max by (instance, gpu, job_id) (slurm_job_gpu_info)")
NODE_SOURCES_RECORDED = {
    "allocated_by_job": "instance_job:gpus:count",
    "allocated_busy": busy_gpus("instance_gpu_job:gpu_sm_active:ratio", "instance_gpu_job:gpu_utilization:ratio"),
    # Idle at scale is "idle now": allocated, with its peak utilisation over the last IDLE_WINDOW
    # below IDLE_BELOW: JobGpusIdle's condition before its ``for``, which the job rules record per
    # job. Not the page's range: that cannot be honoured per GPU at the cost of a read per node.
    "idle_by_job": GPUS_IDLE,
}
NODE_SOURCES_RAW = {
    "allocated_by_job": f"count by (instance, job_id) ({ALLOCATED_ANY})",
    "allocated_busy": f"(({ALLOCATED_ANY}) * on (instance, gpu) group_left () ({busy_gpus()}))",
    "idle_by_job": f"count by (job_id) (({ALLOCATED_ANY}) * on (instance, gpu) group_left () ({idle_gpus(IDLE_WINDOW)}))",
}


def node_aggregate(record: str, recorded: bool) -> str:
    """PromQL for one per-node series of NODE_AGGREGATES: the recorded series when the dashboard's
    rules run, else its expression over the raw series."""
    return record if recorded else NODE_AGGREGATES[record].format(**NODE_SOURCES_RAW)


def cluster_total(kpi: str, recorded: bool) -> str:
    """PromQL for one of CLUSTER_TOTALS: the recorded series, or its expression over the raw series
    (those over per-node series are summed by the page from its per-node answers instead)."""
    record, expr = CLUSTER_TOTALS[kpi]
    return record if recorded else expr.format(**NODE_SOURCES_RAW)
