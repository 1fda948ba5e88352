"""Dashboard server time and payload: the overview at 1,120 GPUs (a 140-node simulator scraped by
`clusterwatch serve`), the job page of the largest running job there, the overview at 131,072
GPUs (16,384 nodes' series generated straight into an embedded store), and the job page of one
job on 512 GPUs over 24 h (64 simulated nodes' series at 15 s in an embedded store, ``job_store``).

    .venv/bin/python bench/bench_dashboard.py [--repeats 30] [--big-nodes 16384] [--big-minutes 15]
    .venv/bin/python bench/bench_dashboard.py --only-job [--job-nodes 64] [--job-hours 24] [--job-interval 15]

Small fleet: times are client times of sequential GETs over one keep-alive loopback connection
(server time plus well under a millisecond of transport). Large fleet: the dashboard's routers run
in process over the generated store (FastAPI's TestClient), so the time is the server's: queries,
view model, JSON encoding and compression, with no socket. Payload is the body as sent, with and
without ``Accept-Encoding: gzip``.
"""
from __future__ import annotations

import argparse
import http.client
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import free_port, percentile, summary_ms, time_gets, wait_http  # noqa: E402

GPUS_PER_NODE = 8
NODES_PER_RACK = 32


def timed_gets(port: int, path: str, count: int, gzip: bool = True) -> tuple[list[float], int]:
    headers = {"Accept": "application/json", **({"Accept-Encoding": "gzip"} if gzip else {})}
    return time_gets("127.0.0.1", port, path, count, headers, timeout=120)

