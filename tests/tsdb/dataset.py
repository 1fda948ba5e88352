"""A deterministic OpenMetrics data set of a small GPU cluster (8 nodes x 4 GPUs, 2 hours at a
15 s interval) loaded both into our store and into a real Prometheus by the conformance test.

It has what the PromQL corner cases need: gauges, counters with resets, a histogram, a series
with NaN values, per-node timestamp phases (no two nodes share scrape times), a node with a
10-minute gap, and job series that end half way (a job finishing, a new one starting).
"""
from __future__ import annotations

import math
import random
from pathlib import Path

START = 1_700_000_000  # seconds; 2023-11-14T22:13:20Z
DURATION = 2 * 3600
INTERVAL = 15
NODES = [f"gpu-{i:03d}" for i in range(1, 9)]
GPUS = 4
BUCKETS = ["0.05", "0.1", "0.25", "0.5", "1", "+Inf"]


def _fmt(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def _labels(pairs: dict[str, str]) -> str:
    return "{" + ",".join(f'{k}="{v}"' for k, v in pairs.items()) + "}"


def generate(seed: int = 7) -> str:
    rng = random.Random(seed)
    families: dict[str, tuple[str, list[str]]] = {}

    def emit(family: str, kind: str, sample: str, labels: dict[str, str], points: list[tuple[float, float]]) -> None:
        lines = families.setdefault(family, (kind, []))[1]
        text = _labels(labels)
        lines.extend(f"{sample}{text} {_fmt(v)} {t:.3f}" for t, v in points)

    for n, node in enumerate(NODES):
        phase = n * 1.37  # seconds: every node scraped at its own offset
        times = [START + phase + i * INTERVAL for i in range(DURATION // INTERVAL)]
        if node == "gpu-003":  # a 10 minute outage in the middle
            times = [t for t in times if not START + 2400 <= t < START + 3000]
        for gpu in range(GPUS):
            base = {"instance": node, "gpu": str(gpu), "uuid": f"GPU-{n:02d}{gpu:02d}-ab"}
            busy = 0.2 + 0.75 * rng.random()
            util, energy, mem, xid = [], [], [], []
            total = 1000.0 * rng.random()
            for i, t in enumerate(times):
                u = min(1.0, max(0.0, busy + 0.2 * math.sin(i / 9 + gpu) + rng.gauss(0, 0.05)))
                if node == "gpu-005" and gpu == 2:
                    u = 0.0  # an idle GPU
                util.append((t, round(u, 4)))
                total += 700 * u * INTERVAL
                if node == "gpu-002" and i == 200:
                    total = 12.5  # exporter restart: the counter resets
                energy.append((t, round(total, 3)))
                mem.append((t, float(int(8e10 * (0.1 + 0.8 * u)))))
            emit("gpu_utilization_ratio", "gauge", "gpu_utilization_ratio", base, util)
            emit("gpu_memory_used_bytes", "gauge", "gpu_memory_used_bytes", base, mem)
            emit("gpu_temperature_celsius", "gauge", "gpu_temperature_celsius", base,
                 [(t, round(35 + 45 * v, 2)) for t, v in util])
            emit("gpu_power_watts", "gauge", "gpu_power_watts", base, [(t, round(90 + 600 * v, 1)) for t, v in util])
            emit("gpu_energy_joules", "counter", "gpu_energy_joules_total", base, energy)
            emit("gpu_fan_speed_ratio", "gauge", "gpu_fan_speed_ratio", base,
                 [(t, math.nan if i % 37 == 0 else round(0.3 + 0.5 * v, 3)) for i, (t, v) in enumerate(util)])
            if node in ("gpu-004", "gpu-007") and gpu < 2:
                for x, code in enumerate(("79", "48")):
                    count, points = 0.0, []
                    for i, t in enumerate(times):
                        if i % (60 + 40 * x + gpu * 7) == 0 and i:
                            count += 1
                        points.append((t, count))
                    emit("gpu_xid_errors", "counter", "gpu_xid_errors_total", {**base, "xid": code}, points)
            half = len(times) // 2
            first_job, second_job = f"{1000 + n}", f"{2000 + n * 10 + gpu % 2}"
            if not (node == "gpu-005" and gpu == 3):  # one GPU held by no job
                emit("gpu_job_info", "gauge", "gpu_job_info", {**base, "job_id": first_job},
                     [(t, 1.0) for t in times[:half]])
                emit("gpu_job_info", "gauge", "gpu_job_info", {**base, "job_id": second_job},
                     [(t, 1.0) for t in times[half:]])
        for cpu in range(2):
            for mode, share in (("user", 0.6), ("system", 0.1), ("idle", 0.3)):
                value, points = 1e5 * rng.random(), []
                for t in times:
                    value += INTERVAL * share * (0.5 + rng.random())
                    points.append((t, round(value, 2)))
                emit("node_cpu_seconds", "counter", "node_cpu_seconds_total",
                     {"instance": node, "cpu": str(cpu), "mode": mode}, points)
        counts = [0.0] * len(BUCKETS)
        total_sum, bucket_points = 0.0, [[] for _ in BUCKETS]
        sum_points, count_points = [], []
        for t in times:
            for _ in range(rng.randint(0, 20)):
                observed = rng.expovariate(6 + n)
                total_sum += observed
                for b, bound in enumerate(BUCKETS):
                    if observed <= float(bound):
                        counts[b] += 1
            for b in range(len(BUCKETS)):
                bucket_points[b].append((t, counts[b]))
            sum_points.append((t, round(total_sum, 6)))
            count_points.append((t, counts[-1]))
        for b, bound in enumerate(BUCKETS):
            emit("checkpoint_write_seconds", "histogram", "checkpoint_write_seconds_bucket",
                 {"instance": node, "le": bound}, bucket_points[b])
        emit("checkpoint_write_seconds", "histogram", "checkpoint_write_seconds_sum", {"instance": node}, sum_points)
        emit("checkpoint_write_seconds", "histogram", "checkpoint_write_seconds_count", {"instance": node}, count_points)
    scheduler_times = [START + i * 30 for i in range(DURATION // 30)]
    for n in range(len(NODES)):
        for job_id, user, state in ((f"{1000 + n}", f"user{n % 3}", "COMPLETED"),
                                    (f"{2000 + n * 10}", f"user{(n + 1) % 3}", "RUNNING"),
                                    (f"{2000 + n * 10 + 1}", "user9", "RUNNING")):
            emit("slurm_job_info", "gauge", "slurm_job_info",
                 {"job_id": job_id, "user": user, "partition": "gpu" if n % 2 else "debug", "state": state},
                 [(t, 1.0) for t in scheduler_times])
    out = []
    for family, (kind, lines) in families.items():
        out.append(f"# TYPE {family} {kind}")
        out.extend(lines)
    out.append("# EOF")
    return "\n".join(out) + "\n"


def write(path: Path, seed: int = 7) -> Path:
    path.write_text(generate(seed))
    return path
