"""A fixed job stream and a ledger of what faults cost it, for comparing automation modes.

The default simulation tops its queue up to a target length whenever it ticks, so the jobs it
submits depend on how fast earlier ones started, and so on everything automation did. Here the
whole day's submissions are drawn from the seed before the run (``fixed_stream``): each job's
submit time, shape and amount of work (seconds on its whole allocation at full speed, so its
GPU-hours are fixed) are the same in every run, whatever drains, requeues and reboots happen.

The ledger (``WorkLedger``) counts, per run:
- work done: GPU-seconds of progress, and work lost: the progress since a job's last finished
  checkpoint (``SimJob.unsaved_progress``: one every ``CHECKPOINT_SECONDS`` of progress, or when
  the job is signalled to, each taking the job's ``checkpoint_duration`` to write) when it crashes, is requeued or reaches its time
  limit, split by cause (``fault``: the job was hit by a fault; ``other``: a job timing out on
  its own, e.g. a hung-by-design one);
- allocation wasted on faults: GPU-seconds of allocation held while the job makes no progress
  because one of its GPUs is broken (hung after XID 79 or a lost GPU, or about to crash), plus
  the share lost to a fault's slowdown;
- idle capacity out of service: free GPUs on drained or down nodes (per node), counted apart;
- jobs hit by a fault, requeue events, and fault-hit jobs left FAILED (never requeued).

What a fault does to the job on its GPU (``Workload.hangs``): after XID 79 or a lost GPU the
rank's CUDA calls never return and the job hangs, holding its allocation with no progress, until
it is requeued or reaches its time limit; after other faults (XID 48, a row-remap failure) the
rank's next CUDA call fails and the job crashes (FAILED: Slurm does not requeue it by itself). A
job placed later on a GPU that is still broken crashes within its first minute.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Iterable

from simulator.jobs import BEHAVIOURS, COMPLETED, FAILED, HELD_UNUSED, HUNG, IDLE, NAMES, RUNNING, SHAPES, STRAGGLER, \
    TRAIN, USERS, SimJob

# Faults after which the rank on the GPU hangs rather than exits (GPU off the bus).
HANGING_FAULTS = ("gpu_lost", "driver_hang")
HANGING_XIDS = (79,)
FIRST_JOB_ID = 100_000  # above any id the warm start hands out


@dataclass(frozen=True)
class JobSpec:
    """One submission of the fixed stream."""

    job_id: int
    submit_time: float
    name: str
    user: str
    account: str
    partition: str
    gpus_per_node: int
    num_nodes: int
    work_seconds: float  # wall seconds on its whole allocation at full speed
    time_limit: float
    behaviour: str
    hang_after: float
    straggler_pick: float

    @property
    def gpu_hours(self) -> float:
        return self.work_seconds * self.gpus_per_node * self.num_nodes / 3600

    def to_job(self) -> SimJob:
        return SimJob(job_id=self.job_id, name=self.name, user=self.user, account=self.account,
                      partition=self.partition, gpus_per_node=self.gpus_per_node, num_nodes=self.num_nodes,
                      time_limit=self.time_limit, submit_time=self.submit_time, run_seconds=self.work_seconds,
                      behaviour=self.behaviour, hang_after=self.hang_after, straggler_pick=self.straggler_pick)


def draw_run(rng: random.Random, gpus: int, count: int) -> tuple[str, float, float, float]:
    """How a job of ``count`` nodes x ``gpus`` GPUs behaves (simulator/jobs.py), its time limit, its
    work (seconds at full speed) and when it hangs if it does; drawn from ``rng`` in that order."""
    behaviour = rng.choices([b for b, _ in BEHAVIOURS], weights=[w for _, w in BEHAVIOURS])[0]
    if behaviour == STRAGGLER and gpus * count < 2:
        behaviour = TRAIN
    if behaviour == HELD_UNUSED and gpus < 2:
        behaviour = IDLE
    time_limit = rng.choice((4, 12, 24, 48)) * 3600.0
    # A job asks for more time than it needs (a straggler runs at 0.7 of full speed).
    work = min(time_limit * 0.6, max(600.0, rng.lognormvariate(9.2, 0.8)))  # median ~2.8 h
    hang_after = rng.uniform(300, 3600) if behaviour == HUNG else 0.0
    return behaviour, time_limit, work, hang_after


def fixed_stream(seed: int, nodes: int, start: float, duration: float, gpus_per_node: int = 8,
                 load: float = 0.8, first_job_id: int = FIRST_JOB_ID) -> list[JobSpec]:
    """The day's submissions, drawn from ``seed`` alone: on average ``load`` of the cluster's GPUs'
    worth of work arrives per unit of time (the gap before the next submission is the job's
    GPU-seconds over the cluster's GPUs at that load, times a uniform draw in [0.5, 1.5])."""
    rng = random.Random(f"workload:{seed}")
    capacity = nodes * gpus_per_node
    largest = max(1, nodes // 2)
    shapes = [(min(g, gpus_per_node), n, w) for g, n, w in SHAPES if n <= largest]
    specs: list[JobSpec] = []
    now = start
    while True:
        gpus, count, _ = rng.choices(shapes, weights=[w for *_, w in shapes])[0]
        partition = "debug" if count == 1 and rng.random() < 0.08 else "batch"
        user, account = rng.choice(USERS)
        behaviour, time_limit, work, hang_after = draw_run(rng, gpus, count)
        specs.append(JobSpec(first_job_id + len(specs), now, rng.choice(NAMES[account]), user, account, partition,
                             gpus, count, work, time_limit, behaviour, hang_after, rng.random()))
        now += rng.uniform(0.5, 1.5) * work * gpus * count / (capacity * load)
        if now >= start + duration:
            return specs


@dataclass
class WorkLedger:
    done_gpu_s: float = 0.0
    lost_gpu_s: dict[str, float] = field(default_factory=lambda: {"fault": 0.0, "other": 0.0})
    wasted_gpu_s: float = 0.0
    out_of_service_idle_gpu_s: dict[str, float] = field(default_factory=dict)  # node -> GPU-seconds
    jobs_hit: set[int] = field(default_factory=set)
    requeues: int = 0
    jobs_requeued: set[int] = field(default_factory=set)
    completed: set[int] = field(default_factory=set)
    failed_by_fault: set[int] = field(default_factory=set)  # ended FAILED after a fault, not requeued since
    hung_at_end: set[int] = field(default_factory=set)  # still hung on a broken GPU when the run ended
    events: list[tuple[float, str, int, float]] = field(default_factory=list)  # (time, what, job, GPU-s)
    now: float = 0.0

    def progress(self, job: SimJob, gained: float, dt: float) -> None:
        self.done_gpu_s += gained * job.total_gpus
        base = 0.7 if job.straggler is not None else 1.0
        fault_factor = job.slowdown / base
        if fault_factor < 0.999:
            job.fault_hit = True
            self.jobs_hit.add(job.job_id)
            self.wasted_gpu_s += (1.0 - fault_factor) * dt * job.total_gpus

    def stalled(self, job: SimJob, dt: float) -> None:
        self.jobs_hit.add(job.job_id)
        self.wasted_gpu_s += dt * job.total_gpus

    def lost(self, job: SimJob, gpu_seconds: float) -> None:
        cause = "fault" if job.fault_hit else "other"
        if job.fault_hit:
            self.jobs_hit.add(job.job_id)
        self.lost_gpu_s[cause] += gpu_seconds
        self.events.append((self.now, f"lost:{cause}", job.job_id, gpu_seconds))

    def requeued(self, job: SimJob) -> None:
        self.requeues += 1
        self.jobs_requeued.add(job.job_id)
        self.failed_by_fault.discard(job.job_id)
        self.events.append((self.now, "requeue", job.job_id, 0.0))

    def ended(self, job: SimJob) -> None:
        if job.state == COMPLETED:
            self.completed.add(job.job_id)
        elif job.state == FAILED and job.fault_hit:
            self.failed_by_fault.add(job.job_id)
        self.events.append((self.now, f"end:{job.state}", job.job_id, 0.0))

    def out_of_service(self, nodes: Iterable[Any], dt: float) -> None:
        for node in nodes:
            if node.drain or node.state == "down":
                idle = node.spec.gpus - len(node.allocations)
                if idle:
                    self.out_of_service_idle_gpu_s[node.name] = self.out_of_service_idle_gpu_s.get(node.name, 0.0) \
                        + idle * dt

    def summary(self, faulty_nodes: Iterable[str] = ()) -> dict[str, Any]:
        faulty = set(faulty_nodes)
        idle = self.out_of_service_idle_gpu_s
        hours = lambda seconds: round(seconds / 3600, 1)  # noqa: E731
        return {
            "work_done_gpu_h": hours(self.done_gpu_s),
            "work_lost_to_faults_gpu_h": hours(self.lost_gpu_s["fault"]),
            "work_lost_other_gpu_h": hours(self.lost_gpu_s["other"]),
            "allocation_wasted_on_faults_gpu_h": hours(self.wasted_gpu_s),
            "idle_out_of_service_gpu_h": {"faulty_nodes": hours(sum(v for n, v in idle.items() if n in faulty)),
                                          "other_nodes": hours(sum(v for n, v in idle.items() if n not in faulty))},
            "jobs_hit_by_faults": len(self.jobs_hit),
            "requeues": self.requeues,
            "jobs_requeued": len(self.jobs_requeued),
            "fault_hit_jobs_left_failed": len(self.failed_by_fault),
            "jobs_still_hung_at_end": len(self.hung_at_end),
            "jobs_completed": len(self.completed),
        }


class Workload:
    """The fixed stream fed to a fleet's scheduler, and the ledger it keeps."""

    def __init__(self, specs: list[JobSpec]) -> None:
        self.specs = sorted(specs, key=lambda s: (s.submit_time, s.job_id))
        self._next = 0
        self.submitted: list[JobSpec] = []
        self.ledger = WorkLedger()
        self.fleet: Any = None

    def attach(self, fleet: Any, warm: bool = True, fill: float = 0.85) -> "Workload":
        """Feed ``fleet`` (built with ``warm=False``) from this stream; ``warm`` starts it busy (the
        warm start's jobs come from the seed as before, ahead of any automation)."""
        self.fleet = fleet
        scheduler = fleet.scheduler
        scheduler.workload = self
        self.ledger.now = scheduler.now
        if warm:
            scheduler.warm_start(scheduler.now, fill, gpu_ok=lambda node, gpu: fleet.nodes[node].gpu_ok(gpu))
        return self

    def due(self, now: float) -> list[SimJob]:
        self.ledger.now = now
        jobs = []
        while self._next < len(self.specs) and self.specs[self._next].submit_time <= now:
            spec = self.specs[self._next]
            self._next += 1
            self.submitted.append(spec)
            jobs.append(spec.to_job())
        return jobs

    def finish(self) -> WorkLedger:
        """Close the books at the end of the run: a job still hung on a broken GPU can only end by
        being killed, so its progress since its last checkpoint counts as lost now."""
        for job in self.fleet.scheduler.jobs.values():
            if job.state == RUNNING and job.stalled and job.job_id not in self.ledger.hung_at_end:
                self.ledger.hung_at_end.add(job.job_id)
                self.ledger.lost(job, job.unsaved_progress * job.total_gpus)
        return self.ledger

    def hangs(self, node: str, gpu: int, since: float) -> bool:
        """Whether the fault that broke (node, gpu) at or after ``since`` (the job's start) hangs
        the job's rank rather than crashing it."""
        if self.fleet is None:
            return False
        boot = self.fleet.scheduler.nodes[node].boot_time
        for fault in self.fleet.faults.all():
            if fault.node != node or fault.gpu != gpu or fault.started_at < max(since, boot):
                continue
            if fault.kind in HANGING_FAULTS or (fault.kind == "xid" and fault.params.get("xid") in HANGING_XIDS):
                return True
        return False
