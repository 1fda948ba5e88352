"""Two Kubernetes pods' GPUs as the exporters name them (``gpu_job_info`` with ``job_id="<namespace>/<pod>"``),
one running, one ended with its series made stale as a scrape makes them, and a Slurm job beside
them: the data set of tests/dashboard/test_pod_job_page.py and the pod page's browser test."""
from __future__ import annotations

from cwkernel.series import STALE_NAN
from tsdb.store import Store

T0 = 1_700_000_000.0
STEP = 15.0
POINTS = 240  # an hour
END = T0 + (POINTS - 1) * STEP
RUNNING_POD = "team-a/trainer-0"
ENDED_POD = "team-b/eval.job-7"  # a pod name may hold dots (a DNS subdomain)
ENDED_AT = POINTS // 2


def pod_store() -> Store:
    store = Store(retention_s=1e9)

    def series(metric: str, value: float, points: int = POINTS, **labels: str) -> None:
        """``points`` samples; a series that ends before the others ends as a scrape ends it: stale."""
        values = [value] * points + ([STALE_NAN] if points < POINTS else [])
        key = tuple(sorted({"__name__": metric, **labels}.items()))
        store.append_series(key, [round((T0 + i * STEP) * 1000) for i in range(len(values))], values)

    pods = {RUNNING_POD: ("k1", range(4), 0.9, POINTS), ENDED_POD: ("k2", range(2), 0.4, ENDED_AT)}
    for job_id, (node, gpus, utilization, points) in pods.items():
        namespace, pod = job_id.split("/")
        for gpu in gpus:
            where = {"instance": node, "gpu": str(gpu)}
            series("gpu_job_info", 1.0, points, job_id=job_id, pod=pod, namespace=namespace, container="main",
                   source="kubelet", **where)
            series("gpu_utilization_ratio", utilization, points, uuid=f"GPU-{node}-{gpu}", **where)
            series("gpu_memory_used_bytes", 30e9, points, **where)
            series("gpu_memory_total_bytes", 80e9, points, **where)
            series("gpu_processes", 1.0, points, **where)
    # A Slurm job beside them.
    series("slurm_job_info", 1.0, job_id="123", user="alice", account="acct", name="train", partition="gpu",
           state="RUNNING")
    series("slurm_job_gpus", 1.0, job_id="123")
    series("slurm_job_start_time_seconds", T0, job_id="123")
    series("slurm_job_gpu_info", 1.0, job_id="123", instance="s1", gpu="0")
    series("gpu_utilization_ratio", 0.8, uuid="GPU-s1-0", instance="s1", gpu="0")
    return store
