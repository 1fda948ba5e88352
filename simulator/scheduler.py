"""A Slurm-like scheduler for the simulated fleet: queue, placement, node states, scontrol verbs.

It behaves as far as ClusterWatch can see like slurmctld: drained nodes get no new jobs (running
ones finish), a requeued job goes back to the queue and restarts on other nodes, a node that stops
responding fails its jobs (NODE_FAIL, requeued when the job allows it), ``reboot ASAP`` drains a
node and reboots it once its jobs are gone, and ``scancel --signal --batch`` asks a running job to
checkpoint now (simulator/jobs.py: the save finishes ``checkpoint_duration`` later, unless the job
is hung on a lost GPU or killed first).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from simulator.jobs import (
    CANCELLED, COMPLETED, FAILED, FINISHED, HELD_UNUSED, HUNG, NODE_FAIL, PENDING, RUNNING, STRAGGLER, TIMEOUT,
    JobGenerator, SimJob,
)
from simulator.topology import NodeSpec

REBOOT_SECONDS = 240.0  # a GPU node's POST + driver load + slurmd start
KEEP_FINISHED_SECONDS = 3600.0  # Slurm's MinJobAge-like window during which finished jobs stay visible
CHECKPOINT_SECONDS = 1800.0  # how often training jobs checkpoint, in seconds of progress (what a crash loses is since the last)


class SchedulerError(Exception):
    """What scontrol would print for a refused request (unknown node, invalid state...)."""


@dataclass
class SimNode:
    spec: NodeSpec
    partitions: list[str]
    boot_time: float
    allocations: dict[int, int] = field(default_factory=dict)  # GPU index -> job id
    drain: bool = False
    reason: str = ""
    reason_set_by: str | None = None
    reason_time: float = 0.0
    responding: bool = True
    admin_down: bool = False
    reboot_requested: bool = False
    reboot_next_state: str = ""
    reboot_asap_drain: bool = False
    rebooting_until: float | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def state(self) -> str:
        """Slurm's base state word, as ``sinfo --json`` 22.05 prints it."""
        if not self.responding or self.admin_down or self.rebooting_until is not None:
            return "down"
        if not self.allocations:
            return "idle"
        return "allocated" if len(self.allocations) >= self.spec.gpus else "mixed"

    @property
    def state_flags(self) -> list[str]:
        flags = []
        if self.drain:
            flags.append("DRAIN")
        if self.reboot_requested:
            flags.append("REBOOT_REQUESTED")
        if self.rebooting_until is not None:
            flags.append("REBOOT_ISSUED")
        if not self.responding:
            flags.append("NOT_RESPONDING")
        return flags

    def free_gpus(self) -> list[int]:
        return [gpu for gpu in range(self.spec.gpus) if gpu not in self.allocations]

    def schedulable(self) -> bool:
        return self.state in ("idle", "mixed") and not self.drain and not self.reboot_requested


