"""Goodput: how much of the training time a cluster gave its jobs was productive, what the rest was
lost to, and what interrupted the jobs (issue 20; docs/architecture.md#definitions).

The one definition of interruption, lost time by cause, ETTR, MTBI and lemon node, used by the
``/reliability`` page, the job page's "Continuity" section and ``clusterwatch report``, and the
source of the ``clusterwatch-reliability`` recording group (``RELIABILITY_RULES``, which
alerts/rules/reliability.yml holds, held equal by tests/dashboard/test_reliability_definitions.py).

Where the numbers come from, all through the query interface:

- Per job, every minute, the recording group writes what the job's GPUs are doing now, in GPUs:
  running, waiting to restart after an interruption (PENDING with a restart count above 0), hung
  (JobHung firing, or one of its GPUs lost: ``gpu_up 0`` on a GPU the scheduler gave it; and, read
  back once JobHung fired, the minutes from when it became active to when it fired, its `for`,
  which no rule can know at the time: ``hung_before_firing``), held
  but idle (JobGpusIdle firing: its idle GPUs; and, the same way, its idle GPUs from its
  activation to its firing: ``lost_before_firing``), and slowed by a straggler (GpuStragglerUtilization
  firing: the job's GPUs times the straggler's shortfall from the job's median; and, the same way,
  each straggler's shortfall from its activation to its firing). One series per job, never per
  GPU, so a 30-day range at 16,384 nodes reads one ``sum_over_time`` per cause. GPU-seconds are the sum of the samples times the group's interval.
- Interruptions are the scheduler adapter's records (``slurm_job_interruption_time_seconds``,
  scheduler/interruptions.py): a running job requeued or ended by a failure.
- The cause of an interruption is the alert (pending or firing) on one of the job's nodes in the
  hour before it or the quarter hour after: its name (and XID) gives the root-cause class; with no
  such alert it is "unknown", never guessed.
- Work redone after an interruption is the time since the job's last finished checkpoint (or since
  the run started, if later), less the time it was hung since (lost as hung), read from the
  checkpoint contract's mark (``clusterwatch_job_checkpoint_timestamp_seconds{job_id}``,
  scheduler/checkpoint.py) and ``slurm_job_start_time_seconds`` at the interruption. A job that
  does not report checkpoints has its redone work unknown (None), not 0, and its ETTR is then an
  upper bound.
"""
from __future__ import annotations

import bisect
import datetime as dt
import math
import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable, Mapping, TypeVar

from cwkernel.durations import format_duration, parse_duration
from cwkernel.metrics import escape_label
from dashboard.definitions import GPUS_IDLE, HUNG_FOR, IDLE_FOR, IDLE_WINDOW, STRAGGLER_FOR
from dashboard.params import MAX_RANGE_S, TimeRange
from scheduler import is_job_id
# The checkpoint contract's mark (docs/operations.md) and which marks count.
from scheduler.checkpoint import MARK_NODE_LABEL, believed_marks, newest_mark_on
from tsdb.client import QueryClient

K = TypeVar("K")

# The recording group and its interval: a sample of a recorded series stands for this many seconds.
GROUP = "clusterwatch-reliability"
INTERVAL = "1m"
INTERVAL_S = 60.0

HUNG_ALERT, IDLE_ALERT, STRAGGLER_ALERT = "JobHung", "JobGpusIdle", "GpuStragglerUtilization"
# Their `for` (alerts/rules/jobs.yml, held to the definitions).
HUNG_FOR_S, IDLE_FOR_S, STRAGGLER_FOR_S = (parse_duration(HUNG_FOR), parse_duration(IDLE_FOR),
                                           parse_duration(STRAGGLER_FOR))
# JobGpusIdle becomes active once a GPU's peak over IDLE_WINDOW is below the line: it was idle that
# long already, so its idle time counts from that much before the alert became active.
IDLE_LEAD_S = parse_duration(IDLE_WINDOW)

RUNNING = "job_id:reliability_running:gpus"
RESTART_WAIT = "job_id:reliability_restart_wait:gpus"
HUNG = "job_id:reliability_hung:gpus"
IDLE_HELD = "job_id:reliability_idle_held:gpus"
STRAGGLER = "job_id:reliability_straggler:gpus"


def _firing(alertname: str) -> str:
    return f'ALERTS{{alertname="{alertname}", alertstate="firing"}}'


def _shortfall(ratio: str = "", median: str = "") -> str:
    """A GPU's shortfall from its job's median activity (0 at or above it), by (instance, gpu,
    job_id, measure); ``ratio`` and ``median`` are selectors' matchers."""
    return (f"clamp_min(1 - instance_gpu_job:gpu_activity:ratio{ratio} / on (job_id, measure) group_left ()"
            f" job_id:gpu_activity:median{median}, 0)")


