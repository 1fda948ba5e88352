"""The fabric page at 16,384 nodes (issue 19 item 5): server time and payload of ``/api/fabric``,
``/fabric`` and a leaf's, a spine's and a core switch's page over a generated three-tier fat-tree
of 49,152 cables (bench/fabric_fleet.py): by default the simulator's reference shape
(simulator/fabric.py: a leaf of 8 nodes per rack, 2,048 leaves, 512 spines, 256 cores), with
``--hosts-per-leaf 32 --spines-per-pod 32`` 512 leaves of 32, 512 spines, 1,024 cores; whose
``fabric_switch_info``, ``fabric_link_info`` and ``fabric-links`` recorded series are written
straight into an embedded store, with ``gpu_job_info`` for 131,072 GPUs (nine nodes in ten run a
job of four nodes) for the impact lists.

    .venv/bin/python bench/bench_fabric_page.py [--nodes 16384] [--repeats 20] [--storm 500]
        [--hosts-per-leaf 8] [--spines-per-pod 8]

Two fabrics: three cable faults (a host cable with errors, a leaf-spine cable flapping, a host
cable down), then a storm of ``--storm`` more bad cables spread over the fabric (the worst-cables
list and the bad switch pairs at their caps). The dashboard's routers run in process (FastAPI's
TestClient), so a time is the server's: queries, view model, JSON and gzip, no socket; the first
request of each path is reported apart (the engine's selections are cold). Payload is the body
as sent with ``Accept-Encoding: gzip`` and without. Goals (docs/performance.md#fabric-page):
p50 <= 500 ms for /api/fabric and each switch page on this 2-core machine, /api/fabric under
128 KiB gzipped whatever the number of bad cables.
"""
from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import percentile  # noqa: E402

GOAL_P50_S = 0.5
GOAL_GZIP_BYTES = 128 * 1024


def measure(client, path: str, repeats: int) -> dict:
    first = time.perf_counter()
    client.get(path, headers={"Accept-Encoding": "gzip"}).raise_for_status()
    first = time.perf_counter() - first
    wall, cpu = [], []
    size = 0
    for _ in range(repeats):
        begin, begin_cpu = time.perf_counter(), time.process_time()
        response = client.get(path, headers={"Accept-Encoding": "gzip"})
        wall.append(time.perf_counter() - begin)
        cpu.append(time.process_time() - begin_cpu)
        response.raise_for_status()
        size = int(response.headers.get("content-length", len(response.content)))
    plain = len(client.get(path, headers={"Accept-Encoding": "identity"}).content)
    return {"path": path, "p50": percentile(wall, 50), "p99": percentile(wall, 99), "max": max(wall),
            "cpu_p50": percentile(cpu, 50), "first": first, "gzip": size, "plain": plain}


def run(nodes: int, repeats: int, storm: int, hosts_per_leaf: int, spines_per_pod: int) -> bool:
    from fastapi.testclient import TestClient

    from cwkernel.server import build_app
    from dashboard.component import dashboard_component
    from dashboard.context import DashboardContext
    from bench.fabric_fleet import fat_tree
    from tsdb.client import LocalQueryClient
    from tsdb.promql.engine import Engine

    met = True
    for label, extra in (("3 bad cables", 0), (f"storm: {storm} more bad cables", storm)):
        started = time.perf_counter()
        tree = fat_tree(nodes, hosts_per_leaf=hosts_per_leaf, spines_per_pod=spines_per_pod, extra_bad=extra)
        switches = len(tree.leaves) + len(tree.spines) + len(tree.cores)
        print(f"\n{label}: {nodes:,} nodes, {switches:,} switches ({len(tree.leaves)} leaves, {len(tree.spines)} "
              f"spines, {len(tree.cores)} cores), {len(tree.links):,} cables, {len(tree.faults)} bad; generated in "
              f"{time.perf_counter() - started:.1f} s")
        # As serve's GC policy does within its first 10 s (cwkernel/gcpolicy.py): the store's
        # millions of objects frozen, so that a full collection does not walk them (~0.9 s each).
        gc.freeze()
        last = tree.last
        ctx = DashboardContext(LocalQueryClient(Engine(tree.store)), clock=lambda: last)
        spine = tree.faults[1].link[2]
        core = tree.uplinks[spine][0][2]
        paths = {"api": f"/api/fabric?end={tree.last:.0f}", "page": f"/fabric?end={tree.last:.0f}",
                 "leaf": f"/api/fabric/switch/{tree.faults[1].link[0]}?end={tree.last:.0f}",
                 "spine": f"/api/fabric/switch/{spine}?end={tree.last:.0f}",
                 "core": f"/api/fabric/switch/{core}?end={tree.last:.0f}"}
        with TestClient(build_app([dashboard_component(ctx)])) as client:
            for key, path in paths.items():
                m = measure(client, path, repeats)
                goal = m["p50"] <= GOAL_P50_S and (key != "api" or m["gzip"] <= GOAL_GZIP_BYTES)
                met &= goal or key == "page"
                print(f"  {path.split('?')[0]:<36} p50 {m['p50'] * 1e3:6.0f} ms  p99 {m['p99'] * 1e3:6.0f} ms  "
                      f"max {m['max'] * 1e3:6.0f} ms  cpu p50 {m['cpu_p50'] * 1e3:6.0f} ms  first {m['first'] * 1e3:6.0f} ms"
                      f"  payload {m['gzip']:,} B gzip / {m['plain']:,} B plain"
                      f"{'' if key == 'page' else '  goal ' + ('met' if goal else 'NOT met')}")
        del tree, ctx
        gc.unfreeze()
    return met


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=16_384)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--storm", type=int, default=500, help="more bad cables in the second fabric")
    parser.add_argument("--hosts-per-leaf", type=int, default=8)
    parser.add_argument("--spines-per-pod", type=int, default=8, help="a leaf's uplinks, one to each")
    args = parser.parse_args()
    met = run(args.nodes, args.repeats, args.storm, args.hosts_per_leaf, args.spines_per_pod)
    print(f"\ngoals (p50 <= {GOAL_P50_S * 1e3:.0f} ms, /api/fabric <= {GOAL_GZIP_BYTES // 1024} KiB gzip): "
          f"{'met' if met else 'NOT met'}")


if __name__ == "__main__":
    main()