class SimScheduler:
    """Jobs and nodes of the simulated cluster, advanced by ``tick(now)``."""

    def __init__(self, topology: list[NodeSpec], generator: JobGenerator, now: float,
                 queue_target: int | None = None) -> None:
        debug_nodes = {spec.name for spec in topology[-max(1, len(topology) // 35):]}
        self.nodes: dict[str, SimNode] = {
            spec.name: SimNode(spec, ["batch", "debug"] if spec.name in debug_nodes else ["batch"], now - 86400 * 3)
            for spec in topology
        }
        self.jobs: dict[int, SimJob] = {}
        self.generator = generator
        self.queue_target = queue_target if queue_target is not None else min(64, max(4, len(topology) // 8))
        self.now = now
        self.lost_gpu_seconds = 0.0  # work thrown away by crashes and requeues, for the automation figures
        self.listeners: list[Callable[[str, SimJob], None]] = []  # (event, job): "start", "end", "checkpoint"
        # A fixed job stream with its work ledger (simulator/workload.py): submissions come from it
        # instead of the queue top-up, and what faults cost is accounted in it. None: the default.
        self.workload: Any = None

    # ---- time -------------------------------------------------------------------------------

    def tick(self, now: float, gpu_ok: Callable[[str, int], bool] = lambda node, gpu: True) -> None:
        """Advance to ``now``: finish reboots, progress and end jobs, submit and place new ones."""
        dt = max(0.0, now - self.now)
        self.now = now
        if self.workload is not None and dt:
            self.workload.ledger.out_of_service(self.nodes.values(), dt)
        self._finish_reboots(now)
        for job in [j for j in self.jobs.values() if j.state == RUNNING]:
            self._progress(job, dt, gpu_ok)
        self._submit(now)
        self._place_pending(now)
        self._start_requested_reboots(now)
        self._forget_old(now)

    def _progress(self, job: SimJob, dt: float, gpu_ok: Callable[[str, int], bool]) -> None:
        started = job.start_time or self.now
        broken = [(node, gpu) for node, gpus in job.gpus.items() for gpu in gpus if not gpu_ok(node, gpu)]
        if broken and self.workload is not None:
            self._progress_on_broken(job, dt, started, broken)
            return
        if broken:
            # A rank on a GPU that fell off the bus dies a minute into its run at the latest.
            if self.now - started >= 60 or dt >= 60:
                self.fail_job(job.job_id, FAILED, exit_code=1)
                return
        self._finish_checkpoint(job)
        hung = job.behaviour == HUNG and self.now - started >= job.hang_after
        gained = 0.0 if hung else dt * job.slowdown
        job.progress = job.progress + gained
        mark = (job.progress // CHECKPOINT_SECONDS) * CHECKPOINT_SECONDS
        if mark > job.saved_progress and job.checkpoint_writing is None:
            # The periodic save of the progress at the interval's mark, begun when the job reached
            # it (within this tick); training goes on meanwhile. A long tick may have seen it end.
            reached = self.now - (job.progress - mark) * dt / gained if gained else self.now
            self._begin_checkpoint(job, mark, reached)
            self._finish_checkpoint(job)
        if self.workload is not None:
            self.workload.ledger.progress(job, gained, dt)
        if job.progress >= job.run_seconds:
            self._end(job, COMPLETED, 0)
        elif self.now - started >= job.time_limit:
            self._lose_unfinished(job)
            self._end(job, TIMEOUT, 0)

    def _progress_on_broken(self, job: SimJob, dt: float, started: float, broken: list[tuple[str, int]]) -> None:
        """With a workload: a job holding a broken GPU makes no progress. A rank whose GPU fell off
        the bus during the run hangs the whole job (every other rank waits in its collectives)
        until it is requeued or reaches its time limit; otherwise the rank's next CUDA call fails
        and the job crashes within a minute (a job started on a broken GPU crashes at once)."""
        job.fault_hit = True
        if not job.stalled and any(self.workload.hangs(node, gpu, started) for node, gpu in broken):
            job.stalled = True
        self.workload.ledger.stalled(job, dt)
        if not job.stalled and (self.now - started >= 60 or dt >= 60):
            self.fail_job(job.job_id, FAILED, exit_code=1)
        elif self.now - started >= job.time_limit:
            self._lose_unfinished(job)
            self._end(job, TIMEOUT, 0)

    def _begin_checkpoint(self, job: SimJob, progress: float, at: float) -> None:
        job.checkpoint_writing = (progress, at, at + job.checkpoint_duration)

    def _finish_checkpoint(self, job: SimJob) -> None:
        """A save whose writing time is over holds its progress from now on (a stalled job never
        gets here: its hung rank never finishes its shard)."""
        if job.checkpoint_writing is None or self.now < job.checkpoint_writing[2]:
            return
        job.saved_progress, job.checkpoint_at, _ = job.checkpoint_writing
        job.checkpoint_writing = None
        for listener in self.listeners:
            listener("checkpoint", job)

    def _submit(self, now: float) -> None:
        if self.workload is not None:
            for job in self.workload.due(now):  # the fixed stream: nothing here depends on the cluster
                self.jobs[job.job_id] = job
            return
        pending = sum(1 for job in self.jobs.values() if job.state == PENDING)
        for _ in range(max(0, self.queue_target - pending)):
            partition = "debug" if self.generator.uniform(0, 1) < 0.08 else "batch"
            job = self.generator.new_job(now, partition)
            if partition == "debug":
                job.num_nodes, job.gpus_per_node = 1, min(job.gpus_per_node, 8)
            self.jobs[job.job_id] = job

    def _place_pending(self, now: float) -> None:
        blocked = False
        # Free GPUs on schedulable nodes: a job needing more is refused without scanning every
        # node, which is what keeps a full 2,048-node cluster's tick cheap.
        free = sum(len(n.free_gpus()) for n in self.nodes.values() if n.schedulable())
        for job in sorted((j for j in self.jobs.values() if j.state == PENDING), key=lambda j: (j.submit_time, j.job_id)):
            placement = self._find_placement(job) if job.total_gpus <= free else None
            if placement is None:
                job.reason = "Priority" if blocked else "Resources"
                blocked = True
                continue  # backfill: a smaller job further back may still fit
            self._start(job, placement, now)
            free -= job.total_gpus

    def _find_placement(self, job: SimJob) -> dict[str, list[int]] | None:
        candidates = [n for n in self.nodes.values() if job.partition in n.partitions and n.schedulable()]
        if job.gpus_per_node >= max((n.spec.gpus for n in candidates), default=0) or job.num_nodes > 1:
            whole = [n for n in candidates if not n.allocations and n.spec.gpus >= job.gpus_per_node]
            if len(whole) < job.num_nodes:
                return None
            return {n.name: list(range(job.gpus_per_node)) for n in whole[: job.num_nodes]}
        # Pack small jobs onto partly used nodes first, keeping whole nodes for big jobs.
        for node in sorted(candidates, key=lambda n: (len(n.free_gpus()) == n.spec.gpus, n.spec.index)):
            free = node.free_gpus()
            if len(free) >= job.gpus_per_node:
                return {node.name: free[: job.gpus_per_node]}
        return None

    def _start(self, job: SimJob, placement: dict[str, list[int]], now: float) -> None:
        job.gpus = placement
        job.state, job.reason, job.start_time, job.end_time = RUNNING, "None", now, None
        job.progress = job.saved_progress = 0.0
        job.checkpoint_writing = None
        for node, gpus in placement.items():
            for gpu in gpus:
                self.nodes[node].allocations[gpu] = job.job_id
        every = [(node, gpu) for node, gpus in placement.items() for gpu in gpus]
        if job.behaviour == STRAGGLER:
            pick = job.straggler_pick if job.straggler_pick is not None else self.generator.uniform(0, 1)
            job.straggler = every[int(pick * len(every)) % len(every)]
            job.slowdown = 0.7  # synchronous training runs at the pace of its slowest rank
        if job.behaviour == HELD_UNUSED:
            job.unused_gpus = {(node, gpu) for node, gpus in placement.items() for gpu in gpus[len(gpus) // 2:]}
        for listener in self.listeners:
            listener("start", job)

    def _end(self, job: SimJob, state: str, exit_code: int) -> None:
        job.state, job.reason, job.end_time, job.exit_code = state, "None", self.now, exit_code
        job.stalled = False
        if self.workload is not None:
            self.workload.ledger.ended(job)
        self._release(job)
        for listener in self.listeners:
            listener("end", job)

    def _release(self, job: SimJob) -> None:
        for node, gpus in job.gpus.items():
            allocations = self.nodes[node].allocations
            for gpu in gpus:
                if allocations.get(gpu) == job.job_id:
                    del allocations[gpu]

    def _forget_old(self, now: float) -> None:
        for job_id in [j.job_id for j in self.jobs.values()
                       if j.state in FINISHED and j.end_time is not None and now - j.end_time > KEEP_FINISHED_SECONDS]:
            del self.jobs[job_id]

    # ---- what faults do to jobs ----------------------------------------------------------------

    def fail_job(self, job_id: int, state: str = FAILED, exit_code: int = 1) -> None:
        """A job's process died (XID 79, GPU lost): work since the last checkpoint is lost."""
        job = self.jobs[job_id]
        if job.state != RUNNING:
            return
        if self.workload is not None:
            job.fault_hit = True
            if state == FAILED and any(self.workload.hangs(node, gpu, job.start_time or self.now)
                                       for node, gpus in job.gpus.items() for gpu in gpus):
                job.stalled = True  # its rank hangs instead of exiting: see _progress_on_broken
                return
        self._account_lost_work(job)
        self._end(job, state, exit_code)
        if state == NODE_FAIL and job.requeue:
            self._back_to_queue(job)

    def node_jobs(self, node: str) -> list[SimJob]:
        ids = set(self.nodes[node].allocations.values())
        return [self.jobs[i] for i in sorted(ids) if i in self.jobs]

    def _account_lost_work(self, job: SimJob) -> None:
        self.lost_gpu_seconds += job.unsaved_progress * job.total_gpus
        if self.workload is not None:
            self.workload.ledger.lost(job, job.unsaved_progress * job.total_gpus)

    def _lose_unfinished(self, job: SimJob) -> None:
        """A job ending at its time limit loses what it did since its last checkpoint (workload only:
        the default simulation keeps ``lost_gpu_seconds`` for crashes and requeues)."""
        if self.workload is not None:
            self.workload.ledger.lost(job, job.unsaved_progress * job.total_gpus)

    def _back_to_queue(self, job: SimJob) -> None:
        if self.workload is not None:
            self.workload.ledger.requeued(job)
        job.stalled = False
        job.state, job.reason, job.restart_count = PENDING, "BeginTime", job.restart_count + 1
        job.start_time = job.end_time = None
        job.gpus, job.unused_gpus, job.straggler, job.slowdown = {}, set(), None, 1.0
        # Resumes from its last finished checkpoint: only the remainder still has to run.
        job.run_seconds = max(60.0, job.run_seconds - job.saved_progress)
        job.progress = job.saved_progress = 0.0
        job.checkpoint_writing = None

    def set_responding(self, node: str, responding: bool) -> None:
        """Node down / back: slurmctld marks it DOWN and fails its jobs with NODE_FAIL."""
        sim_node = self._node(node)
        sim_node.responding = responding
        if not responding:
            for job in self.node_jobs(node):
                self.fail_job(job.job_id, NODE_FAIL, exit_code=1)
            if not sim_node.reason:
                sim_node.reason, sim_node.reason_set_by, sim_node.reason_time = "Not responding", "slurm", self.now

    # ---- scontrol ------------------------------------------------------------------------------

    def _node(self, name: str) -> SimNode:
        if name not in self.nodes:
            raise SchedulerError(f"Invalid node name specified: {name}")
        return self.nodes[name]

    def drain(self, node: str, reason: str, user: str = "root") -> None:
        if not reason:
            raise SchedulerError("You must specify a reason when DOWNING or DRAINING a node. Request denied")
        sim_node = self._node(node)
        sim_node.drain = True
        sim_node.reason, sim_node.reason_set_by, sim_node.reason_time = reason, user, self.now

    def resume(self, node: str, user: str = "root") -> None:
        sim_node = self._node(node)
        if not (sim_node.drain or sim_node.admin_down or not sim_node.responding):
            raise SchedulerError(f"Invalid node state specified: {node} is not drained or down")
        if not sim_node.responding:
            raise SchedulerError(f"Node {node} is not responding; it cannot be resumed until it answers")
        sim_node.drain = sim_node.admin_down = False
        sim_node.reason, sim_node.reason_set_by, sim_node.reason_time = "", None, self.now

    def set_down(self, node: str, reason: str, user: str = "root") -> None:
        sim_node = self._node(node)
        sim_node.admin_down = True
        sim_node.reason, sim_node.reason_set_by, sim_node.reason_time = reason, user, self.now
        for job in self.node_jobs(node):
            self.fail_job(job.job_id, NODE_FAIL, exit_code=1)

    def requeue(self, job_id: int) -> None:
        job = self.jobs.get(job_id)
        if job is None:
            raise SchedulerError(f"Invalid job id specified: {job_id}")
        if job.state == PENDING:
            raise SchedulerError(f"Job is pending execution: {job_id}")
        if job.state == RUNNING:
            self._account_lost_work(job)
            self._release(job)
            job.end_time = self.now
        self._back_to_queue(job)

    def signal(self, job_id: int) -> None:
        """``scancel --signal=USR1 --batch``: the job's script traps it and starts a checkpoint of
        its progress now (one being written is superseded by it)."""
        job = self.jobs.get(job_id)
        if job is None or job.state in FINISHED:
            raise SchedulerError(f"Invalid job id specified: {job_id}")
        if job.state != RUNNING:
            raise SchedulerError(f"Job is pending execution: {job_id}")
        job.checkpoints_requested += 1
        if not job.stalled:  # a rank hung on a lost GPU handles no signal
            self._begin_checkpoint(job, job.progress, self.now)

    def cancel(self, job_id: int) -> None:
        job = self.jobs.get(job_id)
        if job is None or job.state in FINISHED:
            raise SchedulerError(f"Invalid job id specified: {job_id}")
        if job.state == RUNNING:
            self._end(job, CANCELLED, 0)
        else:
            job.state, job.end_time = CANCELLED, self.now

    def reboot(self, nodes: Iterable[str], asap: bool = False, next_state: str = "", reason: str = "",
               user: str = "root") -> None:
        targets = [self._node(name) for name in nodes]  # validate every name before touching any
        if next_state.upper() not in ("", "RESUME", "DOWN", "DRAIN"):
            raise SchedulerError(f"Invalid nextstate {next_state}: use RESUME, DOWN or DRAIN")
        for node in targets:
            node.reboot_requested, node.reboot_next_state = True, next_state.upper()
            if asap and not node.drain:
                node.drain, node.reboot_asap_drain = True, True
                node.reason = reason or "Reboot ASAP"
                node.reason_set_by, node.reason_time = user, self.now

    def _start_requested_reboots(self, now: float) -> None:
        for node in self.nodes.values():
            if node.reboot_requested and not node.allocations and node.rebooting_until is None and node.responding:
                node.rebooting_until = now + REBOOT_SECONDS
                node.reboot_requested = False
                _note_reason(node, "reboot issued", now)

    def _finish_reboots(self, now: float) -> None:
        for node in self.nodes.values():
            if node.rebooting_until is None or now < node.rebooting_until:
                continue
            node.rebooting_until, node.boot_time = None, now
            for listener in self.listeners:
                listener("reboot", node)  # type: ignore[arg-type]  (faults that a reboot clears)
            if node.reboot_next_state == "DOWN":
                # As slurmctld 22.05 does: DOWN, the drain flag cleared, the reason kept with a note.
                node.admin_down, node.drain = True, False
                _note_reason(node, "reboot complete", now)
            elif node.reboot_next_state == "RESUME" or node.reboot_asap_drain:
                node.drain = False
                node.reason, node.reason_set_by = "", None
            node.reboot_asap_drain, node.reboot_next_state = False, ""

    # ---- views ---------------------------------------------------------------------------------

    def job_of(self, node: str, gpu: int) -> SimJob | None:
        job_id = self.nodes[node].allocations.get(gpu)
        return self.jobs.get(job_id) if job_id is not None else None

    def warm_start(self, now: float, fill: float = 0.85, gpu_ok: Callable[[str, int], bool] = lambda n, g: True) -> None:
        """Start the simulation on a busy cluster: jobs already running, started at various times."""
        total = sum(n.spec.gpus for n in self.nodes.values())
        attempts = 0
        while sum(len(n.allocations) for n in self.nodes.values()) < fill * total and attempts < 10 * len(self.nodes) + 50:
            attempts += 1
            job = self.generator.new_job(now - self.generator.uniform(600, 6 * 3600))
            placement = self._find_placement(job)
            if placement is None:
                continue
            self.jobs[job.job_id] = job
            self._start(job, placement, job.submit_time + self.generator.uniform(0, 300))
            job.progress = min(now - job.start_time, job.run_seconds * 0.9) * job.slowdown
            saved = (job.progress // CHECKPOINT_SECONDS) * CHECKPOINT_SECONDS
            if saved > 0:
                # The run's last periodic save, begun when it reached that progress: its mark is
                # written as the save's would have been (the pages read redone work from it). Taken
                # as finished even where its writing would still take a few minutes.
                began = job.start_time + saved / job.slowdown
                job.checkpoint_writing = (saved, began, min(now, began + job.checkpoint_duration))
                self._finish_checkpoint(job)
        self.tick(now, gpu_ok)


def _note_reason(node: SimNode, note: str, now: float) -> None:
    """Slurm appends its reboot notes to the node's reason ("<reason> : reboot issued")."""
    node.reason = f"{node.reason} : {note}" if node.reason else note
    node.reason_time = now