# A GPU the scheduler gave the job that no longer answers NVML (XID 79, off the bus): the rank on
# it never returns, so the job makes no progress although its other ranks look busy (they spin in
# the collective), which is why JobHung alone misses it.
LOST_GPU_OF_JOB = "(slurm_job_gpu_info and on (instance, gpu) (gpu_up == 0))"

# record -> expression. Hung, idle and straggler are counted while the job runs; idle and the
# straggler's slowdown not while the job is hung (its whole allocation is lost already).
RELIABILITY_RULES: dict[str, str] = {
    RUNNING: 'max by (job_id) (slurm_job_gpus) * on (job_id) group_left () max by (job_id) (slurm_job_info{state="RUNNING"})',
    RESTART_WAIT: ('max by (job_id) (slurm_job_gpus) * on (job_id) group_left () '
                   '(max by (job_id) (slurm_job_info{state="PENDING"}) and on (job_id) (slurm_job_restart_count > 0))'),
    HUNG: f"{RUNNING} and on (job_id) ({_firing('JobHung')} or on (job_id) {LOST_GPU_OF_JOB})",
    IDLE_HELD: (f"(max by (job_id) (job_id:gpus_idle:count) and on (job_id) {_firing('JobGpusIdle')}"
                f" and on (job_id) {RUNNING}) unless on (job_id) {HUNG}"),
    STRAGGLER: (f"({RUNNING} * on (job_id) group_left () max by (job_id) ({_shortfall()}"
                f" and on (instance, gpu, job_id) {_firing(STRAGGLER_ALERT)})) unless on (job_id) {HUNG}"),
}

# Lost time by cause, in the order the pages and the report list them.
CAUSES: dict[str, str] = {
    "restart_wait": "waiting to restart after an interruption",
    "redone_work": "work redone since the last checkpoint",
    "hung": "hung",
    "straggler": "slowed by a straggling GPU",
    "idle_held": "held but idle",
}
_CAUSE_RECORDS = {"restart_wait": RESTART_WAIT, "hung": HUNG, "straggler": STRAGGLER, "idle_held": IDLE_HELD}

# Root-cause classes of interruptions, as the published large-training reliability reports count them.
CLASSES: dict[str, str] = {
    "gpu": "GPU (XID, lost GPU, PCIe)",
    "hbm_ecc": "HBM / ECC",
    "nvlink": "NVLink",
    "infiniband": "InfiniBand",
    "host": "host",
    "storage": "storage",
    "software": "software",
    "unknown": "unknown",
}
UNKNOWN = "unknown"
# When several alerts stand beside one interruption, the most specific cause wins: a memory or
# NVLink fault explains the lost GPU (XID 79) it leads to, and a GPU fault the node it takes down.
CLASS_PRECEDENCE = ("hbm_ecc", "nvlink", "gpu", "infiniband", "storage", "host", "software")
# XIDs by the component they point at (NVIDIA's XID catalog; the rest are the GPU's own).
HBM_XIDS = frozenset({48, 63, 64, 92, 94, 95})
NVLINK_XIDS = frozenset({74})
APPLICATION_XIDS = frozenset({13, 31, 43})  # the application faulted, the GPU is fine
# Alert name prefixes -> class; the job and monitoring alerts explain no interruption.
_ALERT_CLASSES = (
    ("GpuXidApplication", "software"), ("GpuEcc", "hbm_ecc"), ("GpuRowRemap", "hbm_ecc"),
    ("GpuRetiredPages", "hbm_ecc"), ("GpuNvlink", "nvlink"), ("GpuXid", "gpu"), ("GpuLost", "gpu"),
    ("GpuCountDropped", "gpu"), ("GpuPcie", "gpu"), ("GpuThermal", "gpu"), ("GpuPower", "gpu"),
    ("GpuTemperature", "gpu"), ("GpuMemoryTemperature", "hbm_ecc"), ("Infiniband", "infiniband"),
    ("Fabric", "infiniband"), ("NodeOomKills", "software"), ("NodeDisk", "storage"), ("Storage", "storage"),
    ("Node", "host"),
)

EVIDENCE_BEFORE = "1h"  # an alert this long before an interruption can explain it ...
EVIDENCE_AFTER = "15m"  # ... and one this long after (a node's unreachability fires after its `for`)
AFTER_S = parse_duration(EVIDENCE_AFTER)
EVIDENCE_WINDOW = format_duration(round(parse_duration(EVIDENCE_BEFORE) + AFTER_S))
CHECKPOINT_LOOKBACK = "1d"  # a mark older than this is no signal: jobs checkpoint hourly or more often
# Work since a checkpoint longer ago than the longest range a page shows is not a time the job can
# have meant (and no window the engine takes): no signal.
MAX_REDONE_S = MAX_RANGE_S
RUN_START_LOOKBACK = "1h"  # slurm_job_start_time_seconds is exposed while the job runs
MAX_INTERRUPTIONS = 1_000  # explained one by one (a few queries each); beyond it counted, not explained
MAX_STRAGGLER_EPISODES = 1_000  # read back one by one (a query each); beyond it their minutes before firing are not counted
LEMONS_SHOWN = 20


