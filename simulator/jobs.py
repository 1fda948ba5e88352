"""Simulated jobs: what users submit, and how each kind of job drives its GPUs over time.

Every job honours the checkpoint contract (scheduler/checkpoint.py): it saves its progress
periodically and when signalled; a save takes ``checkpoint_duration`` of wall time (longer for
bigger jobs) during which training goes on, and only a save that finished counts. What a kill or
a requeue throws away is ``unsaved_progress``: the work since the last finished save.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field

# Slurm's job state words (squeue --json job_state).
PENDING, RUNNING, COMPLETED, FAILED, CANCELLED, TIMEOUT, NODE_FAIL = (
    "PENDING", "RUNNING", "COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL")
FINISHED = {COMPLETED, FAILED, CANCELLED, TIMEOUT, NODE_FAIL}

# How a job uses the GPUs it holds. Most train normally; a few misbehave by design, so that the
# dashboard and the rules have something to find (definitions in docs/architecture.md#definitions).
TRAIN, IDLE, HUNG, STRAGGLER, HELD_UNUSED = "train", "idle", "hung", "straggler", "held_unused"

USERS = (
    ("alice", "llm-pretrain"), ("bob", "llm-pretrain"), ("carol", "llm-finetune"), ("dave", "llm-finetune"),
    ("erin", "vision"), ("frank", "vision"), ("grace", "research"), ("heidi", "research"),
    ("ivan", "speech"), ("judy", "infra"),
)
NAMES = {
    "llm-pretrain": ("llama-70b-pretrain", "moe-8x22b", "gpt-13b-pt", "llama-8b-ablation"),
    "llm-finetune": ("sft-70b", "dpo-8b", "rlhf-ppo", "lora-sweep"),
    "vision": ("vit-h-14", "diffusion-xl", "sam-finetune", "clip-l"),
    "research": ("notebook", "eval-harness", "scaling-probe", "debug-run"),
    "speech": ("whisper-large", "tts-train"),
    "infra": ("nccl-tests", "burn-in", "hpl"),
}
# (GPUs per node, nodes, weight): from one GPU to 64 whole nodes, small jobs most common.
SHAPES = ((1, 1, 14), (2, 1, 5), (4, 1, 9), (8, 1, 20), (8, 2, 11), (8, 4, 15), (8, 8, 12), (8, 16, 8),
          (8, 32, 4), (8, 64, 2))
BEHAVIOURS = ((TRAIN, 82), (IDLE, 5), (HUNG, 4), (STRAGGLER, 4), (HELD_UNUSED, 5))
# How long one checkpoint takes to write: every rank's shard to shared storage, so it grows with
# the job's size, from under a minute for one node to 5 minutes for 16 nodes and more.
CHECKPOINT_BASE_SECONDS, CHECKPOINT_PER_NODE_SECONDS, CHECKPOINT_MAX_SECONDS = 30.0, 18.0, 300.0


@dataclass
class SimJob:
    job_id: int
    name: str
    user: str
    account: str
    partition: str
    gpus_per_node: int
    num_nodes: int
    time_limit: float  # seconds
    submit_time: float
    run_seconds: float  # how long it would run if nothing went wrong
    behaviour: str = TRAIN
    hang_after: float = 0.0  # seconds into the run when a HUNG job stops making progress
    state: str = PENDING
    reason: str = "Priority"
    start_time: float | None = None
    end_time: float | None = None
    exit_code: int = 0
    restart_count: int = 0
    progress: float = 0.0  # seconds of useful work done in the current run
    requeue: bool = True
    gpus: dict[str, list[int]] = field(default_factory=dict)  # node -> GPU indices it holds
    slowdown: float = 1.0  # < 1 while a straggler or fault slows every peer of a synchronous job
    # GPUs with no process on them despite being allocated (held-but-unused jobs).
    unused_gpus: set[tuple[str, int]] = field(default_factory=set)
    straggler: tuple[str, int] | None = None
    # Set by a fixed workload (simulator/workload.py), so that nothing about a job depends on when
    # it happens to start: which of its ranks straggles, as a fraction of its GPUs.
    straggler_pick: float | None = None
    fault_hit: bool = False  # a fault reached one of its GPUs or nodes during some run
    stalled: bool = False  # hung on a GPU that fell off the bus: holds its allocation, no progress
    saved_progress: float = 0.0  # progress of this run held by the last finished checkpoint
    # Wall time of the state the last finished checkpoint holds (its save began then): its mark.
    checkpoint_at: float | None = None
    # A checkpoint being written: (progress it saves, wall time it began, wall time it finishes), or None.
    checkpoint_writing: tuple[float, float, float] | None = None
    checkpoints_requested: int = 0  # signals received (the contract's "checkpoint now")

    @property
    def checkpoint_duration(self) -> float:
        return min(CHECKPOINT_MAX_SECONDS, CHECKPOINT_BASE_SECONDS + CHECKPOINT_PER_NODE_SECONDS * self.num_nodes)

    @property
    def unsaved_progress(self) -> float:
        """Seconds of work a kill now would throw away: everything since the last finished checkpoint."""
        return max(0.0, self.progress - self.saved_progress)

    @property
    def total_gpus(self) -> int:
        return self.gpus_per_node * self.num_nodes

    @property
    def nodes(self) -> list[str]:
        return list(self.gpus)

    def pid(self, node: str, gpu: int) -> int:
        """The process id of this job's rank on (node, gpu): stable for the life of one run."""
        return 10_000 + (self.job_id * 37 + self.restart_count * 101 + gpu * 7 + len(node)) % 4_000_000


class JobGenerator:
    """Submits a realistic stream of jobs; deterministic for a seed."""

    def __init__(self, seed: int, fleet_nodes: int, gpus_per_node: int, first_job_id: int = 1000) -> None:
        self._rng = random.Random(seed)
        self._fleet_nodes = fleet_nodes
        self._gpus_per_node = gpus_per_node
        self._next_id = first_job_id

    def _shape(self) -> tuple[int, int]:
        shapes = [(min(g, self._gpus_per_node), n, w) for g, n, w in SHAPES if n <= max(1, self._fleet_nodes // 2)
                  or (n == 1)]
        gpus, nodes, _ = self._rng.choices(shapes, weights=[w for *_, w in shapes])[0]
        return gpus, nodes

    def new_job(self, now: float, partition: str = "batch") -> SimJob:
        rng = self._rng
        user, account = rng.choice(USERS)
        gpus, nodes = self._shape()
        behaviour = rng.choices([b for b, _ in BEHAVIOURS], weights=[w for _, w in BEHAVIOURS])[0]
        if behaviour == STRAGGLER and gpus * nodes < 2:
            behaviour = TRAIN  # a straggler needs peers to lag behind
        if behaviour == HELD_UNUSED and gpus < 2:
            behaviour = IDLE
        time_limit = rng.choice((4, 12, 24, 48)) * 3600.0
        run_seconds = min(time_limit * 1.05, rng.lognormvariate(9.2, 0.8))  # median ~2.8 h
        job = SimJob(
            job_id=self._next_id, name=rng.choice(NAMES[account]), user=user, account=account,
            partition=partition, gpus_per_node=gpus, num_nodes=nodes, time_limit=time_limit,
            submit_time=now, run_seconds=max(600.0, run_seconds), behaviour=behaviour,
            hang_after=rng.uniform(300, 3600) if behaviour == HUNG else 0.0,
        )
        self._next_id += 1
        return job

    def pick(self, population: list, weights: list[float] | None = None):
        return self._rng.choices(population, weights=weights)[0]

    def uniform(self, low: float, high: float) -> float:
        return self._rng.uniform(low, high)
