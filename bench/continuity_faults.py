"""The fault stream of the simulated month (bench/bench_continuity.py): published rates and causes
mapped onto the simulator's fault kinds, drawn once from a seed.

The rate and the mix are Meta's, from "The Llama 3 Herd of Models" (arXiv 2407.21783), section
3.3.4 and Table 5: in a 54-day snapshot of pre-training on 16,384 H100 GPUs there were 466 job
interruptions, 419 of them unexpected, attributed to the root causes below. That is
419 / (54 x 16,384) = 4.74e-4 unexpected interruptions per GPU-day: on the reference fleet
(140 x 8 = 1,120 GPUs) about 16 in 30 days. ``stress`` is three times that rate.

The rows below (those the brief of issue 20 lists) cover 95.1 % of the interruptions; each draw
picks a row by its share, renormalised over them.

Each cause becomes the simulator fault that does to a node what the cause does (simulator/faults.py,
simulator/fleet.py). Where the simulator has no such fault the nearest is used and the mapping
says so: a fault the rule pack cannot see (silent data corruption) is one no hardware rule should
act on, which is what the arms must show.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

SOURCE = "Llama 3 Herd of Models (arXiv 2407.21783), section 3.3.4, Table 5"
# 419 unexpected interruptions in 54 days on 16,384 GPUs.
PUBLISHED_PER_GPU_DAY = 419 / (54 * 16_384)
RATES = {"published": PUBLISHED_PER_GPU_DAY, "stress": 3 * PUBLISHED_PER_GPU_DAY}
DAY = 86400.0


@dataclass(frozen=True)
class Cause:
    """One row of Table 5: its share of the unexpected interruptions, and the simulator faults it
    becomes (one is drawn per occurrence)."""

    name: str
    percent: float
    faults: tuple[dict[str, Any], ...]
    note: str = ""


# Table 5, in its order. Parameters a kind needs beyond node/gpu/port are given here.
CAUSES: tuple[Cause, ...] = (
    Cause("faulty GPU", 30.1, ({"kind": "xid", "xid": 79}, {"kind": "gpu_lost"}),
          "off the bus (XID 79) or lost to NVML"),
    Cause("GPU HBM3 memory", 17.2, ({"kind": "row_remap", "state": "failure"},
                                    {"kind": "ecc", "type": "uncorrected", "count": 1})),
    Cause("software bug", 12.9, ({"kind": "xid", "xid": 13}, {"kind": "xid", "xid": 31}, {"kind": "xid", "xid": 43}),
          "application errors: the job crashes, the hardware is fine"),
    Cause("network switch/cable", 8.4, ({"kind": "ib_flapping"}, {"kind": "ib_link_down"}),
          "the node's InfiniBand port (simulator/fabric.py's cable faults had not landed)"),
    Cause("host maintenance", 7.6, ({"kind": "node_down", "duration": 4 * 3600.0},),
          "unplanned: the host is gone for 4 h"),
    Cause("GPU SRAM memory", 4.5, ({"kind": "xid", "xid": 48},), "a double-bit ECC error (XID 48)"),
    Cause("GPU system processor", 4.1, ({"kind": "xid", "xid": 119}, {"kind": "xid", "xid": 120}), "GSP errors"),
    Cause("NIC", 1.7, ({"kind": "ib_link_down"},)),
    Cause("NCCL watchdog timeouts", 1.7, ({"kind": "ib_flapping", "period": 60.0},),
          "the simulator has no job-only hang: a flapping link, NCCL's usual trigger"),
    Cause("silent data corruption", 1.4, ({"kind": "xid", "xid": 13},),
          "nothing the hardware reports: seen as an application error"),
    Cause("GPU thermal interface + sensor", 1.4, ({"kind": "thermal", "temperature": 96.0},)),
    Cause("SSD", 1.0, ({"kind": "disk_full", "mountpoint": "/"},)),
    Cause("power supply", 0.8, ({"kind": "node_down", "duration": 8 * 3600.0},)),
    Cause("server chassis", 0.5, ({"kind": "node_down", "duration": 8 * 3600.0},)),
    Cause("IO expansion board", 0.5, ({"kind": "gpu_lost"},), "a PCIe fault: GPUs behind it vanish"),
    Cause("dependency", 0.5, ({"kind": "xid", "xid": 43},), "an external service: the job fails, hardware fine"),
    Cause("CPU", 0.4, ({"kind": "node_down", "duration": 8 * 3600.0},)),
    Cause("system memory", 0.4, ({"kind": "node_down", "duration": 8 * 3600.0},)),
)
GPU_KINDS = {"xid", "ecc", "row_remap", "gpu_lost", "thermal", "power", "nvlink_errors"}
PORT_KINDS = {"ib_link_down", "ib_flapping", "ib_symbol_errors"}


@dataclass(frozen=True)
class PlannedFault:
    at: float  # simulated time
    cause: str
    request: dict[str, Any]  # a simulator fault request, node (and gpu/port) set


def draw_faults(seed: int, nodes: list[str], gpus_per_node: int, ib_ports: int, start: float, duration: float,
                rate: str = "published") -> list[PlannedFault]:
    """The stream for ``duration`` seconds from ``start``: a Poisson process at the rate per GPU-day
    over the whole fleet, each occurrence a cause drawn by Table 5's shares on a node drawn
    uniformly. Depends on the arguments alone, so every arm gets the same stream."""
    if rate not in RATES:
        raise ValueError(f"rate must be one of {sorted(RATES)}")
    rng = random.Random(f"continuity-faults:{seed}")
    per_second = RATES[rate] * len(nodes) * gpus_per_node / DAY
    weights = [cause.percent for cause in CAUSES]
    planned: list[PlannedFault] = []
    at = start
    while True:
        at += rng.expovariate(per_second)
        if at >= start + duration:
            return planned
        cause = rng.choices(CAUSES, weights=weights)[0]
        request = dict(rng.choice(cause.faults))
        request["node"] = rng.choice(nodes)
        gpu, port = rng.randrange(gpus_per_node), 1 + rng.randrange(ib_ports)
        if request["kind"] in GPU_KINDS:
            request["gpu"] = gpu
        elif request["kind"] in PORT_KINDS:
            request["port"] = port
        planned.append(PlannedFault(at, cause.name, request))


def expected_count(rate: str, gpus: int, days: float) -> float:
    return RATES[rate] * gpus * days