def cause_class(alertname: str, labels: Mapping[str, str]) -> str | None:
    """The root-cause class an alert points at, or None for an alert that explains no interruption."""
    if alertname.startswith("GpuXid") and labels.get("xid", "").isdigit():
        xid = int(labels["xid"])
        if xid in HBM_XIDS:
            return "hbm_ecc"
        if xid in NVLINK_XIDS:
            return "nvlink"
        if xid in APPLICATION_XIDS:
            return "software"
    return next((cls for prefix, cls in _ALERT_CLASSES if alertname.startswith(prefix)), None)


@dataclass(frozen=True)
class Evidence:
    alertname: str
    instance: str
    gpu: str = ""
    xid: str = ""


@dataclass(frozen=True)
class Interruption:
    job_id: str
    ordinal: int
    time: float
    state: str
    cause: str  # a CLASSES key
    node: str  # the node the cause points at; "" when unknown
    evidence: Evidence | None  # the alert that explains it; None: "unknown"
    nodes: tuple[str, ...]  # the job's nodes before it
    redone_seconds: float | None  # since the last checkpoint; None: no checkpoint signal

    @property
    def day(self) -> str:
        return dt.datetime.fromtimestamp(self.time, dt.timezone.utc).date().isoformat()


@dataclass
class JobAccount:
    """One job's time over the range, in GPU-seconds (ETTR weights jobs by their GPUs)."""

    job_id: str
    running_gpu_seconds: float = 0.0
    running_seconds: float = 0.0
    lost_gpu_seconds: dict[str, float | None] = field(default_factory=dict)
    interruptions: list[Interruption] = field(default_factory=list)

    @property
    def gpus(self) -> float:
        return self.running_gpu_seconds / self.running_seconds if self.running_seconds else 0.0

    @property
    def wall_gpu_seconds(self) -> float:
        """Held or waiting to restart: the training time the cluster owed the job."""
        return self.running_gpu_seconds + (self.lost_gpu_seconds.get("restart_wait") or 0.0)

    @property
    def redone_known(self) -> bool:
        return self.lost_gpu_seconds.get("redone_work") is not None

    @property
    def productive_gpu_seconds(self) -> float:
        lost = sum(v for v in self.lost_gpu_seconds.values() if v is not None)
        return max(0.0, self.wall_gpu_seconds - lost)

    @property
    def ettr(self) -> float | None:
        """Productive over wall time; an upper bound when the redone work is unknown."""
        wall = self.wall_gpu_seconds
        return self.productive_gpu_seconds / wall if wall > 0 else None


@dataclass
class Accounting:
    """Every job's account over one range, and what interrupted them."""

    range: TimeRange
    jobs: dict[str, JobAccount]
    interruptions: list[Interruption]
    interruptions_unexplained: int  # over MAX_INTERRUPTIONS: counted, not explained
    fleet_gpus: int
    recorded: bool  # the recording group's series were there over the range
    notes: list[str] = field(default_factory=list)

    @property
    def interruption_count(self) -> int:
        return len(self.interruptions) + self.interruptions_unexplained

    def ettr(self) -> float | None:
        """The cluster's ETTR: GPU-hour weighted over its jobs."""
        wall = sum(job.wall_gpu_seconds for job in self.jobs.values())
        return sum(job.productive_gpu_seconds for job in self.jobs.values()) / wall if wall > 0 else None

    def lost_gpu_hours(self) -> dict[str, float]:
        """GPU-hours lost by cause, summed over the jobs where known (redone work: known part)."""
        return {cause: sum(job.lost_gpu_seconds.get(cause) or 0.0 for job in self.jobs.values()) / 3600
                for cause in CAUSES}

    def redone_unknown_jobs(self) -> int:
        return sum(1 for job in self.jobs.values() if not job.redone_known)

    def by_day(self) -> dict[str, dict[str, int]]:
        """Interruptions per UTC day by class, every day of the range listed."""
        first = dt.datetime.fromtimestamp(self.range.start, dt.timezone.utc).date()
        last = dt.datetime.fromtimestamp(self.range.end, dt.timezone.utc).date()
        days = {(first + dt.timedelta(days=i)).isoformat(): {} for i in range((last - first).days + 1)}
        for item in self.interruptions:
            counts = days.setdefault(item.day, {})
            counts[item.cause] = counts.get(item.cause, 0) + 1
        return days

    def by_class(self) -> dict[str, int]:
        counts = {cls: 0 for cls in CLASSES}
        for item in self.interruptions:
            counts[item.cause] += 1
        return counts

    def mtbi_per_1000_gpus_hours(self) -> float | None:
        """Mean time between interruptions of 1,000 GPUs: the range's GPU-hours per 1,000 GPUs
        over the interruptions (Llama 3: 54 days x 16,384 GPUs / 419 = 50.7 h per 1,000 GPUs)."""
        if not self.interruption_count or not self.fleet_gpus:
            return None
        return self.range.seconds / 3600 * self.fleet_gpus / 1000 / self.interruption_count

    def lemons(self, limit: int = LEMONS_SHOWN) -> list[tuple[str, int, dict[str, int]]]:
        """Nodes ranked by the interruptions attributed to them: (node, count, count by class)."""
        found: dict[str, dict[str, int]] = {}
        for item in self.interruptions:
            if item.node:
                classes = found.setdefault(item.node, {})
                classes[item.cause] = classes.get(item.cause, 0) + 1
        ranked = sorted(found.items(), key=lambda kv: (-sum(kv[1].values()), kv[0]))
        return [(node, sum(classes.values()), classes) for node, classes in ranked[:limit]]


