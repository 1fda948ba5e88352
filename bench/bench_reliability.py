"""Goodput at 16,384 nodes (issue 20): the time of ``/api/reliability``'s accounting
(dashboard/goodput.py ``account()`` and the view model) over an embedded store holding what the
``clusterwatch-reliability`` group and the scheduler adapter write for a fleet of that size.

    .venv/bin/python bench/bench_reliability.py [--jobs 2048] [--days 1] [--interruptions-per-day 62]
        [--repeats 5]

The store holds, per job, the recorded series a busy cluster has (every job running all the
range, 8 GPUs a node, 64 GPUs a job: 2,048 jobs on 16,384 nodes; a tenth of them hung, idle or
straggling for an hour, each with its JobHung, JobGpusIdle or GpuStragglerUtilization episode,
active its `for` (15 or 25 minutes) before it fires, and a straggler's activity against its job's median; each interrupted job waiting 10 minutes), ``slurm_job_gpu_info`` of the
interrupted jobs' nodes, an alert on one of them, and the interruption records at the published
rate (Llama 3: 419 in 54 days on 16,384 GPUs, so about 62 a day on 16,384 nodes' 131,072; until
session 15 this bench used 8, the rate of 16,384 GPUs). What it measures is the engine's
work: one ``sum_over_time``/``count_over_time`` per cause over one series per job, plus a few small
queries per interruption. The range here is ``--days`` (the store is in memory: 30 days of
2,048 jobs is 88 million samples); the per-cause reads grow with range x jobs, the per-interruption
ones with the interruptions. Goal (docs/performance.md#reliability-page): p50 under 2 s per day
of range at 16,384 nodes on this 2-core machine, so that a 7-day page answers in seconds.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import percentile  # noqa: E402
from dashboard import goodput  # noqa: E402
from dashboard.definitions import GPUS_IDLE  # noqa: E402
from dashboard.params import TimeRange  # noqa: E402
from dashboard.views.reliability import view_of  # noqa: E402
from tsdb.client import LocalQueryClient  # noqa: E402
from tsdb.promql.engine import Engine  # noqa: E402
from tsdb.store import Store  # noqa: E402

T0 = 1_800_000_000.0
GPUS_PER_JOB = 64
NODES_PER_JOB = 8


def build(jobs: int, days: float, per_day: float) -> tuple[Store, TimeRange, int]:
    store = Store(retention_s=1e9)
    minutes = int(days * 1440)
    stamps = [round((T0 + i * 60) * 1000) for i in range(minutes)]

    def put(metric: str, points: dict[int, float], **labels: str) -> None:
        keys = sorted(points)
        store.append_series(tuple(sorted({"__name__": metric, **labels}.items())),
                            [stamps[k] for k in keys], [points[k] for k in keys])

    interrupted = max(1, int(per_day * days))
    for j in range(jobs):
        job = str(100_000 + j)
        put(goodput.RUNNING, {i: float(GPUS_PER_JOB) for i in range(minutes)}, job_id=job)
        if j % 10 == 1:  # JobHung active from minute 45, firing from 60 (its for) to 119
            put(goodput.HUNG, {i: float(GPUS_PER_JOB) for i in range(60, 120)}, job_id=job)
            put("ALERTS_FOR_STATE", {i: T0 + 45 * 60 for i in range(45, 120)}, alertname=goodput.HUNG_ALERT, job_id=job)
            put("ALERTS", {i: 1.0 for i in range(60, 120)}, alertname=goodput.HUNG_ALERT, alertstate="firing", job_id=job)
        if j % 10 == 2:  # 16 GPUs idle from minute 35, JobGpusIdle firing from 60 (its for) to 119
            put(goodput.IDLE_HELD, {i: 16.0 for i in range(60, 120)}, job_id=job)
            put(GPUS_IDLE, {i: 16.0 for i in range(35, 120)}, job_id=job)
            put("ALERTS_FOR_STATE", {i: T0 + 35 * 60 for i in range(35, 120)}, alertname=goodput.IDLE_ALERT, job_id=job)
            put("ALERTS", {i: 1.0 for i in range(60, 120)}, alertname=goodput.IDLE_ALERT, alertstate="firing", job_id=job)
        if j % 10 == 3:  # GPU 0 of its first node at half the job's median from minute 45, firing from 60 to 119
            gpu = {"instance": f"gpu-{(j * NODES_PER_JOB) % 16_384:05d}", "gpu": "0", "measure": "sm_active"}
            put(goodput.STRAGGLER, {i: 32.0 for i in range(60, 120)}, job_id=job)
            put("instance_gpu_job:gpu_activity:ratio", {i: 0.25 for i in range(minutes)}, job_id=job, **gpu)
            put("job_id:gpu_activity:median", {i: 0.5 for i in range(minutes)}, job_id=job, measure="sm_active")
            put("ALERTS_FOR_STATE", {i: T0 + 45 * 60 for i in range(45, 120)}, alertname=goodput.STRAGGLER_ALERT,
                job_id=job, **gpu)
            put("ALERTS", {i: 1.0 for i in range(60, 120)}, alertname=goodput.STRAGGLER_ALERT, alertstate="firing",
                job_id=job, **gpu)
    for k in range(interrupted):
        job, minute = str(100_000 + k * (jobs // interrupted)), int((k + 0.5) * minutes / interrupted)
        put(goodput.RESTART_WAIT, {i: float(GPUS_PER_JOB) for i in range(minute, min(minutes, minute + 10))}, job_id=job)
        put("slurm_job_interruption_time_seconds", {i: T0 + minute * 60 for i in range(minute, minutes)},
            job_id=job, interruption="1", state="PENDING")
        first = (k * NODES_PER_JOB) % 16_384
        for n in range(NODES_PER_JOB):
            put("slurm_job_gpu_info", {i: 1.0 for i in range(max(0, minute - 60), minute)}, job_id=job,
                instance=f"gpu-{first + n:05d}", gpu="0")
        put("ALERTS", {i: 1.0 for i in range(max(0, minute - 5), min(minutes, minute + 5))},
            alertname="GpuXidRebootRequired", alertstate="firing", instance=f"gpu-{first:05d}", gpu="3", xid="79")
    put("slurm_node_gpus", {i: float(8 * 16_384) for i in range(0, minutes, 1)}, instance="all")
    return store, TimeRange(T0 - 60, T0 + (minutes - 1) * 60), interrupted


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2048)
    parser.add_argument("--days", type=float, default=1.0)
    parser.add_argument("--interruptions-per-day", type=float, default=62.0)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    built = time.perf_counter()
    store, tr, interrupted = build(args.jobs, args.days, args.interruptions_per_day)
    print(f"store: {args.jobs} jobs, {args.days:g} days, {interrupted} interruptions, "
          f"built in {time.perf_counter() - built:.1f} s")
    client = LocalQueryClient(Engine(store))
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        view = view_of(goodput.account(client, tr), tr.end)
        times.append(time.perf_counter() - start)
    assert view.interruptions_total == interrupted and len(view.jobs) <= 200 and view.ettr is not None
    p50 = percentile(times, 50)
    print(f"account + view: p50 {p50 * 1000:.0f} ms, max {max(times) * 1000:.0f} ms over {args.repeats} "
          f"(ETTR {view.ettr:.4f}, {view.jobs_total} jobs, {view.interruptions_total} interruptions); "
          f"{p50 / args.days:.2f} s per day of range")
    return 0


if __name__ == "__main__":
    sys.exit(main())
