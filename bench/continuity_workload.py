"""The job stream of the simulated month (bench/bench_continuity.py): large multi-node training
runs and small jobs, drawn from a seed before the run (simulator/workload.py's ``JobSpec``), so
that every arm is offered the same work whatever automation does.

- Large runs: 64 to 512 GPUs (8 to 64 whole nodes; at most half the fleet), 1 to 4 days of work
  at full speed, a 7-day time limit; they arrive so that they offer ``large_load`` of the fleet.
- Small jobs: 1 to 32 GPUs, a median of about 2.8 hours (the simulator's own mix of shapes,
  users and behaviours, idle and hung ones included), offering ``small_load``.
"""
from __future__ import annotations

import random

from simulator.jobs import NAMES, SHAPES, TRAIN, USERS
from simulator.workload import FIRST_JOB_ID, JobSpec, draw_run

LARGE_NODES = (8, 16, 32, 64)
LARGE_WORK_DAYS = (1.0, 4.0)
LARGE_TIME_LIMIT = 7 * 86400.0
SMALL_MAX_NODES = 4


def month_stream(seed: int, nodes: int, start: float, duration: float, gpus_per_node: int = 8,
                 large_load: float = 0.6, small_load: float = 0.25) -> list[JobSpec]:
    rng = random.Random(f"continuity-workload:{seed}")
    capacity = nodes * gpus_per_node
    specs: list[tuple[float, dict]] = []
    largest = max(1, nodes // 2)
    sizes = [n for n in LARGE_NODES if n <= largest] or [largest]
    # The first large runs are submitted at the start: a month begins with training under way.
    at = start
    while at < start + duration:
        count = rng.choice(sizes)
        work = rng.uniform(*LARGE_WORK_DAYS) * 86400
        user, account = rng.choice(USERS[:2])  # llm-pretrain
        specs.append((at, dict(name=rng.choice(NAMES[account]), user=user, account=account, partition="batch",
                               gpus_per_node=gpus_per_node, num_nodes=count, work_seconds=work,
                               time_limit=LARGE_TIME_LIMIT, behaviour=TRAIN, hang_after=0.0,
                               straggler_pick=rng.random())))
        at += rng.uniform(0.5, 1.5) * work * gpus_per_node * count / (capacity * large_load)
    shapes = [(min(g, gpus_per_node), n, w) for g, n, w in SHAPES if n <= min(SMALL_MAX_NODES, largest)]
    at = start
    while at < start + duration:
        gpus, count, _ = rng.choices(shapes, weights=[w for *_, w in shapes])[0]
        user, account = rng.choice(USERS[2:])
        behaviour, time_limit, work, hang_after = draw_run(rng, gpus, count)
        partition = "debug" if count == 1 and rng.random() < 0.08 else "batch"
        specs.append((at, dict(name=rng.choice(NAMES[account]), user=user, account=account, partition=partition,
                               gpus_per_node=gpus, num_nodes=count, work_seconds=work, time_limit=time_limit,
                               behaviour=behaviour, hang_after=hang_after, straggler_pick=rng.random())))
        at += rng.uniform(0.5, 1.5) * work * gpus * count / (capacity * small_load)
    specs.sort(key=lambda item: item[0])
    return [JobSpec(FIRST_JOB_ID + i, at, **fields) for i, (at, fields) in enumerate(specs)]