def _selector(job_id: str | None) -> str:
    if job_id is None:
        return ""
    if not is_job_id(job_id):
        raise ValueError(f"not a job id: {job_id[:40]!r}")
    return f'{{job_id="{job_id}"}}'


def _per_job(client: QueryClient, expr: str, at: float) -> dict[str, float]:
    return {labels["job_id"]: value for labels, value in client.instant(expr, at).samples() if "job_id" in labels}


def _interruption_records(client: QueryClient, tr: TimeRange, selector: str) -> list[tuple[str, int, float, str]]:
    """(job_id, ordinal, time, state) of the records in the range, each once, oldest first. A
    record without a Slurm job id is skipped: its id would go into the queries that explain it."""
    result = client.instant(f"last_over_time(slurm_job_interruption_time_seconds{selector}[{tr.window}])", tr.end)
    found: dict[tuple[str, int], tuple[float, str]] = {}
    for labels, value in result.samples():
        try:
            key = (labels.get("job_id", ""), int(labels.get("interruption", "0")))
        except ValueError:
            continue
        if not is_job_id(key[0]):
            continue
        if tr.start < value <= tr.end and (key not in found or value < found[key][0]):
            found[key] = (value, labels.get("state", ""))
    return sorted(((job, n, t, state) for (job, n), (t, state) in found.items()), key=lambda r: (r[2], r[0], r[1]))


def _evidence(client: QueryClient, job_id: str, at: float) -> tuple[tuple[str, ...], list[tuple[str, Evidence]]]:
    """The job's nodes before ``at`` and the classified alerts on them around it, in one query:
    the alerts on the nodes, ``or`` the nodes themselves (the series without an alert name)."""
    held = (f'max by (instance) (max_over_time(slurm_job_gpu_info{{job_id="{job_id}"}}[{EVIDENCE_BEFORE}]'
            f" offset {EVIDENCE_AFTER}))")
    result = client.instant(f"(max by (alertname, instance, gpu, xid) (max_over_time(ALERTS[{EVIDENCE_WINDOW}]))"
                            f" and on (instance) {held}) or {held}", at + AFTER_S)
    nodes, found = set(), []
    for labels, _ in result.samples():
        if "alertname" not in labels:
            nodes.add(labels.get("instance", ""))
        elif (cls := cause_class(labels["alertname"], labels)) is not None:
            found.append((cls, Evidence(labels["alertname"], labels.get("instance", ""), labels.get("gpu", ""),
                                        labels.get("xid", ""))))
    return tuple(sorted(nodes - {""})), found


