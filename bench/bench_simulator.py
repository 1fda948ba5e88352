"""Simulator benchmark: the CPU cost of serving every node's metrics once, per-node exposition size,
and whether a 2,048-node fleet runs.

    .venv/bin/python bench/bench_simulator.py [--nodes 140] [--large 2048]

Goal (issue 3): 140 scrapes (the whole reference fleet once) under 1 s of CPU; 2,048 nodes run.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import cpu_seconds, free_port, rss_bytes, wait_http  # noqa: E402


def start(nodes: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "clusterwatch", "simulate", "--nodes", str(nodes), "--listen",
                             f"127.0.0.1:{port}", "--speed", "1", "--seed", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/-/healthy", timeout=300)
    return proc, url


def scrape_all(url: str, names: list[str], concurrency: int = 1) -> list[bytes]:
    with httpx.Client(timeout=60, limits=httpx.Limits(max_connections=concurrency)) as client:
        with ThreadPoolExecutor(concurrency) as pool:
            return list(pool.map(lambda name: client.get(f"{url}/nodes/{name}/metrics").content, names))


def measure(nodes: int, rounds: int) -> None:
    started = time.monotonic()
    proc, url = start(nodes)
    try:
        boot = time.monotonic() - started
        names = [f"gpu-{i + 1:0{max(3, len(str(nodes)))}d}" for i in range(nodes)]
        bodies = scrape_all(url, names)  # first scrape builds each node's exporter
        series = sum(1 for line in bodies[0].decode().splitlines() if line and not line.startswith("#"))
        print(f"{nodes} nodes: ready in {boot:.1f} s; per-node exposition {len(bodies[0]):,} bytes, {series} series")
        costs = []
        for _ in range(rounds):
            time.sleep(1.2)  # past the 1 s window in which scrapes share a collection
            before = cpu_seconds(proc.pid)
            wall = time.monotonic()
            scrape_all(url, names)
            costs.append((cpu_seconds(proc.pid) - before, time.monotonic() - wall))
        best_cpu = min(cpu for cpu, _ in costs)
        print(f"  serving all {nodes} nodes once: CPU {best_cpu:.2f} s (best of {rounds}; all: "
              f"{', '.join(f'{c:.2f}' for c, _ in costs)}), wall {min(w for _, w in costs):.2f} s, "
              f"{best_cpu / nodes * 1e3:.1f} ms CPU per node")
        idle_before = cpu_seconds(proc.pid)
        time.sleep(5)
        print(f"  idle (ticker + XID watcher threads): {(cpu_seconds(proc.pid) - idle_before) / 5 * 100:.1f}% of a core; "
              f"RSS {rss_bytes(proc.pid) / 2**20:.0f} MB")
    finally:
        proc.terminate()
        proc.wait(60)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=140)
    parser.add_argument("--large", type=int, default=2048)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    measure(args.nodes, args.rounds)
    if args.large:
        measure(args.large, 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
