"""A large, day-long job in an embedded store, shared by the job page tests (test_job_view_large
in process, test_job_page_browser in Chromium): 10 nodes x 8 GPUs = 80 GPUs > DETAIL_GPUS, one
straggler (SLOW), the Slurm series of the job and a scheduler that reports it."""
from __future__ import annotations

import math

from scheduler.model import Job, SchedulerSnapshot, SourceInfo
from tsdb.store import Store, TimeColumn

T0 = 1_700_000_000.0
INTERVAL = 60.0
STEPS = 24 * 60  # 24 h at 1 minute
NODES = [f"gpu-{i:03d}" for i in range(1, 11)]  # 10 nodes x 8 GPUs = 80 GPUs > DETAIL_GPUS
OTHER = "gpu-900"  # a node of another job: its series must not leak into the job's bands
SLOW = ("gpu-004", 5)
JOB_ID = "4242"
LAST = T0 + (STEPS - 1) * INTERVAL


def level(node: str, gpu: int) -> float:
    return 0.2 if (node, gpu) == SLOW else 0.8


def build_store() -> Store:
    """A day at 1 minute of the job's 80 GPUs (one straggler), another job's idle node, the job's
    Slurm series and two XID alerts (one on the job's GPU, one on the other node)."""
    store = Store(retention_s=1e9)
    stamps = [int((T0 + i * INTERVAL) * 1000) for i in range(STEPS)]
    for node in NODES + [OTHER]:
        column = TimeColumn()
        column.ts.extend(stamps)
        for gpu in range(8):
            base = (("gpu", str(gpu)), ("instance", node), ("job", "clusterwatch"))
            u = 0.0 if node == OTHER else level(node, gpu)
            for name, value in (("gpu_utilization_ratio", u), ("gpu_memory_used_bytes", 40e9 * u + 1e9),
                                ("gpu_power_watts", 100 + 500 * u), ("gpu_memory_total_bytes", 80e9),
                                ("gpu_processes", 1.0)):
                store.append_series((("__name__", name),) + base, stamps, [value] * STEPS, column)
    column = TimeColumn()
    column.ts.extend(stamps)
    info = (("__name__", "slurm_job_info"), ("account", "acct"), ("job_id", JOB_ID), ("name", "big"),
            ("partition", "gpu"), ("state", "RUNNING"), ("user", "alice"))
    store.append_series(info, stamps, [1.0] * STEPS, column)
    store.append_series((("__name__", "slurm_job_start_time_seconds"), ("job_id", JOB_ID)), stamps,
                        [T0 - 30] * STEPS, column)
    store.append_series((("__name__", "slurm_job_gpus"), ("job_id", JOB_ID)), stamps, [80.0] * STEPS, column)
    for node in NODES:
        for gpu in range(8):
            store.append_series((("__name__", "slurm_job_gpu_info"), ("gpu", str(gpu)), ("instance", node),
                                 ("job_id", JOB_ID)), stamps, [1.0] * STEPS, column)
    # An XID alert on one of the job's GPUs for two hours, and one on the other job's node.
    for node, gpu in (("gpu-002", "3"), (OTHER, "1")):
        labels = (("__name__", "ALERTS"), ("alertname", "GpuXidError"), ("alertstate", "firing"), ("gpu", gpu),
                  ("instance", node), ("severity", "critical"))
        firing = [1.0 if 600 <= i < 720 else math.nan for i in range(STEPS)]
        store.append_series(labels, stamps, firing, column)
    return store


class Scheduler:
    def snapshot(self):
        job = Job(job_id=JOB_ID, name="big", user="alice", account="acct", partition="gpu", state="RUNNING",
                  nodes=tuple(NODES), gpu_indices={n: tuple(range(8)) for n in NODES}, gpus=80,
                  start_time=T0 - 30, time_limit_seconds=48 * 3600.0)
        return SchedulerSnapshot(jobs=(job,), nodes=(), taken_at=LAST, source=SourceInfo("test"))
