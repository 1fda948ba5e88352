"""What a job does to each of its GPUs at a moment: the shapes an operator recognises.

Training runs at 90-99% utilization with periodic checkpoint dips (GPUs wait on storage) and
evaluation phases; multi-node jobs keep InfiniBand busy with all-reduce traffic. Misbehaving jobs
follow docs/architecture.md#definitions: idle (allocated, ~0%), hung (memory held, 0%, no IB traffic),
straggler (one GPU well below its peers, which wait for it), held-but-unused (no process on some
allocated GPUs).
"""
from __future__ import annotations

from dataclasses import dataclass

from simulator.jobs import HELD_UNUSED, HUNG, IDLE, STRAGGLER, SimJob
from simulator.randomness import jitter
from simulator.scheduler import CHECKPOINT_SECONDS

CHECKPOINT_LENGTH = 90.0
EVAL_EVERY, EVAL_LENGTH = 4 * 3600.0, 600.0
STARTUP_SECONDS = 120.0
NOISE_BUCKET = 15.0  # seconds during which one noise value holds (a scrape interval or so)


@dataclass(frozen=True)
class GpuActivity:
    utilization: float = 0.0  # 0-1
    memory_fraction: float = 0.004  # of the GPU's memory (the driver's own reservation when idle)
    copy_utilization: float = 0.0
    ib_fraction: float = 0.0  # of the node's InfiniBand bandwidth this GPU's rank drives
    storage_write: float = 0.0  # relative checkpoint write load, 0-1
    has_process: bool = False
    clock_fraction: float = 1.0  # SM clock relative to its boost clock
    # What the SMs do while busy (GPM levels, simulator/gpu_model.py GPM_PROFILES): "tensor" for
    # training, "memory" for memory-bandwidth-bound work; and NVLink traffic as a fraction of its peak.
    profile: str = "tensor"
    nvlink_fraction: float = 0.0


IDLE_GPU = GpuActivity()


def gpu_activity(job: SimJob | None, node: str, gpu: int, now: float, seed: int) -> GpuActivity:
    if job is None or job.start_time is None:
        return IDLE_GPU
    if (node, gpu) in job.unused_gpus and job.behaviour == HELD_UNUSED:
        return IDLE_GPU  # allocated, yet nothing runs on it
    elapsed = now - job.start_time
    if elapsed < 0:
        return IDLE_GPU  # a node catching up on a gap sees the job only from its start
    bucket = int(now // NOISE_BUCKET)

    def noise(spread: float, what: str) -> float:
        return jitter(seed, spread, job.job_id, node, gpu, what, bucket)

    if job.behaviour == IDLE:
        return GpuActivity(0.003 + abs(noise(0.003, "u")), 0.04, 0.0, 0.0, 0.0, True)
    if job.behaviour == HUNG and elapsed >= job.hang_after:
        return GpuActivity(0.0, 0.86 + noise(0.01, "m"), 0.0, 0.0, 0.0, True)
    if elapsed < STARTUP_SECONDS:
        ramp = elapsed / STARTUP_SECONDS
        return GpuActivity(0.1 + 0.2 * ramp, 0.1 + 0.7 * ramp, 0.05, 0.01, 0.0, True)

    multi_node = job.num_nodes > 1
    if elapsed % CHECKPOINT_SECONDS < CHECKPOINT_LENGTH:
        return GpuActivity(0.12 + noise(0.05, "u"), 0.87, 0.3, 0.02 if multi_node else 0.0, 0.9, True)
    if elapsed % EVAL_EVERY >= EVAL_EVERY - EVAL_LENGTH:
        return GpuActivity(0.62 + noise(0.05, "u"), 0.8, 0.15, 0.15 if multi_node else 0.0, 0.0, True)

    utilization, clock = 0.955 + noise(0.035, "u"), 1.0
    if job.behaviour == STRAGGLER and job.straggler is not None:
        if job.straggler == (node, gpu):
            utilization, clock = 0.58 + noise(0.04, "u"), 0.68
        else:
            utilization = 0.78 + noise(0.04, "u")  # peers wait at every collective for the slow rank
    utilization *= job.slowdown if job.behaviour != STRAGGLER else 1.0
    return GpuActivity(
        utilization=max(0.0, min(1.0, utilization)),
        memory_fraction=0.88 + noise(0.02, "m"),
        copy_utilization=0.25 + noise(0.05, "c"),
        ib_fraction=(0.65 + noise(0.1, "ib")) * utilization if multi_node else 0.01,
        has_process=True,
        clock_fraction=clock,
        profile=job_profile(job),
        nvlink_fraction=0.3 * utilization if job.gpus_per_node > 1 else 0.0,  # all-reduce between the node's GPUs
    )


# Jobs whose kernels wait on device memory rather than on the tensor cores: small-batch
# evaluation and adapter sweeps. Every other job trains (tensor-heavy).
MEMORY_BOUND_NAMES = frozenset({"eval-harness", "lora-sweep", "scaling-probe"})


def job_profile(job: SimJob) -> str:
    """The GPM profile of a running job's GPUs (GpuActivity.profile)."""
    return "memory" if job.name in MEMORY_BOUND_NAMES else "tensor"