def redone_seconds(client: QueryClient, job_id: str, at: float) -> float | None:
    """The work an interruption at ``at`` threw away: the time since the last finished checkpoint,
    or since the run started where that is later (a checkpoint of an earlier run is where this run
    began, and its restart wait is counted as such, not again here), less the time the job was
    hung in between: hung time did no work, and is lost as hung, not counted again here (a job
    hung for hours before someone requeued it would otherwise be charged those hours twice).
    None: no checkpoint signal, or none that is a time (the mark is the job's own word: not finite, or a
    time more than ``MAX_REDONE_S`` before ``at`` with no later run start, is none). Two queries:
    the checkpoint marks by node, the nodes the job held in the hour before and the run's start
    time, told apart by a label, then the job's hung minutes since the later of the two. A mark
    counts from a node the job held (``newest_mark_on``); one only from elsewhere still says that
    the job checkpoints, and its run then redoes everything since it started. A mark another user's
    job wrote for it is no signal (``believed_marks``)."""
    matcher = f'job_id="{job_id}"'
    selector = f'{{{matcher}}}'
    result = client.instant(
        f'label_replace(max by ({MARK_NODE_LABEL}) ({believed_marks(matcher, CHECKPOINT_LOOKBACK)}),'
        ' "of", "checkpoint", "", "")'
        f' or label_replace(max by ({MARK_NODE_LABEL}) (max_over_time(slurm_job_gpu_info{selector}'
        f'[{EVIDENCE_BEFORE}])), "of", "held", "", "")'
        f' or label_replace(max(last_over_time(slurm_job_start_time_seconds{selector}[{RUN_START_LOOKBACK}])),'
        ' "of", "start", "", "")', at)
    marks: dict[str, float] = {}
    held: set[str] = set()
    start: float | None = None
    for labels, value in result.samples():
        if labels.get("of") == "held":
            held.add(labels.get(MARK_NODE_LABEL, ""))
        elif labels.get("of") == "start" and math.isfinite(value):
            start = min(value, at)
        elif labels.get("of") == "checkpoint" and math.isfinite(value):
            marks[labels.get(MARK_NODE_LABEL, "")] = min(value, at)
    if not marks:
        return None
    checkpoint = newest_mark_on(marks, held)
    if checkpoint is None and start is None:
        return None
    latest = max(value for value in (checkpoint, start) if value is not None)
    since = at - latest
    if since <= 0:
        return 0.0
    if since > MAX_REDONE_S:
        return None
    # Half an interval more, so that the recorded minute the checkpoint landed in is in the window.
    window = f"{round((since + INTERVAL_S / 2) * 1000)}ms"
    hung = client.instant(f"sum(count_over_time({HUNG}{selector}[{window}]))", at)
    hung_s = sum(value for _, value in hung.samples()) * INTERVAL_S
    hung_s += hung_before_firing(client, TimeRange(at - since - INTERVAL_S / 2, at), job_id).get(job_id, 0.0)
    return max(0.0, since - hung_s)


def hung_before_firing(client: QueryClient, tr: TimeRange, job_id: str | None = None) -> dict[str, float]:
    """Per job, the seconds of the range it was hung before JobHung fired: a JobHung that fired
    (within the range or up to its `for` after it) was hung from the minute it became active
    (ALERTS_FOR_STATE's value), minute by minute until it fired, less the minutes the recorded hung
    series holds already (a GPU of the job lost meanwhile). A JobHung that never fired counts
    nothing."""
    active = _active_before_firing(client, tr, HUNG_ALERT, HUNG_FOR_S, job_id)
    if not active:
        return {}
    minutes = _hung_minutes(active, _recorded_times(client, HUNG, tr, job_id))
    return {job: len(times) * INTERVAL_S for job, times in minutes.items()}


@dataclass
class BeforeFiring:
    """What the recorded series miss because an alert's `for` delays them, per job."""
    hung_s: dict[str, float] = field(default_factory=dict)  # seconds hung before JobHung fired
    # GPU-seconds held but idle before JobGpusIdle fired, less those recorded while the job turns
    # out to have been hung: a correction, so it may be negative.
    idle_gpu_s: dict[str, float] = field(default_factory=dict)
    slowed_s: dict[str, float] = field(default_factory=dict)  # seconds x the straggler's shortfall, per GPU of the job
    truncated: int = 0  # straggler episodes beyond MAX_STRAGGLER_EPISODES, not read back


def lost_before_firing(client: QueryClient, tr: TimeRange, job_id: str | None = None) -> BeforeFiring:
    """What the recorded series miss because an alert's `for` delays them, per job: the seconds
    hung before JobHung fired (``hung_before_firing``); the GPU-seconds held but idle before
    JobGpusIdle fired (its idle GPUs at each minute from IDLE_WINDOW before its activation: idle that
    long already when it became active), less the idle minutes
    recorded while the job turns out to have been hung (idle never counts while hung); and the
    slowdown before GpuStragglerUtilization fired (``_slowed_before_firing``). Raw samples of the
    few series of those alerts' episodes and of idle, hung or slowed jobs: one query per alert, a
    few more where it has episodes."""
    hung_active = _active_before_firing(client, tr, HUNG_ALERT, HUNG_FOR_S, job_id)
    idle_active = _active_before_firing(client, tr, IDLE_ALERT, IDLE_FOR_S, job_id, lead_s=IDLE_LEAD_S)
    straggling = _active_before_firing(client, tr, STRAGGLER_ALERT, STRAGGLER_FOR_S, job_id, key=_straggler_gpu)
    if not hung_active and not idle_active and not straggling:
        return BeforeFiring()
    # Every job's recorded minutes (a series exists only while a job is hung, or idle: few samples),
    # not a regex of the job ids read back from the store, whose labels are not ours to trust.
    recorded_hung = _recorded_times(client, HUNG, tr, job_id)
    hung = _hung_minutes(hung_active, recorded_hung)
    idle = _idle_before_firing(client, tr, job_id, idle_active, recorded_hung, hung) if hung or idle_active else {}
    found = BeforeFiring({job: len(minutes) * INTERVAL_S for job, minutes in hung.items()}, idle)
    if straggling:
        hung_times = {job: sorted(recorded_hung.get(job, []) + hung.get(job, [])) for job in set(recorded_hung) | set(hung)}
        found.slowed_s, found.truncated = _slowed_before_firing(client, tr, job_id, straggling, hung_times)
    return found


