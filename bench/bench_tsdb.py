"""Benchmark of the embedded store against a real Prometheus, in the same run, on the same data.

1. Ingest: a 140-node x 8-GPU fleet's exposition (gpu_* series per GPU with gpu/uuid/instance
   labels, plus node series) served over HTTP; ``clusterwatch serve`` and ``prometheus`` each
   scrape it at 5 s for a measured window; CPU share of one core from /proc/<pid>/stat, and our
   bytes per stored sample from the server's own /metrics.
2. Queries: one hour of gpu_utilization_ratio for 1,120 GPUs at 5 s, written once as OpenMetrics
   and loaded into both (``--import-openmetrics`` / ``promtool tsdb create-blocks-from``);
   p50 of the instant ``avg by (instance) (gpu_utilization_ratio)`` and of a 1 h range query at
   a 15 s step over the 1,120 series, through both HTTP APIs, plus ours in process.

Run: ``.venv/bin/python bench/bench_tsdb.py [--window 30]`` (needs prometheus and promtool).
"""
from __future__ import annotations

import argparse
import json
import math
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import cpu_seconds, free_port, rss_bytes, start, stop, wait_ready  # noqa: E402
from tsdb.client import HTTPQueryClient, LocalQueryClient  # noqa: E402
from tsdb.importer import import_openmetrics  # noqa: E402
from tsdb.promql.engine import Engine  # noqa: E402
from tsdb.store import Store  # noqa: E402

NODES, GPUS, INTERVAL = 140, 8, 5
INSTANT = "avg by (instance) (gpu_utilization_ratio)"
RANGE = "gpu_utilization_ratio"
GPU_GAUGES = ("gpu_utilization_ratio", "gpu_memory_utilization_ratio", "gpu_memory_used_bytes",
              "gpu_memory_free_bytes", "gpu_temperature_celsius", "gpu_memory_temperature_celsius",
              "gpu_power_watts", "gpu_power_limit_watts", "gpu_sm_clock_hz", "gpu_memory_clock_hz",
              "gpu_fan_speed_ratio", "gpu_pcie_tx_bytes_per_second", "gpu_pcie_rx_bytes_per_second")
GPU_COUNTERS = ("gpu_energy_joules_total", "gpu_busy_seconds_total", "gpu_ecc_corrected_errors_total",
                "gpu_pcie_replay_total", "gpu_throttle_seconds_total")


def node_name(n: int) -> str:
    return f"gpu-{n + 1:03d}"


def render_node(n: int, variant: int) -> bytes:
    """One node's exposition; ``variant`` changes the values as successive scrapes would."""
    rng = random.Random(n * 1000 + variant)
    lines = []
    for name in GPU_GAUGES + GPU_COUNTERS:
        lines.append(f"# TYPE {name} {'counter' if name.endswith('_total') else 'gauge'}")
        for gpu in range(GPUS):
            value = rng.random() * (1 if "ratio" in name else 1000) + (variant * 100 if name.endswith("_total") else 0)
            lines.append(f'{name}{{gpu="{gpu}",uuid="GPU-{n:03d}-{gpu}"}} {value:.6g}')
    lines.append("# TYPE gpu_info gauge")
    lines += [f'gpu_info{{gpu="{g}",uuid="GPU-{n:03d}-{g}",name="NVIDIA H100 80GB HBM3",driver="550.54"}} 1'
              for g in range(GPUS)]
    lines.append("# TYPE gpu_job_info gauge")
    lines += [f'gpu_job_info{{gpu="{g}",uuid="GPU-{n:03d}-{g}",job_id="{100 + n // 4}"}} 1' for g in range(GPUS)]
    lines.append("# TYPE node_cpu_seconds_total counter")
    for cpu in range(8):
        for mode in ("user", "system", "idle", "iowait"):
            lines.append(f'node_cpu_seconds_total{{cpu="{cpu}",mode="{mode}"}} {variant * 5 + rng.random():.3f}')
    lines.append("# TYPE node_load1 gauge")
    lines.append(f"node_load1 {rng.random() * 64:.2f}")
    return ("\n".join(lines) + "\n").encode()


