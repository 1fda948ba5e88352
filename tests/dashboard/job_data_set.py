"""The job data set on which tests/dashboard/test_definitions.py shows the job pages and the rule
pack flagging the same GPUs and jobs, and tests/dashboard/test_jobs_at_scale.py the jobs list at
scale listing what the per-GPU list lists: thirteen jobs, each a case where a definition decides,
four of them on GPUs with NVML GPM, whose SM activity the definitions read where every GPU of the
job has it (docs/architecture.md#definitions)."""
from __future__ import annotations

from pathlib import Path

from tsdb.store import Store

RULES = Path(__file__).resolve().parents[2] / "alerts" / "rules"
T0 = 1_700_000_000.0
STEP = 60.0
MINUTES = 150  # JobGpuEfficiencyLow holds for 2 hours
END = T0 + (MINUTES - 1) * STEP
GB = 1e9
BUSY = (0.8, 40 * GB, 1)  # utilisation, device memory used, processes


def gpm(utilization: float, sm_active: float, memory: float = 60 * GB) -> tuple[float, float, int, float]:
    """A GPU with GPM: utilisation, memory, one process, and its SM activity."""
    return (utilization, memory, 1, sm_active)


# job -> node, GPU -> (utilisation, memory, processes[, SM activity: GPUs with GPM only]), constant
# over the whole data set.
JOBS: dict[str, tuple[str, dict[int, tuple]]] = {
    # 0.625x the median: a straggler (the page used to flag below 0.5x only).
    "101": ("n1", {g: (0.5, 40 * GB, 1) if g == 3 else BUSY for g in range(8)}),
    # Two GPUs: too few for a straggler (the page used to flag any job of 2 or more).
    "102": ("n2", {0: BUSY, 1: (0.2, 40 * GB, 1)}),
    # Median 0.45, not above 0.5: the rest are not busy (the page used to want 0.3).
    "103": ("n2", {2: (0.45, 40 * GB, 1), 3: (0.45, 40 * GB, 1), 4: (0.45, 40 * GB, 1), 5: (0.1, 40 * GB, 1)}),
    # A straggler by every definition.
    "104": ("n3", {0: (0.9, 40 * GB, 1), 1: (0.9, 40 * GB, 1), 2: (0.9, 40 * GB, 1), 3: (0.3, 40 * GB, 1)}),
    # Hung: every GPU idle while holding 30 GB.
    "105": ("n4", {g: (0.0, 30 * GB, 1) for g in range(4)}),
    # Idle, holding half a GiB (a bare CUDA context): not hung (the page used to count any memory).
    "106": ("n4", {g: (0.0, 2**29, 1) for g in range(4, 8)}),
    # Two of four GPUs held without a process (and idle).
    "107": ("n5", {0: (0.9, 40 * GB, 1), 1: (0.9, 40 * GB, 1), 2: (0.0, 0.0, 0), 3: (0.0, 0.0, 0)}),
    # Efficiency 20% and 28%: both low (the job page's report used to say so below 25% only).
    "108": ("n6", {g: (0.2, 40 * GB, 1) for g in range(4)}),
    "109": ("n6", {g: (0.28, 40 * GB, 1) for g in range(4, 8)}),
    # GPM: "100% utilised" at 10% SM activity: low efficiency (by utilisation it was 100%).
    "110": ("n7", {g: gpm(1.0, 0.1) for g in range(4)}),
    # GPM: a straggler by SM activity (0.5x the median) that utilisation, 100% everywhere, hides.
    "111": ("n8", {g: gpm(1.0, 0.3 if g == 3 else 0.6) for g in range(4)}),
    # Two GPUs with GPM, two without: the job's measure is utilisation for all four; a straggler by it.
    "112": ("n9", {0: gpm(0.9, 0.6), 1: gpm(0.9, 0.6), 2: (0.9, 60 * GB, 1), 3: (0.3, 60 * GB, 1)}),
    # GPM: a kernel spinning (5% utilisation) on idle SMs while holding memory: idle and hung.
    "113": ("n10", {0: gpm(0.05, 0.0, 30 * GB), 1: gpm(0.05, 0.0, 30 * GB)}),
}


def job_store() -> Store:
    store = Store(retention_s=1e9)
    stamps = [round((T0 + i * STEP) * 1000) for i in range(MINUTES)]

    def series(metric: str, value: float, **labels: str) -> None:
        key = tuple(sorted({"__name__": metric, **labels}.items()))
        store.append_series(key, stamps, [value] * MINUTES)

    for job_id, (node, gpus) in JOBS.items():
        series("slurm_job_info", 1.0, job_id=job_id, user="alice", account="acct", name="train",
               partition="gpu", state="RUNNING")
        series("slurm_job_start_time_seconds", T0 - 600, job_id=job_id)
        series("slurm_job_gpus", float(len(gpus)), job_id=job_id)
        for gpu, (utilization, memory, processes, *sm_active) in gpus.items():
            where = {"instance": node, "gpu": str(gpu)}
            series("slurm_job_gpu_info", 1.0, job_id=job_id, **where)
            series("gpu_utilization_ratio", utilization, uuid=f"GPU-{node}-{gpu}", **where)
            for value in sm_active:
                series("gpu_sm_active_ratio", value, uuid=f"GPU-{node}-{gpu}", **where)
            series("gpu_memory_used_bytes", memory, **where)
            series("gpu_processes", float(processes), **where)
    return store


def per_job(alerts) -> dict[str, int]:
    return {a.labels["job_id"]: int(a.value) for a in alerts}


def flagged(table, flag: str) -> dict[str, int]:
    return {job_id: row.flags[flag] for job_id, row in table.items() if row.flags.get(flag)}