def _idle_before_firing(client: QueryClient, tr: TimeRange, job_id: str | None, idle_active: dict[str, list[float]],
                        recorded_hung: dict[str, list[float]], hung: dict[str, list[float]]) -> dict[str, float]:
    held = _samples(client, f"{IDLE_HELD}{_selector(job_id)}", tr, IDLE_FOR_S)
    idle: dict[str, float] = {}
    for job, minutes in hung.items():
        for t, gpus in held.get(job, ()):
            if _near(minutes, t):
                idle[job] = idle.get(job, 0.0) - gpus * INTERVAL_S
    if idle_active:
        counts = _samples(client, f"{GPUS_IDLE}{_selector(job_id)}", tr, IDLE_FOR_S)
        for job, minutes in idle_active.items():
            skip = sorted([t for t, _ in held.get(job, ())] + recorded_hung.get(job, []) + hung.get(job, []))
            for t in minutes:
                gpus = _value_from(counts.get(job, []), t, IDLE_LEAD_S)  # before activation: the count at it
                if gpus and not _near(skip, t):
                    idle[job] = idle.get(job, 0.0) + gpus * INTERVAL_S
    return idle


def _straggler_gpu(labels: Mapping[str, str]) -> tuple[str, str, str, str]:
    return labels.get("job_id", ""), labels.get("instance", ""), labels.get("gpu", ""), labels.get("measure", "")


def _slowed_before_firing(client: QueryClient, tr: TimeRange, job_id: str | None,
                          straggling: dict[tuple[str, str, str, str], list[float]],
                          hung: dict[str, list[float]]) -> tuple[dict[str, float], int]:
    """Per job, the minutes from a straggler's activation to its firing, each at that GPU's
    shortfall from the job's median then (the largest of the job's stragglers in a minute), as the
    recorded series counts the minutes after: not while the job was hung, nor where the recorded
    series holds the minute already (another straggler firing). Seconds x shortfall; one range
    query per episode, at most ``MAX_STRAGGLER_EPISODES`` (and how many more were left)."""
    recorded = _recorded_times(client, STRAGGLER, tr, job_id)
    worst: dict[str, dict[int, float]] = {}  # job -> minute -> the largest shortfall
    episodes = sorted((key, minutes) for key, minutes in straggling.items() if is_job_id(key[0]))
    for (job, instance, gpu, measure), minutes in episodes[:MAX_STRAGGLER_EPISODES]:
        skip = sorted(recorded.get(job, []) + hung.get(job, []))
        minutes = [t for t in minutes if not _near(skip, t)]
        if not minutes:
            continue
        of_job = f'job_id="{job}", measure="{escape_label(measure)}"'
        expr = _shortfall(f'{{{of_job}, instance="{escape_label(instance)}", gpu="{escape_label(gpu)}"}}', f"{{{of_job}}}")
        for series in client.range(expr, minutes[0], minutes[-1], INTERVAL_S).series:
            for t, value in zip(series.timestamps, series.values):
                if _near(minutes, t) and value == value:
                    row = worst.setdefault(job, {})
                    minute = round(t / INTERVAL_S)
                    row[minute] = max(value, row.get(minute, 0.0))
    slowed = {job: sum(row.values()) * INTERVAL_S for job, row in worst.items()}
    return slowed, max(0, len(episodes) - MAX_STRAGGLER_EPISODES)


def _hung_minutes(active: dict[str, list[float]], recorded: dict[str, list[float]]) -> dict[str, list[float]]:
    """The minutes before JobHung fired that the recorded hung series does not hold already."""
    minutes = {job: [t for t in times if not _near(recorded.get(job, []), t)] for job, times in active.items()}
    return {job: times for job, times in minutes.items() if times}