class FleetServer:
    """Serves /nodes/<node>/metrics for the whole fleet from pre-rendered pages."""

    def __init__(self, variants: int = 4) -> None:
        self.pages = {node_name(n): [render_node(n, v) for v in range(variants)] for n in range(NODES)}
        self.counter = 0
        pages = self.pages
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802
                parts = self.path.split("/")
                variants = pages.get(parts[2]) if len(parts) > 3 else None
                if variants is None:
                    self.send_error(404)
                    return
                owner.counter += 1
                body = variants[(owner.counter // NODES) % len(variants)]
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def write_file_sd(self, path: Path) -> Path:
        groups = [{"targets": [self.address], "labels": {"__metrics_path__": f"/nodes/{node}/metrics", "instance": node}}
                  for node in self.pages]
        path.write_text(json.dumps(groups))
        return path

    def series_per_scrape(self) -> int:
        return sum(sum(1 for line in pages[0].decode().splitlines() if not line.startswith("#"))
                   for pages in self.pages.values())

    def close(self) -> None:
        self.httpd.shutdown()


def measure_ingest(proc: subprocess.Popen, warmup: float, window: float) -> tuple[float, int]:
    time.sleep(warmup)
    before, rss_before = cpu_seconds(proc.pid), rss_bytes(proc.pid)
    time.sleep(window)
    return (cpu_seconds(proc.pid) - before) / window, rss_bytes(proc.pid) - rss_before


def self_metric(url: str, name: str) -> float:
    for line in httpx.get(url).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return math.nan


def bench_ingest(work: Path, window: float, prometheus: str) -> dict:
    fleet = FleetServer()
    sd = fleet.write_file_sd(work / "fleet_sd.json")
    series = fleet.series_per_scrape()
    results: dict = {"series_per_interval": series}
    try:
        port = free_port()
        ours = start([sys.executable, "-m", "clusterwatch", "serve", "--listen", f"127.0.0.1:{port}",
                      "--file-sd", str(sd), "--scrape-interval", f"{INTERVAL}s"], work / "serve-ingest.log")
        try:
            wait_ready(f"http://127.0.0.1:{port}/-/ready", ours)
            results["ours_cpu"], results["ours_rss_growth"] = measure_ingest(ours, 2 * INTERVAL, window)
            metrics = f"http://127.0.0.1:{port}/metrics"
            samples = self_metric(metrics, "clusterwatch_tsdb_samples")
            results["ours_samples"] = samples
            results["ours_bytes_per_sample"] = self_metric(metrics, "clusterwatch_tsdb_sample_bytes") / samples
        finally:
            stop(ours)
        # The same with --snapshot: durable as Prometheus is, through the write-ahead log (tsdb/wal.py).
        port = free_port()
        wal = work / "store.npz.wal"
        ours = start([sys.executable, "-m", "clusterwatch", "serve", "--listen", f"127.0.0.1:{port}",
                      "--file-sd", str(sd), "--scrape-interval", f"{INTERVAL}s", "--snapshot", str(work / "store.npz")],
                     work / "serve-ingest-wal.log")
        try:
            wait_ready(f"http://127.0.0.1:{port}/-/ready", ours)
            time.sleep(2 * INTERVAL)  # past the first scrapes, which declare every series in the log
            logged = directory_bytes(wal)
            results["ours_wal_cpu"], _ = measure_ingest(ours, 0, window)
            results["ours_wal_bytes_per_minute"] = (directory_bytes(wal) - logged) / window * 60
        finally:
            stop(ours)
        config = work / "prometheus-ingest.yml"
        config.write_text(f"global:\n  scrape_interval: {INTERVAL}s\nscrape_configs:\n  - job_name: fleet\n"
                          f"    file_sd_configs:\n      - files: ['{sd}']\n")
        port = free_port()
        prom = start([prometheus, f"--config.file={config}", f"--storage.tsdb.path={work / 'prom-ingest'}",
                      f"--web.listen-address=127.0.0.1:{port}"], work / "prometheus-ingest.log")
        try:
            wait_ready(f"http://127.0.0.1:{port}/-/ready", prom)
            results["prom_cpu"], results["prom_rss_growth"] = measure_ingest(prom, 2 * INTERVAL, window)
        finally:
            stop(prom)
    finally:
        fleet.close()
    return results


def directory_bytes(path: Path) -> int:
    return sum(entry.stat().st_size for entry in path.iterdir()) if path.is_dir() else 0


def write_history(path: Path, end: int, hours: float = 1.0) -> None:
    """gpu_utilization_ratio of every GPU at 5 s for ``hours`` before ``end``, as OpenMetrics."""
    rng = random.Random(3)
    steps = int(hours * 3600 / INTERVAL)
    start_time = end - steps * INTERVAL
    with path.open("w") as out:
        out.write("# TYPE gpu_utilization_ratio gauge\n")
        for n in range(NODES):
            for gpu in range(GPUS):
                labels = f'{{instance="{node_name(n)}",gpu="{gpu}",uuid="GPU-{n:03d}-{gpu}"}}'
                base = rng.random()
                out.writelines(f"gpu_utilization_ratio{labels} {min(1.0, base + 0.1 * math.sin(i / 7)):.4f} "
                               f"{start_time + i * INTERVAL}\n" for i in range(1, steps + 1))
        out.write("# EOF\n")


def p50(run, repeats: int) -> float:
    run()  # warm caches and connections
    durations = []
    for _ in range(repeats):
        began = time.perf_counter()
        run()
        durations.append(time.perf_counter() - began)
    return statistics.median(durations) * 1000


def bench_queries(work: Path, repeats: int, prometheus: str, promtool: str) -> dict:
    end = 1_700_003_600
    data = work / "history.om"
    write_history(data, end)
    blocks = work / "prom-query"
    subprocess.run([promtool, "tsdb", "create-blocks-from", "openmetrics", str(data), str(blocks)],
                   check=True, capture_output=True)
    config = work / "prometheus-query.yml"
    config.write_text("global:\n  scrape_interval: 1h\n")
    our_port, prom_port = free_port(), free_port()
    # Both keep the 2023 data set whatever today's date (serve applies its retention from now).
    ours = start([sys.executable, "-m", "clusterwatch", "serve", "--listen", f"127.0.0.1:{our_port}",
                  "--retention", "100y", "--import-openmetrics", str(data)], work / "serve-query.log")
    prom = start([prometheus, f"--config.file={config}", f"--storage.tsdb.path={blocks}",
                  f"--web.listen-address=127.0.0.1:{prom_port}", "--storage.tsdb.retention.time=100y"],
                 work / "prometheus-query.log")
    results: dict = {}
    try:
        store = Store(retention_s=100 * 86400)
        import_openmetrics(store, data)
        local = LocalQueryClient(Engine(store))
        wait_ready(f"http://127.0.0.1:{our_port}/-/ready", ours, timeout=300)
        wait_ready(f"http://127.0.0.1:{prom_port}/-/ready", prom)
        clients = {"ours_http": HTTPQueryClient(f"http://127.0.0.1:{our_port}"),
                   "prom_http": HTTPQueryClient(f"http://127.0.0.1:{prom_port}"), "ours_local": local}
        for name, client in clients.items():
            series = len(client.range(RANGE, end - 3600, end, 15).series)
            results[f"{name}_range_series"] = series
            results[f"{name}_instant_ms"] = p50(lambda: client.instant(INSTANT, end), repeats)
            results[f"{name}_range_ms"] = p50(lambda: client.range(RANGE, end - 3600, end, 15), repeats)
    finally:
        stop(ours)
        stop(prom)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window", type=float, default=30.0, help="ingest measurement window, seconds")
    parser.add_argument("--repeats", type=int, default=20, help="query repetitions for each p50")
    args = parser.parse_args()
    prometheus, promtool = shutil.which("prometheus"), shutil.which("promtool")
    if not prometheus or not promtool:
        print("prometheus and promtool are needed (Debian package prometheus)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="cw-bench-") as tmp:
        work = Path(tmp)
        ingest = bench_ingest(work, args.window, prometheus)
        queries = bench_queries(work, args.repeats, prometheus, promtool)
    series = ingest["series_per_interval"]
    print(f"fleet: {NODES} nodes x {GPUS} GPUs, {series} series per scrape round, interval {INTERVAL}s "
          f"({series / INTERVAL:.0f} samples/s)")
    print(f"ingest CPU (share of one core): ours {ingest['ours_cpu']:.1%}, Prometheus {ingest['prom_cpu']:.1%}, "
          f"ratio {ingest['ours_cpu'] / ingest['prom_cpu']:.2f}")
    print(f"ingest CPU with --snapshot (and its write-ahead log, as durable as Prometheus's): ours "
          f"{ingest['ours_wal_cpu']:.1%}, ratio {ingest['ours_wal_cpu'] / ingest['prom_cpu']:.2f}; the log grew "
          f"{ingest['ours_wal_bytes_per_minute'] / 1e6:.1f} MB a minute")
    print(f"ours: {ingest['ours_bytes_per_sample']:.2f} bytes per stored sample (values + shared timestamps), "
          f"RSS growth over the window: ours {ingest['ours_rss_growth'] / 1e6:.1f} MB, "
          f"Prometheus {ingest['prom_rss_growth'] / 1e6:.1f} MB")
    for kind, label in (("instant", f"instant {INSTANT}"), ("range", f"1h range at 15s of {RANGE}")):
        ours, prom, local = (queries[f"ours_http_{kind}_ms"], queries[f"prom_http_{kind}_ms"],
                             queries[f"ours_local_{kind}_ms"])
        print(f"{label}: p50 ours {ours:.1f} ms over HTTP ({local:.1f} ms in process), Prometheus {prom:.1f} ms, "
              f"ratio {ours / prom:.2f}")
    print(f"range query series: ours {queries['ours_http_range_series']}, Prometheus {queries['prom_http_range_series']}")
    if queries["ours_http_range_series"] != queries["prom_http_range_series"]:
        print("the two servers answered different series: the query figures compare nothing", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