def small_fleet(repeats: int, work: Path) -> None:
    """140 simulated nodes, serve scraping them at 5 s and polling the simulated Slurm."""
    sim_port, port = free_port(), free_port()
    file_sd = work / "fleet.json"
    sim = subprocess.Popen([sys.executable, "-m", "clusterwatch", "simulate", "--nodes", "140", "--listen",
                            f"127.0.0.1:{sim_port}", "--file-sd", str(file_sd)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    serve = None
    try:
        wait_http(f"http://127.0.0.1:{sim_port}/-/healthy", timeout=120)
        serve = subprocess.Popen([sys.executable, "-m", "clusterwatch", "serve", "--listen", f"127.0.0.1:{port}",
                                  "--file-sd", str(file_sd), "--scrape-interval", "5s", "--scheduler", "simulator",
                                  "--scheduler-url", f"http://127.0.0.1:{sim_port}/slurm"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_http(f"http://127.0.0.1:{port}/-/ready", timeout=120)
        deadline = time.monotonic() + 120
        while True:  # every GPU scraped and jobs placed, then half a minute more of history
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            connection.request("GET", "/api/overview")
            body = json.loads(connection.getresponse().read())
            connection.close()
            scraped = sum(v is not None for row in body["heatmap"]["z"] for v in row)
            if scraped == 1120 and body["kpis"]["jobs_running"]:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"overview shows {scraped} scraped GPUs after 120 s")
            time.sleep(1)
        time.sleep(30)
        latencies, size = timed_gets(port, "/api/overview", repeats)
        _, plain = timed_gets(port, "/api/overview", 1, gzip=False)
        print(f"overview, 1,120 GPUs (140 nodes), range 1h: {summary_ms(latencies)}; "
              f"payload {size:,} B gzip / {plain:,} B plain")
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        connection.request("GET", "/api/jobs?state=RUNNING")
        jobs = json.loads(connection.getresponse().read())["jobs"]
        connection.close()
        biggest = max(jobs, key=lambda j: j["gpus"])
        latencies, size = timed_gets(port, f"/api/jobs/{biggest['job_id']}", repeats)
        _, plain = timed_gets(port, f"/api/jobs/{biggest['job_id']}", 1, gzip=False)
        print(f"job page, job {biggest['job_id']} with {biggest['gpus']} GPUs on {len(biggest['nodes'])} nodes, "
              f"range 1h: {summary_ms(latencies)}; payload {size:,} B gzip / {plain:,} B plain")
        latencies, size = timed_gets(port, "/api/alerts-view", repeats)
        print(f"alerts view: {summary_ms(latencies)}; payload {size:,} B gzip")
    finally:
        for proc in (serve, sim):
            if proc is not None:
                proc.terminate()
                proc.wait(30)


def generated_store(nodes: int, minutes: float, interval: float, seed: int = 1):
    """A store holding what the overview reads for ``nodes`` nodes: per GPU the exporter's gauges
    (utilisation, memory, temperature, power, presence, row remapping) and its job mapping, per
    node ``up`` with a rack, a few XID counters, and the scheduler's job and node-flag series."""
    from tsdb.store import Store

    rng = random.Random(seed)
    store = Store(retention_s=minutes * 60 + 3600)
    names = [f"gpu-{i + 1:05d}" for i in range(nodes)]
    # Jobs of 1 to 64 whole nodes tile 90% of the fleet; the rest is free.
    job_of: dict[str, str] = {}
    jobs: list[tuple[str, int]] = []
    i = 0
    while i < int(nodes * 0.9):
        size = min(rng.choice((1, 1, 2, 4, 8, 16, 64)), int(nodes * 0.9) - i)
        job_id = str(100000 + len(jobs))
        jobs.append((job_id, size))
        for name in names[i:i + size]:
            job_of[name] = job_id
        i += size
    gauges = ("gpu_utilization_ratio", "gpu_memory_used_bytes", "gpu_temperature_celsius", "gpu_power_watts",
              "gpu_up", "gpu_remapped_rows_pending", "gpu_remapped_rows_failure")
    xid_gpus = {(rng.randrange(nodes), rng.randrange(GPUS_PER_NODE)) for _ in range(16)}
    per_node: list[tuple[str, list, tuple]] = []
    for n, name in enumerate(names):
        base = (("instance", name), ("job", "clusterwatch"), ("rack", f"rack-{n // NODES_PER_RACK + 1:03d}"))
        series = []
        for g in range(GPUS_PER_NODE):
            gl = (("gpu", str(g)), ("uuid", f"GPU-{n:08x}-{g:04x}"))
            for metric in gauges:
                series.append((metric, tuple(sorted((("__name__", metric),) + base + gl))))
            if name in job_of:
                series.append(("gpu_job_info", tuple(sorted((("__name__", "gpu_job_info"), ("job_id", job_of[name]))
                                                            + base + gl))))
            if (n, g) in xid_gpus:
                series.append(("gpu_xid_errors_total", tuple(sorted((("__name__", "gpu_xid_errors_total"),
                                                                     ("xid", "79"), ("action", "reboot")) + base + gl))))
        up = tuple(sorted((("__name__", "up"),) + base))
        per_node.append((name, series, up))
    sched = [(tuple(sorted((("__name__", "slurm_job_info"), ("job_id", j), ("state", "RUNNING"), ("user", "u"),
                            ("partition", "gpu")))), 1.0) for j, _ in jobs]
    sched += [(tuple(sorted((("__name__", "slurm_job_info"), ("job_id", str(900000 + k)), ("state", "PENDING"),
                             ("user", "u"), ("partition", "gpu")))), 1.0) for k in range(200)]
    sched += [(tuple(sorted((("__name__", "slurm_node_flag"), ("flag", "DRAIN"), ("node", names[k])))), 1.0)
              for k in range(0, nodes, 997)]
    busy = {name: rng.uniform(0.3, 0.99) for name in job_of}
    start = time.time() - minutes * 60
    steps = int(minutes * 60 // interval)
    for step in range(steps):
        ts = int((start + step * interval) * 1000)
        for name, series, up in per_node:
            level = busy.get(name, 0.0)
            samples = [(up, 1.0)]
            for metric, labels in series:
                if metric == "gpu_utilization_ratio":
                    value = max(0.0, min(1.0, level + rng.uniform(-0.05, 0.05))) if level else 0.0
                elif metric == "gpu_memory_used_bytes":
                    value = 60e9 * level
                elif metric == "gpu_temperature_celsius":
                    value = 35 + 40 * level
                elif metric == "gpu_power_watts":
                    value = 90 + 600 * level
                elif metric in ("gpu_up", "gpu_job_info"):
                    value = 1.0
                elif metric == "gpu_xid_errors_total":
                    value = 1.0 + step // 20
                else:
                    value = 0.0
                samples.append((labels, value))
            store.append_scrape(name, ts, samples)
        store.append_scrape("scheduler", ts, sched)
    return store, len(jobs), (start + (steps - 1) * interval)


def big_fleet(nodes: int, minutes: float, interval: float, repeats: int) -> None:
    from fastapi.testclient import TestClient

    from cwkernel.server import build_app
    from dashboard.component import dashboard_component
    from dashboard.context import DashboardContext
    from tsdb.client import LocalQueryClient
    from tsdb.promql.engine import Engine

    started = time.perf_counter()
    store, jobs, last = generated_store(nodes, minutes, interval)
    print(f"generated {nodes:,} nodes x {GPUS_PER_NODE} GPUs, {jobs:,} jobs, {minutes:g} min at {interval:g} s "
          f"in {time.perf_counter() - started:.0f} s")
    engine = Engine(store)
    app = build_app([dashboard_component(DashboardContext(LocalQueryClient(engine)))])
    # At the last generated sample: "now" drifts past the data while generating and measuring.
    path = f"/api/overview?range={minutes:g}m&end={last:.3f}"
    with TestClient(app) as client:
        # First as a server whose recording rules have not run (the overview computes those facts
        # itself), then after one evaluation of the groups it reads, as `clusterwatch serve` does
        # every interval; their cost is printed, since it moves there from the page.
        computed = overview_latencies(client, path, nodes, repeats, "rules not evaluated")
        evaluate_dashboard_rules(store, last)
        recorded = overview_latencies(client, path, nodes, repeats, "rules evaluated")
        assert recorded == computed, "the recorded series changed the overview's numbers"


def evaluate_dashboard_rules(store, at: float) -> None:
    """Every group the overview reads recorded, once, in the order they feed each other
    (bench/recorded.py); each group's time printed."""
    from bench.recorded import record_once

    for name, interval, seconds in record_once(store, at):
        print(f"rule group {name} (every {interval or 15:g} s): {seconds * 1e3:.0f} ms per evaluation", flush=True)


def overview_latencies(client, path: str, nodes: int, repeats: int, label: str) -> dict:
    """The first request (caches cold) on its own line, then ``repeats`` more."""
    first = time.perf_counter()
    client.get(path, headers={"Accept-Encoding": "gzip"}).raise_for_status()
    first = time.perf_counter() - first
    latencies, size = [], 0
    for _ in range(repeats):
        begin = time.perf_counter()
        response = client.get(path, headers={"Accept-Encoding": "gzip"})
        latencies.append(time.perf_counter() - begin)
        response.raise_for_status()
        size = int(response.headers.get("content-length", len(response.content)))
    body = client.get(path, headers={"Accept-Encoding": "identity"})
    kpis = body.json()["kpis"]
    print(f"overview, {kpis['gpus_total']:,} GPUs ({nodes:,} nodes), {label}: {summary_ms(latencies)}, "
          f"max {max(latencies) * 1e3:.0f} ms (first request {first * 1e3:.0f} ms); payload {size:,} B gzip "
          f"({response.headers.get('content-encoding', 'identity')}) / {len(body.content):,} B plain")
    assert kpis["gpus_total"] == nodes * GPUS_PER_NODE
    return kpis


JOB_METRICS = ("gpu_utilization_ratio", "gpu_memory_used_bytes", "gpu_power_watts", "gpu_memory_total_bytes",
               "gpu_processes", "gpu_up", "gpu_temperature_celsius", "gpu_sm_clock_hertz", "gpu_job_info")
JOB_ID = "424242"


def job_store(nodes: int, hours: float, interval: float, all_gpu_series: bool = False, seed: int = 1):
    """A store holding 24 h (``hours``) of ``nodes`` simulated nodes at ``interval``: per GPU the
    simulator's exposition (its labels and levels) for the series the job page reads (or every
    ``gpu_*`` series with ``all_gpu_series``), per node ``up``, and the scheduler's series for one
    job holding every GPU for the whole range (``slurm_job_info``, ``slurm_job_gpu_info``, start
    time, limit, GPU count), as ``serve`` writes them. Utilisation moves around each GPU's level
    with checkpoint dips every 2 h; two GPUs are stragglers (a third of the others' level).
    Returns the store, the scheduler snapshot serve's adapter would hold, and the last timestamp."""
    import numpy as np

    from scheduler.model import Job, SchedulerSnapshot, SourceInfo
    from simulator.fleet import Fleet
    from tsdb.exposition import parse_exposition
    from tsdb.store import Store, TimeColumn

    t0 = 1_700_000_000.0
    steps = int(hours * 3600 // interval)
    stamps = [int((t0 + i * interval) * 1000) for i in range(steps)]
    last = t0 + (steps - 1) * interval
    start = t0 - 60.0  # the job started just before the range: the page covers all 24 h
    fleet = Fleet(nodes=nodes, seed=seed, speed=0, start=t0)
    try:
        names = fleet.node_names()
        exposition = {n: parse_exposition(fleet.render_metrics(n).decode()).samples for n in names}
    finally:
        fleet.stop()
    rng = np.random.default_rng(seed)
    t = np.arange(steps) * interval
    dips = ((t % 7200) < 300).astype(float)  # a 5-minute checkpoint every 2 hours
    slow = {(names[3], 5), (names[40 % len(names)], 2)}
    store = Store(retention_s=1e9)
    loaded = 0
    for node in names:
        column = TimeColumn()
        column.ts.extend(stamps)
        rows: dict[tuple, np.ndarray] = {}
        for name, labels, value, _ in exposition[node]:
            wanted = name.startswith("gpu_") if all_gpu_series else name in JOB_METRICS
            if not wanted:
                continue
            lab = dict(labels)
            key = (node, int(lab["gpu"])) if "gpu" in lab else None
            level = 0.55 + 0.4 * rng.random() if key not in slow else 0.25
            if name == "gpu_utilization_ratio":
                series = np.clip(level + rng.normal(0, 0.04, steps) - 0.9 * level * dips, 0, 1)
            elif name == "gpu_memory_used_bytes":
                series = np.full(steps, 30e9 + 40e9 * level) + rng.normal(0, 2e8, steps).cumsum().clip(-5e9, 5e9)
            elif name == "gpu_power_watts":
                series = 90 + 600 * np.clip(level + rng.normal(0, 0.05, steps) - 0.9 * level * dips, 0, 1)
            elif name == "gpu_processes":
                series = np.ones(steps)
            elif name == "gpu_job_info":
                lab["job_id"] = JOB_ID
                series = np.ones(steps)
            elif name.endswith("_total"):
                series = value + np.arange(steps) * (interval if "error" not in name else 0.0)
            else:
                series = np.full(steps, value)
            rows[tuple(sorted({**lab, "__name__": name, "instance": node, "job": "clusterwatch"}.items()))] = series
        rows[(("__name__", "up"), ("instance", node), ("job", "clusterwatch"))] = np.ones(steps)
        for labels, series in rows.items():
            store.append_series(labels, stamps, series.tolist(), column)
            loaded += 1
    gpu_indices = {n: tuple(range(GPUS_PER_NODE)) for n in names}
    job = Job(job_id=JOB_ID, name="llm-pretrain", user="alice", account="research", partition="gpu", state="RUNNING",
              nodes=tuple(names), gpus_per_node={n: GPUS_PER_NODE for n in names}, gpu_indices=gpu_indices,
              gpus=len(names) * GPUS_PER_NODE, submit_time=start - 600, start_time=start,
              time_limit_seconds=48 * 3600.0)
    column = TimeColumn()
    column.ts.extend(stamps)
    sched = {(("__name__", "slurm_job_info"), ("account", "research"), ("job_id", JOB_ID), ("name", "llm-pretrain"),
              ("partition", "gpu"), ("state", "RUNNING"), ("user", "alice")): 1.0,
             (("__name__", "slurm_job_start_time_seconds"), ("job_id", JOB_ID)): start,
             (("__name__", "slurm_job_time_limit_seconds"), ("job_id", JOB_ID)): 48 * 3600.0,
             (("__name__", "slurm_job_gpus"), ("job_id", JOB_ID)): float(job.gpus)}
    for n in names:
        for g in range(GPUS_PER_NODE):
            sched[(("__name__", "slurm_job_gpu_info"), ("gpu", str(g)), ("instance", n), ("job_id", JOB_ID))] = 1.0
    for labels, value in sched.items():
        store.append_series(labels, stamps, [value] * steps, column)
        loaded += 1
    snapshot = SchedulerSnapshot(jobs=(job,), nodes=(), taken_at=last, source=SourceInfo("bench"))
    return store, snapshot, last, loaded


class _FixedScheduler:
    def __init__(self, snapshot) -> None:
        self._snapshot = snapshot

    def snapshot(self):
        return self._snapshot


def job_page(nodes: int, hours: float, interval: float, repeats: int, all_gpu_series: bool) -> None:
    """The job page of one job on every GPU of ``nodes`` nodes over ``hours``, server time in
    process (FastAPI's TestClient over the dashboard's routers), with the scheduler adapter's
    snapshot (serve's default) and without one (job metadata from the scheduler's series, as
    against Prometheus)."""
    from fastapi.testclient import TestClient

    from cwkernel.server import build_app
    from dashboard.component import dashboard_component
    from dashboard.context import DashboardContext
    from tsdb.client import LocalQueryClient
    from tsdb.promql.engine import Engine

    started = time.perf_counter()
    store, snapshot, last, loaded = job_store(nodes, hours, interval, all_gpu_series)
    print(f"job page store: {nodes} nodes x {GPUS_PER_NODE} GPUs, {loaded:,} series x {int(hours * 3600 // interval):,} "
          f"samples ({hours:g} h at {interval:g} s) loaded in {time.perf_counter() - started:.0f} s; {store.stats()}")
    client = LocalQueryClient(Engine(store))
    for mode, scheduler in (("adapter snapshot", _FixedScheduler(snapshot)), ("no adapter", None)):
        ctx = DashboardContext(client, scheduler=scheduler, clock=lambda: last + 1)
        app = build_app([dashboard_component(ctx)])
        with TestClient(app) as http_client:
            for label, path in (("/api/jobs/{id}", f"/api/jobs/{JOB_ID}?range={hours:g}h"),
                                ("/jobs/{id} (HTML)", f"/jobs/{JOB_ID}?range={hours:g}h")):
                latencies, cpu, size = [], [], 0
                http_client.get(path, headers={"Accept-Encoding": "gzip"})  # warm: selections cached
                for _ in range(repeats):
                    begin, begin_cpu = time.perf_counter(), time.process_time()
                    response = http_client.get(path, headers={"Accept-Encoding": "gzip"})
                    latencies.append(time.perf_counter() - begin)
                    cpu.append(time.process_time() - begin_cpu)
                    response.raise_for_status()
                    size = int(response.headers.get("content-length", len(response.content)))
                plain = http_client.get(path, headers={"Accept-Encoding": "identity"})
                latencies.sort()
                # CPU time (this process's, all threads) is the figure a loaded machine cannot
                # inflate: wall time counts the time other processes held the cores.
                print(f"job page {label}, {mode}, {snapshot.jobs[0].gpus} GPUs, range {hours:g}h: "
                      f"p50 {percentile(latencies, 50) * 1e3:.0f} ms, p90 {percentile(latencies, 90) * 1e3:.0f} ms, "
                      f"max {latencies[-1] * 1e3:.0f} ms (n={repeats}); CPU p50 {percentile(cpu, 50) * 1e3:.0f} ms; "
                      f"payload {size:,} B gzip / {len(plain.content):,} B plain")
                if label.startswith("/api"):
                    body = plain.json()
                    assert len(body["gpus"]) == snapshot.jobs[0].gpus, len(body["gpus"])
                    print(f"  {len(body['timestamps'])} points per series, step "
                          f"{(body['timestamps'][1] - body['timestamps'][0]) if len(body['timestamps']) > 1 else 0:g} s, "
                          f"stragglers {[(g['node'], g['gpu']) for g in body['gpus'] if g['straggler']]}, "
                          f"efficiency {body['efficiency']['gpu_efficiency']}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--big-repeats", type=int, default=2)
    parser.add_argument("--big-nodes", type=int, default=16384)
    parser.add_argument("--big-minutes", type=float, default=15.0)
    parser.add_argument("--big-interval", type=float, default=30.0)
    parser.add_argument("--job-nodes", type=int, default=64)
    parser.add_argument("--job-hours", type=float, default=24.0)
    parser.add_argument("--job-interval", type=float, default=15.0)
    parser.add_argument("--job-repeats", type=int, default=10)
    parser.add_argument("--job-all-gpu-series", action="store_true",
                        help="load every gpu_* series of the job's nodes, not only those the page reads")
    parser.add_argument("--only-job", action="store_true", help="only the 512-GPU job page case")
    parser.add_argument("--skip-job", action="store_true")
    parser.add_argument("--skip-small", action="store_true")
    parser.add_argument("--skip-big", action="store_true")
    args = parser.parse_args()
    if args.only_job:
        args.skip_small = args.skip_big = True
    if not args.skip_job:
        job_page(args.job_nodes, args.job_hours, args.job_interval, args.job_repeats, args.job_all_gpu_series)
    if not args.skip_small:
        with tempfile.TemporaryDirectory() as work:
            small_fleet(args.repeats, Path(work))
    if not args.skip_big:
        big_fleet(args.big_nodes, args.big_minutes, args.big_interval, args.big_repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