def _recorded_times(client: QueryClient, record: str, tr: TimeRange, job_id: str | None) -> dict[str, list[float]]:
    """Per job, the sorted times of a recorded per-job series' samples in the range and the longest
    `for` after it."""
    samples = _samples(client, f"{record}{_selector(job_id)}", tr, max(HUNG_FOR_S, IDLE_FOR_S, STRAGGLER_FOR_S))
    return {job: [t for t, _ in values] for job, values in samples.items()}


def _job_of(labels: Mapping[str, str]) -> str:
    return labels.get("job_id", "")


def _active_before_firing(client: QueryClient, tr: TimeRange, alertname: str, for_s: float,
                          job_id: str | None, key: Callable[[Mapping[str, str]], K] = _job_of,
                          lead_s: float = 0.0) -> dict[K, list[float]]:
    """Per job (or per ``key`` of the alert's labels), the minutes of the range from when an
    ``alertname`` alert on it became active (ALERTS_FOR_STATE's value; ``lead_s`` before it where
    the alert's condition looks that far back) until it fired, for the episodes that fired within
    the range or up to ``for_s`` after it; none for an episode that never fired. Sorted."""
    matchers = f'alertname="{alertname}"' + (f', job_id="{job_id}"' if job_id else "")
    active: dict[K, dict[float, float]] = {}  # key -> when active -> its last sample's time
    for of, samples in _samples(client, f"ALERTS_FOR_STATE{{{matchers}}}", tr, for_s, key).items():
        episodes = active.setdefault(of, {})
        for t, since in samples:
            episodes[since] = max(t, episodes.get(since, t))
    if not active:
        return {}
    firing = _samples(client, f'ALERTS{{{matchers}, alertstate="firing"}}', tr, for_s, key)
    minutes: dict[K, set[float]] = {}
    for of, episodes in active.items():
        for since, last in episodes.items():
            fired = [t for t, _ in firing.get(of, ()) if since <= t <= last]
            if fired and math.isfinite(since):
                # The minutes from ``begin`` up to (not at) the firing, walked only where they are in
                # the range: the activation time is read back from the store, and may be any number.
                begin, until = since - lead_s, min(min(fired), tr.end + INTERVAL_S)
                steps = range(max(0, math.floor((tr.start - begin) / INTERVAL_S)),
                              max(0, math.ceil((until - begin) / INTERVAL_S)))
                minutes.setdefault(of, set()).update(
                    t for t in (begin + k * INTERVAL_S for k in steps) if tr.start < t <= tr.end and t < until)
    return {of: sorted(times) for of, times in minutes.items()}


def _samples(client: QueryClient, selector: str, tr: TimeRange, ahead_s: float,
             key: Callable[[Mapping[str, str]], K] = _job_of) -> dict[K, list[tuple[float, float]]]:
    """Per job (or per ``key`` of the labels), the raw (time, value) samples of ``selector`` in the
    range and ``ahead_s`` after it, sorted by time (an instant query of a range selector)."""
    window = f"{round((tr.seconds + ahead_s) * 1000)}ms"
    found: dict[K, list[tuple[float, float]]] = {}
    for series in client.instant(f"{selector}[{window}]", tr.end + ahead_s).series:
        found.setdefault(key(series.labels), []).extend(zip(series.timestamps, series.values))
    return {of: sorted(samples) for of, samples in found.items()}


def _near(times: list[float], t: float) -> bool:
    """A time within half an interval of ``t`` (sorted ``times``): the groups evaluate at their own offsets."""
    i = bisect.bisect_left(times, t - INTERVAL_S / 2)
    return i < len(times) and times[i] < t + INTERVAL_S / 2


def _value_from(samples: list[tuple[float, float]], t: float, ahead_s: float = 0.0) -> float | None:
    """The value of the first sample from half an interval before ``t`` to ``ahead_s`` and half an
    interval after it."""
    i = bisect.bisect_left(samples, (t - INTERVAL_S / 2,))
    return samples[i][1] if i < len(samples) and samples[i][0] < t + ahead_s + INTERVAL_S / 2 else None


class SettledInterruptions:
    """Interruptions explained once their evidence is all in, kept per query client (a store).

    ``explain`` costs two queries; a reliability page over a day with a hundred interruptions,
    refreshed every few seconds, would ask them all again each time for the same answer. An
    interruption's evidence ends ``EVIDENCE_AFTER`` after it, and what rules and scrapes write
    for a time is written within ``SETTLE_S`` of it: past that, as seen from the end of the range
    asked, its explanation does not change, so it is kept (at most ``MAX_KEPT`` per client)."""

    SETTLE_S = 300.0
    MAX_KEPT = 20_000

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._kept: "weakref.WeakKeyDictionary[QueryClient, OrderedDict]" = weakref.WeakKeyDictionary()

    def explained(self, client: QueryClient, record: tuple[str, int, float, str], until: float) -> Interruption:
        if record[2] + AFTER_S + self.SETTLE_S > until:
            return explain(client, *record)
        with self._lock:
            kept = self._kept.setdefault(client, OrderedDict())
            found = kept.get(record)
        if found is None:
            found = explain(client, *record)
            with self._lock:
                kept[record] = found
                while len(kept) > self.MAX_KEPT:
                    kept.popitem(last=False)
        return found


