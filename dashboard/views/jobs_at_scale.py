"""The jobs list's per-job figures at scale (docs/dashboard.md#jobs-at-scale): one series per job,
never one per GPU.

With the rule pack evaluated, every figure is a recorded per-job series (groups
clusterwatch-recording, clusterwatch-recording-jobs and jobs; dashboard/definitions.py's JOB_RULES):
activity and efficiency over the range from the per-job sums and counts (by the job's measure, SM
activity or utilisation, named by their ``measure`` label), memory and power
now, and the flags as the job rules' recorded conditions (their windows, not the range). Without
them (a Prometheus without the pack, a server just started) the engine computes the same per job
with ``by (job_id)`` aggregations over the GPU-to-job join: O(jobs) answers, though the engine
still reads every GPU's series, and the flags then use the range as on a small fleet.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from dashboard.definitions import (
    ALLOCATED_ANY, GPUS_IDLE, GPUS_IDLE_HOLDING_MEMORY, GPUS_WITHOUT_PROCESSES, HUNG_MEMORY_ABOVE, SM_ACTIVE,
    MEASURES, STRAGGLER_BELOW_MEDIAN, STRAGGLER_MIN_GPUS, UTILIZATION, idle_gpus, job_activity_by_measure,
)
from dashboard.params import TimeRange
from dashboard.promql import by_label, split_by_name
from tsdb.client import QueryClient, QueryResult

# From this many GPUs held by running jobs (2,000 nodes of 8) the list reads per-job series: below,
# it reads every GPU's series and applies the definitions to the range (milliseconds at 140 nodes).
PER_JOB_FROM_GPUS = 16_000
RECORDED = "recorded"  # JobsView.source: the rule pack's per-job series
COMPUTED = "computed per job"  # the same computed by the engine, ``by (job_id)``

# Recorded series read at the range's end: figure -> series.
_NOW_RECORDED = {"gpus": "job_id:gpus:count", "memory": "job_id:gpu_memory_used:sum", "power": "job_id:gpu_power:sum",
                 "idle": GPUS_IDLE, "idle_holding_memory": GPUS_IDLE_HOLDING_MEMORY,
                 "held_but_unused": GPUS_WITHOUT_PROCESSES}
# The GPUs GpuStragglerUtilization finds now (pending or firing), counted per job.
_STRAGGLING_RECORDED = 'count by (job_id) (ALERTS{alertname="GpuStragglerUtilization"})'
_JOIN = f"({ALLOCATED_ANY}) * on (instance, gpu) group_left ()"


@dataclass
class JobFigures:
    """Per job id: each figure of the jobs list (absent where there is none)."""

    source: str
    measure: dict[str, str] = field(default_factory=dict)  # the job's measure (its series' ``measure`` label)
    mean: dict[str, float] = field(default_factory=dict)
    efficiency: dict[str, float] = field(default_factory=dict)
    memory: dict[str, float] = field(default_factory=dict)
    power: dict[str, float] = field(default_factory=dict)
    flags: dict[str, dict[str, int]] = field(default_factory=dict)

    def flags_of(self, job_id: str, gpus: int) -> dict[str, int]:
        counts = {name: count for name, values in self.flags.items() if (count := int(values.get(job_id, 0)))}
        # Hung: every GPU of the job idle while holding memory; counted as all its GPUs, or none.
        holding = counts.pop("idle_holding_memory", 0)
        if gpus and holding >= gpus:
            counts["hung"] = gpus
        if gpus < STRAGGLER_MIN_GPUS:
            counts.pop("straggler", None)
        return counts


def per_job_figures(client: QueryClient, tr: TimeRange) -> JobFigures:
    """The recorded per-job series when the rules are being evaluated, else the engine's per-job
    aggregations (``job_id:gpus:count`` is recorded whenever any GPU is allocated)."""
    at, w = tr.end, tr.window
    now = split_by_name(client.instant(f'{{__name__=~"{"|".join(_NOW_RECORDED.values())}"}}', at))
    if _NOW_RECORDED["gpus"] in now:
        return _recorded(client, at, w, {figure: by_label(now[name], "job_id") if name in now else {}
                                         for figure, name in _NOW_RECORDED.items()})
    return _computed(client, at, w)


def _by_measure(result: QueryResult, measure: dict[str, str] | None = None) -> tuple[dict[str, str], dict[str, float]]:
    """Per job its measure and value, from series labelled ``job_id`` and ``measure``: one per job,
    or, where ``measure`` (job -> the measure to keep) is given, that measure's."""
    measures: dict[str, str] = {}
    values: dict[str, float] = {}
    for labels, value in result.samples():
        job, name = labels.get("job_id", ""), labels.get("measure", UTILIZATION.name)
        if measure is None or measure.get(job) == name:
            measures[job], values[job] = name, value
    return measures, values


