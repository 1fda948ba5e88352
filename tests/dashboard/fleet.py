"""The demo the dashboard tests share (the ``demo`` fixture, tests/dashboard/conftest.py): its
number of nodes (8 GPUs each) and its operator's token; and ``large_fleet``, a generated fleet of
thousands of nodes in an embedded store for the overview at scale (docs/dashboard.md)."""
from __future__ import annotations

from dataclasses import dataclass, field

from tsdb.store import Store, TimeColumn

NODES = 6
TOKEN = "test-operator-secret"

GPUS = 8
NODES_PER_RACK = 32
T0 = 1_700_000_000.0
STEP = 30.0


@dataclass
class LargeFleet:
    """What ``large_fleet`` generated and what the overview must show of it."""

    store: Store
    last: float  # the last sample's time
    nodes: list[str]
    allocated: set[str]  # nodes whose every GPU runs a job
    idle_gpu: tuple[str, int]  # allocated, 0% the whole time
    spinning_gpu: tuple[str, int]  # allocated, with GPM: "utilised" by a spinning kernel, its SMs idle
    xid_gpu: tuple[str, int]  # its first XID of a code in the last minutes: unhealthy
    drained: str
    jobs: int
    util: dict[str, float] = field(default_factory=dict)  # node -> each busy GPU's utilisation


def large_fleet(nodes: int, steps: int = 12) -> LargeFleet:
    """``nodes`` nodes x 8 GPUs, ``steps`` scrapes ``STEP`` apart, racks of 32 nodes. Nine nodes
    in ten run a job (jobs of 4 nodes) at 50-90% (by node), the tenth is free at 0%; one GPU of
    an allocated node is idle, another has NVML GPM and spins (its node's utilisation at 0% SM
    activity: idle by its own measure, as a GPU in a hung collective is), one GPU raises its first
    XID 79 in the last minutes, one free node is drained (``slurm_node_flag``)."""
    store = Store(retention_s=1e9)
    stamps = [int((T0 + i * STEP) * 1000) for i in range(steps)]
    names = [f"gpu-{i + 1:05d}" for i in range(nodes)]
    allocated = {n for i, n in enumerate(names) if i % 10 != 9}
    fleet = LargeFleet(store, T0 + (steps - 1) * STEP, names, allocated, idle_gpu=(names[5], 2),
                       spinning_gpu=(names[11], 4), xid_gpu=(names[7], 3), drained=names[9], jobs=0)
    jobs: set[str] = set()
    for i, node in enumerate(names):
        column = TimeColumn()
        column.ts.extend(stamps)
        target = (("instance", node), ("job", "gpu-nodes"), ("rack", f"rack-{i // NODES_PER_RACK + 1:03d}"))
        level = 0.5 + (i % 5) * 0.1 if node in allocated else 0.0
        fleet.util[node] = level
        store.append_series((("__name__", "up"),) + target, stamps, [1.0] * steps, column)
        for g in range(GPUS):
            labels = tuple(sorted(target + (("gpu", str(g)), ("uuid", f"GPU-{i:06x}-{g}"))))
            util = 0.0 if (node, g) == fleet.idle_gpu else level
            gauges = {"gpu_up": 1.0, "gpu_utilization_ratio": util, "gpu_temperature_celsius": 40 + 40 * util,
                      "gpu_memory_used_bytes": 2**30 * (1 + 60 * util), "gpu_power_watts": 100 + 500 * util,
                      "gpu_remapped_rows_pending": 0.0, "gpu_remapped_rows_failure": 0.0}
            if (node, g) == fleet.spinning_gpu:
                gauges["gpu_sm_active_ratio"] = 0.0
            for name, value in gauges.items():
                store.append_series((("__name__", name),) + labels, stamps, [value] * steps, column)
            if node in allocated:
                job = str(1000 + i // 4)
                jobs.add(job)
                info = tuple(sorted(labels + (("__name__", "gpu_job_info"), ("job_id", job), ("source", "cgroup"))))
                store.append_series(info, stamps, [1.0] * steps, column)
        if (node, fleet.xid_gpu[1]) == fleet.xid_gpu:  # born at 1 four scrapes before the end
            xid = tuple(sorted(target + (("__name__", "gpu_xid_errors_total"), ("gpu", str(fleet.xid_gpu[1])),
                                         ("uuid", f"GPU-{i:06x}-{fleet.xid_gpu[1]}"), ("xid", "79"))))
            xid_column = TimeColumn()
            xid_column.ts.extend(stamps[-4:])
            store.append_series(xid, stamps[-4:], [1.0] * 4, xid_column)
    scheduler = TimeColumn()
    scheduler.ts.extend(stamps)
    for job in sorted(jobs):
        labels = (("__name__", "slurm_job_info"), ("job_id", job), ("partition", "gpu"), ("state", "RUNNING"),
                  ("user", "u"))
        store.append_series(labels, stamps, [1.0] * steps, scheduler)
    store.append_series((("__name__", "slurm_node_flag"), ("flag", "drain"), ("instance", fleet.drained)),
                        stamps, [1.0] * steps, scheduler)
    fleet.jobs = len(jobs)
    return fleet