SETTLED = SettledInterruptions()


def explain(client: QueryClient, job_id: str, ordinal: int, time: float, state: str) -> Interruption:
    """One interruption with its cause (the most specific alert beside it, else unknown) and the
    work it threw away (since the last checkpoint, else unknown)."""
    nodes, found = _evidence(client, job_id, time)
    cause, evidence = UNKNOWN, None
    if found:
        cause, evidence = min(found, key=lambda ce: (CLASS_PRECEDENCE.index(ce[0]), ce[1].instance, ce[1].gpu))
    return Interruption(job_id, ordinal, time, state, cause, evidence.instance if evidence else "", evidence,
                        nodes, redone_seconds(client, job_id, time))


def account(client: QueryClient, tr: TimeRange, job_id: str | None = None) -> Accounting:
    """Every job's account over the range (or one job's), from the recorded series and the
    scheduler's interruption records."""
    selector = _selector(job_id)
    window, at = tr.window, tr.end
    running = _per_job(client, f"sum_over_time({RUNNING}{selector}[{window}])", at)
    running_samples = _per_job(client, f"count_over_time({RUNNING}{selector}[{window}])", at)
    lost = {cause: _per_job(client, f"sum_over_time({record}{selector}[{window}])", at)
            for cause, record in _CAUSE_RECORDS.items()}
    jobs: dict[str, JobAccount] = {}
    for job in set(running) | set(lost["restart_wait"]):
        jobs[job] = JobAccount(job, running.get(job, 0.0) * INTERVAL_S, running_samples.get(job, 0.0) * INTERVAL_S,
                               {cause: values.get(job, 0.0) * INTERVAL_S for cause, values in lost.items()})
    before = lost_before_firing(client, tr, job_id)
    for job, seconds in before.hung_s.items():
        if job in jobs:
            jobs[job].lost_gpu_seconds["hung"] += seconds * jobs[job].gpus
    for job, gpu_seconds in before.idle_gpu_s.items():
        if job in jobs:
            jobs[job].lost_gpu_seconds["idle_held"] = max(0.0, jobs[job].lost_gpu_seconds["idle_held"] + gpu_seconds)
    for job, seconds in before.slowed_s.items():
        if job in jobs:
            jobs[job].lost_gpu_seconds["straggler"] += seconds * jobs[job].gpus
    records = _interruption_records(client, tr, selector)
    explained = [SETTLED.explained(client, record, tr.end) for record in records[:MAX_INTERRUPTIONS]]
    for job in jobs.values():
        job.lost_gpu_seconds["redone_work"] = 0.0  # known: nothing to redo without an interruption
    for item in explained:
        job = jobs.setdefault(item.job_id, JobAccount(item.job_id, lost_gpu_seconds={c: 0.0 for c in _CAUSE_RECORDS}))
        job.interruptions.append(item)
        if item.redone_seconds is None or job.lost_gpu_seconds.get("redone_work") is None:
            job.lost_gpu_seconds["redone_work"] = None
        else:
            job.lost_gpu_seconds["redone_work"] += item.redone_seconds * job.gpus
    notes = []
    recorded = bool(running) or bool(lost["restart_wait"])
    if not recorded:
        notes.append(f"no {GROUP} recorded series over the range: wall and lost time need that group "
                     "(alerts/rules/reliability.yml) evaluated by this server, Prometheus or vmalert")
    if len(records) > MAX_INTERRUPTIONS:
        notes.append(f"{len(records)} interruptions: the first {MAX_INTERRUPTIONS} explained, the rest counted")
    if before.truncated:
        notes.append(f"{MAX_STRAGGLER_EPISODES + before.truncated} straggler episodes: the slowdown before the alert "
                     f"fired is counted for the first {MAX_STRAGGLER_EPISODES}, from its firing for the rest")
    return Accounting(tr, jobs, explained, max(0, len(records) - MAX_INTERRUPTIONS),
                      fleet_gpus(client, tr) if job_id is None else 0, recorded, notes)


def fleet_gpus(client: QueryClient, tr: TimeRange) -> int:
    """GPUs in the fleet over the range: the scheduler's count, else the GPUs seen reporting."""
    for expr in (f"sum(last_over_time(slurm_node_gpus[{tr.window}]))", f"count(last_over_time(gpu_up[{tr.window}]))"):
        values = [value for _, value in client.instant(expr, tr.end).samples()]
        if values and values[0] > 0:
            return int(values[0])
    return 0
