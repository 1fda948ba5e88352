"""The fabric-links rule group's evaluation cost (issue 19): the group of alerts/rules/fabric.yml
evaluated over a simulated fat-tree's series, as the embedded evaluator runs it every 30 s.

The simulator's fat-tree (simulator/fabric.py) is swept by the real fabric collector every STEP of
simulated time for HISTORY seconds (so the 5- and 15-minute windows are full), its exposition
appended to an embedded store as the scraper would (job clusterwatch-fabric), with a few cables
faulty (flapping, degraded, symbol errors) so that every rule has something to find. Then the group
is evaluated CYCLES times through LocalQueryClient, writing its outputs back as `serve` does;
prints the per-cycle wall and CPU time (median, max) and the series read.

    .venv/bin/python bench/bench_fabric_rules.py [--sizes 140x4,900x1] [--history 1200] [--cycles 10]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from alerts.evaluator.manager import RuleEvaluator  # noqa: E402
from alerts.evaluator.rulefile import load_rule_file  # noqa: E402
from simulator.fleet import FABRIC_INSTANCE, FABRIC_JOB, Fleet  # noqa: E402
from tsdb.client import LocalQueryClient  # noqa: E402
from tsdb.exposition import parse_exposition  # noqa: E402
from tsdb.promql.engine import Engine  # noqa: E402
from tsdb.store import Limits, Store  # noqa: E402

RULES = Path(__file__).resolve().parent.parent / "alerts" / "rules" / "fabric.yml"
STEP = 30.0
T0 = 1_700_000_000.0


def fabric_store(nodes: int, ports: int, history: float) -> tuple[Store, float, int]:
    """The store after ``history`` seconds of sweeps; returns it, the last time, the cables swept."""
    fleet = Fleet(nodes=nodes, seed=7, speed=0, start=T0, ib_ports=ports)
    try:
        names = fleet.node_names()
        for kind, node in (("fabric_flapping", names[1]), ("fabric_degraded", names[2]),
                           ("fabric_symbol_errors", names[3])):
            fleet.inject({"kind": kind, "node": node, "port": 1})
        exporter = fleet.fabric_exporter()
        exporter.collectors[0].run_in_background = False
        # One fabric target exposes ~47 series a cable: above the embedded store's default per-target
        # limit of 50,000 from about 1,100 cables (the reference 140x4 is 52,659), so the bench lifts it.
        store, now = Store(retention_s=1e9, limits=Limits(max_series_per_target=0, max_label_values_per_target=0)), T0
        target = {"instance": FABRIC_INSTANCE, "job": FABRIC_JOB}
        while now < T0 + history:
            now += STEP
            fleet.clock.advance(STEP)  # the fat-tree's counters follow the clock; the nodes need not run
            exporter.collectors[0].sweep_once()
            samples = parse_exposition(exporter.collect_once().text.decode()).samples
            store.append_scrape("fabric", int(now * 1000), [
                (tuple(sorted({**dict(labels), "__name__": name, **target}.items())), value)
                for name, labels, value, _ in samples])
        return store, now, len(fleet.fabric.cables)
    finally:
        fleet.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="140x4,900x1", help="NODESxHCA_PORTS, comma-separated")
    parser.add_argument("--history", type=float, default=1200.0, help="seconds of sweeps before timing")
    parser.add_argument("--cycles", type=int, default=10)
    args = parser.parse_args()
    group = next(g for g in load_rule_file(RULES) if g.name == "fabric-links")
    for size in args.sizes.split(","):
        nodes, ports = (int(x) for x in size.split("x"))
        built = time.perf_counter()
        store, now, cables = fabric_store(nodes, ports, args.history)
        built = time.perf_counter() - built
        evaluator = RuleEvaluator([group], LocalQueryClient(Engine(store)), writer=store.append_rule_output)
        evaluator.evaluate(now)  # warm-up: the store's cached selections
        walls, cpus = [], []
        for cycle in range(1, args.cycles + 1):
            wall, cpu = time.perf_counter(), time.process_time()
            evaluator.evaluate(now + cycle * STEP)
            walls.append(time.perf_counter() - wall)
            cpus.append(time.process_time() - cpu)
        health = LocalQueryClient(Engine(store)).instant("count(fabric_link:health)", now + args.cycles * STEP)
        links = int(health.series[0].value) if health.series else 0
        print(f"{size}: {links} links ({cables} cables in the fat-tree), history built in {built:.1f} s; "
              f"fabric-links group per cycle: wall median {statistics.median(walls) * 1000:.1f} ms, "
              f"max {max(walls) * 1000:.1f} ms; CPU median {statistics.median(cpus) * 1000:.1f} ms")


if __name__ == "__main__":
    main()
