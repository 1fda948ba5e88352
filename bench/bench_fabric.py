"""Fabric collector benchmark: one sweep's time and CPU over simulated fat-trees, tools excluded.

    .venv/bin/python bench/bench_fabric.py [--sizes 140x4,900x1,16384x1] [--repeats 3]

Each size is NODESxHCA_PORTS: 140x4 is the reference cluster's simulated fabric (1,120 cables),
900x1 the anchor's (guilbaults/infiniband-exporter: 3 s end to end for 60+ switches and 900+ nodes),
16384x1 the scale target (49,152 cables). The sweep runs over the simulator's tool runner, which
writes ibnetdiscover/iblinkinfo/perfquery text from the fat-tree's counters; the time spent in it is
measured and subtracted, leaving the collector's own parsing, naming and bookkeeping ("ours"). The
real tools' MAD round trips (what a fabric's switches take to answer) are not modelled. Exposition
is rendering the sweep's families to the text format, what a scrape then serves as is.

Goal (issue 19): at about 900 nodes the sweep's own parsing and exposition cost no more than the
anchor's 3 s end to end.
"""
from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from exporter.collectors.fabric import TABLE, SweepFamilies, render  # noqa: E402
from exporter.exporter import render_text  # noqa: E402
from exporter.fabric.plan import Plan, SwitchEntry  # noqa: E402
from exporter.fabric.sweep import SweepSettings, Sweeper  # noqa: E402
from simulator.fabric import FatTree, SimFabricRunner  # noqa: E402
from simulator.topology import build_topology  # noqa: E402


class TimedRunner:
    """The simulator's runner, with the wall and CPU time spent inside it (the tools' stand-in) summed."""

    def __init__(self, inner: SimFabricRunner) -> None:
        self.inner = inner
        self.wall = self.cpu = 0.0
        self.bytes = 0
        self.calls = 0

    def run(self, argv, timeout, max_bytes):  # noqa: ANN001, ANN201
        wall, cpu = time.perf_counter(), time.thread_time()
        try:
            result = self.inner.run(argv, timeout, max_bytes)
        finally:
            self.wall += time.perf_counter() - wall
            self.cpu += time.thread_time() - cpu
            self.calls += 1
        self.bytes += len(result.stdout)
        return result


def measure(nodes: int, ports: int, repeats: int, hca_counters: bool) -> dict:
    fabric = FatTree(build_topology(nodes, ib_ports=ports))
    clock = [1_800_000_000.0]
    inner = SimFabricRunner(fabric, lambda: clock[0])
    plan = Plan(switches_by_guid={s.guid: SwitchEntry(s.name, s.tier, s.rack) for s in fabric.switches})
    settings = SweepSettings(max_seconds=3600, ports_per_second=1e9, hca_counters=hca_counters)
    rows = []
    for _ in range(repeats):
        clock[0] += 60  # counters move between sweeps
        runner = TimedRunner(inner)
        sweeper = Sweeper(runner, settings, plan)
        wall, cpu = time.perf_counter(), time.thread_time()
        result = sweeper.sweep()
        sweep_wall, sweep_cpu = time.perf_counter() - wall, time.thread_time() - cpu
        wall, cpu = time.perf_counter(), time.thread_time()
        out = SweepFamilies(TABLE)
        render(out, result)
        text = render_text([out])
        expo_wall, expo_cpu = time.perf_counter() - wall, time.thread_time() - cpu
        # Every exporter collection between sweeps renders the sweep's families again: the text
        # is kept (SweepFamilies), so this is what --interval costs on top of the sweep.
        cache: dict = {}
        render_text([out], cache)
        cpu = time.thread_time()
        render_text([out], cache)
        again_cpu = time.thread_time() - cpu
        # Prometheus asks for OpenMetrics first: the first such scrape of a sweep renders it once.
        cpu = time.thread_time()
        render_text([out], cache, openmetrics=True)
        openmetrics_cpu = time.thread_time() - cpu
        rows.append({"ours_wall": sweep_wall - runner.wall, "ours_cpu": sweep_cpu - runner.cpu, "tools_wall": runner.wall,
                     "expo_wall": expo_wall, "expo_cpu": expo_cpu, "again_cpu": again_cpu,
                     "openmetrics_cpu": openmetrics_cpu, "ports": result.ports_read, "calls": runner.calls,
                     "tool_bytes": runner.bytes, "series": out.sample_count(), "expo_bytes": len(text),
                     "links": len(result.links), "incomplete": result.incomplete})
    median = {key: statistics.median(row[key] for row in rows) for key in rows[0] if key != "incomplete"}
    median.update(nodes=nodes, hca_ports=ports, cables=len(fabric.cables), switches=len(fabric.switches),
                  incomplete=any(row["incomplete"] for row in rows))
    return median


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="140x4,900x1,16384x1", help="NODESxHCA_PORTS, comma-separated")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--hca-counters", action="store_true", help="read the HCA end of host cables too")
    args = parser.parse_args()
    for size in args.sizes.split(","):
        nodes, ports = (int(part) for part in size.split("x"))
        m = measure(nodes, ports, args.repeats, args.hca_counters)
        total = m["ours_wall"] + m["expo_wall"]
        print(f"{nodes} nodes x {ports} HCA ports: {m['switches']} switches, {m['cables']} cables, {m['links']:.0f} links "
              f"exposed, {m['ports']:.0f} ports read in {m['calls']:.0f} tool runs ({m['tool_bytes'] / 1e6:.1f} MB of "
              f"tool output); median of {args.repeats}:")
        print(f"  sweep, ours (parse, name, bookkeeping): {m['ours_wall']:.3f} s wall, {m['ours_cpu']:.3f} s CPU; "
              f"simulated tools: {m['tools_wall']:.3f} s (excluded)")
        print(f"  exposition: {m['expo_wall']:.3f} s wall, {m['expo_cpu']:.3f} s CPU, {m['series']:.0f} series, "
              f"{m['expo_bytes'] / 1e6:.1f} MB; each later collection renders it again in {m['again_cpu']:.3f} s CPU; "
              f"OpenMetrics (what Prometheus asks for), first render {m['openmetrics_cpu']:.3f} s CPU")
        print(f"  ours + exposition: {total:.3f} s" + (" (anchor: 3 s end to end)" if 500 <= nodes <= 2000 else "")
              + ("  INCOMPLETE" if m["incomplete"] else ""), flush=True)
        print(f"  peak RSS of the benchmark process so far: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB "
              "(the fat-tree, its tools' text, one sweep and its exposition)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