def _recorded(client: QueryClient, at: float, w: str, now: dict[str, dict[str, float]]) -> JobFigures:
    counts = f"sum_over_time(job_id:gpu_activity:count[{w}])"
    # A job's measure over the range is that of most of its samples: two series only where its
    # measure changed within the range (GPM lost mid-run), and the figures are those of one.
    measure: dict[str, str] = {}
    most: dict[str, float] = {}
    for labels, count in client.instant(counts, at).samples():
        job = labels.get("job_id", "")
        if count > most.get(job, -1.0):
            measure[job], most[job] = labels.get("measure", UTILIZATION.name), count
    _, efficiency = _by_measure(client.instant(f"sum_over_time(job_id:gpu_activity:sum[{w}]) / {counts}", at), measure)
    _, mean = _by_measure(client.instant(f"avg_over_time(job_id:gpu_activity:avg[{w}])", at), measure)
    straggling = by_label(client.instant(_STRAGGLING_RECORDED, at), "job_id")
    return JobFigures(RECORDED, measure, mean, efficiency, now["memory"], now["power"],
                      {"idle": now["idle"], "idle_holding_memory": now["idle_holding_memory"],
                       "held_but_unused": now["held_but_unused"], "straggler": straggling})


def _computed(client: QueryClient, at: float, w: str) -> JobFigures:
    """The small fleet's definitions over the range (job_flags, stragglers), per job in the engine."""
    def per_job(query: str) -> dict[str, float]:
        return by_label(client.instant(query, at), "job_id")

    parts = job_activity_by_measure(f"({_JOIN} avg_over_time({SM_ACTIVE.metric}[{w}]))",
                                    f"({_JOIN} avg_over_time({UTILIZATION.metric}[{w}]))", f"({ALLOCATED_ANY})")
    activity = "(" + " or ".join(parts.values()) + ")"
    idle = f"({idle_gpus(w)})"
    measure, mean = _by_measure(client.instant(f"avg by (job_id, measure) ({activity})", at))
    return JobFigures(
        COMPUTED, measure, mean, dict(mean),  # the GPUs' means weighted alike, as on a small fleet
        per_job(f"sum by (job_id) ({_JOIN} gpu_memory_used_bytes)"),
        per_job(f"sum by (job_id) ({_JOIN} gpu_power_watts)"),
        {"idle": per_job(f"count by (job_id) ({_JOIN} {idle})"),
         "idle_holding_memory": per_job(f"count by (job_id) ({_JOIN} ({idle} and on (instance, gpu)"
                                        f" (gpu_memory_used_bytes > {HUNG_MEMORY_ABOVE})))"),
         "held_but_unused": per_job(f"count by (job_id) ({_JOIN} (gpu_processes == 0))"),
         "straggler": _computed_stragglers(per_job, parts)})


def _computed_stragglers(per_job, parts: dict[str, str]) -> dict[str, float]:
    """GpuStragglerUtilization's GPUs on the range's means, counted per job: one query per measure,
    each with its own busy threshold (a job has one measure, so the counts do not overlap)."""
    counts: dict[str, float] = {}
    for name, activity in parts.items():
        median = f"quantile by (job_id) (0.5, {activity})"
        counts.update(per_job(f"count by (job_id) ((({activity}) < on (job_id) group_left ()"
                              f" ({STRAGGLER_BELOW_MEDIAN} * {median}))"
                              f" and on (job_id) ({median} > {MEASURES[name].straggler_busy_above}))"))
    return counts
