"""The embedded store's ceiling: the largest fleet `clusterwatch serve` ingests at a 15 s scrape
interval within half a core, with each node's exposition exactly what the real exporter serves.

    .venv/bin/python bench/bench_tsdb_ceiling.py [--nodes 140 280 560] [--window 60]

Node pages come from the simulator (the real exporter code over the fake NVML), rendered once
and then served by a cheap static server, so the measured CPU is the server's alone.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import cpu_seconds, free_port, rss_bytes, wait_http  # noqa: E402

INTERVAL = 15
BUDGET = 0.5  # of one core


def node_pages(variants: int = 3) -> list[bytes]:
    """Pages of real simulated nodes at successive times (values change as on a live node)."""
    from simulator.fleet import Fleet

    fleet = Fleet(nodes=4, seed=1, speed=0, start=1_800_000_000.0)
    pages = []
    try:
        for _ in range(variants):
            fleet.advance(INTERVAL)
            for node in fleet.nodes.values():
                node._collected_at = -1e9  # a new collection, as a new scrape would trigger
            pages.append(fleet.render_metrics("gpu-001"))
    finally:
        fleet.stop()
    return pages


def serve_pages(pages: list[bytes]) -> tuple[ThreadingHTTPServer, str]:
    counter = {"n": 0}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def do_GET(self) -> None:  # noqa: N802
            counter["n"] += 1
            body = pages[counter["n"] % len(pages)]
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"127.0.0.1:{server.server_address[1]}"


def measure(nodes: int, address: str, window: float, work: Path) -> tuple[float, float]:
    file_sd = work / f"fleet-{nodes}.json"
    file_sd.write_text(json.dumps([{"targets": [address], "labels": {
        "__metrics_path__": f"/nodes/gpu-{i + 1:05d}/metrics", "instance": f"gpu-{i + 1:05d}"}} for i in range(nodes)]))
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "clusterwatch", "serve", "--listen", f"127.0.0.1:{port}",
                             "--file-sd", str(file_sd), "--scrape-interval", f"{INTERVAL}s"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_http(f"http://127.0.0.1:{port}/-/ready", timeout=120)
        time.sleep(2 * INTERVAL)  # past start-up and the first rounds, which create every series
        before = cpu_seconds(proc.pid)
        time.sleep(window)
        share = (cpu_seconds(proc.pid) - before) / window
        return share, rss_bytes(proc.pid) / 2**20
    finally:
        proc.terminate()
        proc.wait(60)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, nargs="+", default=[140, 280, 560])
    parser.add_argument("--window", type=float, default=60.0)
    args = parser.parse_args()
    pages = node_pages()
    series = sum(1 for line in pages[0].decode().splitlines() if line and not line.startswith("#"))
    print(f"node page: {len(pages[0]):,} bytes, {series} series (the real exporter's, 8 GPUs); interval {INTERVAL}s")
    server, address = serve_pages(pages)
    work = Path(tempfile.mkdtemp(prefix="cw-ceiling-"))
    try:
        ceiling = 0
        for nodes in args.nodes:
            share, rss = measure(nodes, address, args.window, work)
            rate = nodes * series / INTERVAL
            print(f"{nodes} nodes ({nodes * 8} GPUs, {rate:,.0f} samples/s): {share * 100:.1f}% of a core, RSS {rss:.0f} MB")
            if share <= BUDGET:
                ceiling = nodes
        print(f"largest fleet within {BUDGET:.0%} of a core at {INTERVAL}s: {ceiling or 'none of those measured'} nodes")
    finally:
        server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
