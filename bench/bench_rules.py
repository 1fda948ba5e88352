"""Rule evaluation over the reference fleet: the whole shipped pack, 140 nodes x 8 GPUs.

The series come from the simulator (every node's exporter rendered once, jobs placed by its
scheduler, plus the Slurm adapter's job/GPU join from its squeue), then HISTORY_S of history at
SCRAPE_S is synthesised from them in the embedded store (counters keep increasing, utilisation
moves), so range functions over 5 m to 1 h windows see full windows. Then every group is
evaluated CYCLES times through LocalQueryClient, with outputs written back as in `serve`, after
one warm-up cycle (the first evaluation builds the store's cached selections and label sets; it is
reported on its own line). Prints the per-cycle wall time (median, p90, max), the CPU time of
this process per cycle (the figure to read on a machine shared with other work), and the
store's size.

    .venv/bin/python bench/bench_rules.py [--nodes 140] [--history 1800] [--cycles 20] [--warmup 1]
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from alerts.evaluator.component import build_evaluator  # noqa: E402
from bench.common import rss_bytes  # noqa: E402
from simulator.fleet import Fleet  # noqa: E402
from tsdb.client import LocalQueryClient  # noqa: E402
from tsdb.exposition import parse_exposition  # noqa: E402
from tsdb.promql.engine import Engine  # noqa: E402
from tsdb.store import Store  # noqa: E402

SCRAPE_S = 15.0
ERROR_WORDS = ("error", "xid", "replay", "discard", "symbol", "link_downed", "recovery", "oom", "retrans", "drop",
               "timeout", "clock_event")  # clock_event: a healthy GPU is not throttled
T0 = 1_700_000_000.0


def node_series(fleet: Fleet) -> dict[str, list[tuple[tuple, float]]]:
    out = {}
    for node in fleet.node_names():
        samples = []
        for name, labels, value, _ in parse_exposition(fleet.render_metrics(node).decode()).samples:
            samples.append((tuple(sorted({**dict(labels), "__name__": name, "instance": node,
                                          "job": "clusterwatch"}.items())), value))
        samples.append(((("__name__", "up"), ("instance", node), ("job", "clusterwatch")), 1.0))
        out[node] = samples
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, default=140)
    parser.add_argument("--history", type=float, default=1800.0)
    parser.add_argument("--cycles", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=1, help="cycles run first and reported apart")
    args = parser.parse_args()

    fleet = Fleet(nodes=args.nodes, seed=1, speed=0, start=T0)
    try:
        base = node_series(fleet)
    finally:
        fleet.stop()
    store = Store(retention_s=1e9)
    rng = random.Random(1)
    steps = int(args.history // SCRAPE_S)
    started = time.perf_counter()
    for i in range(steps):
        ts = T0 + i * SCRAPE_S
        for node, samples in base.items():
            row = []
            for labels, value in samples:
                name = labels[0][1] if labels[0][0] == "__name__" else dict(labels)["__name__"]
                if name.endswith("_total") and not any(word in name for word in ERROR_WORDS):
                    # Work counters (energy, busy time, bytes) grow; error counters of a healthy
                    # fleet stay flat, as they do on a real one (a fleet where every GPU alerts
                    # measures the templating of thousands of alerts, not rule evaluation).
                    value = value + i * SCRAPE_S
                elif name == "clusterwatch_exporter_last_collection_timestamp_seconds":
                    value = ts  # a live exporter's collection time follows the scrapes
                elif name == "gpu_utilization_ratio" and value > 0:
                    value = min(1.0, max(0.0, value + rng.uniform(-0.05, 0.05)))
                row.append((labels, value))
            store.append_scrape(node, int(ts * 1000), row)
    load_s = time.perf_counter() - started
    client = LocalQueryClient(Engine(store))
    evaluator = build_evaluator(None, client, store.append_scrape, None, SCRAPE_S)
    end = T0 + (steps - 1) * SCRAPE_S
    times, cpu, warmup = [], [], []
    rss = [rss_bytes(os.getpid())]
    for cycle in range(args.warmup + args.cycles):
        began, began_cpu = time.perf_counter(), time.process_time()
        evaluator.evaluate(end + cycle * 0.001 + 0.001)
        wall = time.perf_counter() - began
        if cycle < args.warmup:
            warmup.append(wall)
            if cycle == args.warmup - 1:
                rss.append(rss_bytes(os.getpid()))
            continue
        times.append(wall)
        cpu.append(time.process_time() - began_cpu)
    errors = [h.last_error for g in evaluator.groups for h in g.health.values() if h.last_error]
    rules = sum(len(g.rules) for g in evaluator.groups)
    stats = store.stats()
    times.sort()
    cpu.sort()
    print(f"fleet: {args.nodes} nodes x 8 GPUs; store: {stats}; history {args.history:g} s at {SCRAPE_S:g} s "
          f"(loaded in {load_s:.1f} s)")
    print(f"rule evaluation, {rules} rules in {len(evaluator.groups)} groups, {args.cycles} cycles: "
          f"median {statistics.median(times) * 1000:.1f} ms, p90 {times[int(len(times) * 0.9) - 1] * 1000:.1f} ms, "
          f"max {times[-1] * 1000:.1f} ms per cycle; CPU median {statistics.median(cpu) * 1000:.1f} ms, "
          f"max {cpu[-1] * 1000:.1f} ms")
    rss.append(rss_bytes(os.getpid()))
    if warmup:
        print("warm-up cycles (cold caches): " + ", ".join(f"{w * 1000:.1f} ms" for w in warmup))
    print("RSS: " + " -> ".join(f"{r / 1e6:.0f} MB" for r in rss) + " (loaded, after warm-up, after the cycles)"
          if len(rss) == 3 else f"RSS: {rss[0] / 1e6:.0f} -> {rss[-1] / 1e6:.0f} MB")
    for g in evaluator.groups:
        print(f"  {g.group.name}: last {g.last_duration_s * 1000:.1f} ms")
    slowest = sorted(((h.last_duration_s, key.split("|")[-1]) for g in evaluator.groups
                      for key, h in g.health.items()), reverse=True)[:8]
    print("  slowest rules: " + ", ".join(f"{name} {d * 1000:.0f} ms" for d, name in slowest))
    if errors:
        print("rule errors:", errors[:3])
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
