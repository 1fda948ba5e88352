"""The production path at 16,384 nodes / 131,072 GPUs: the simulator's exposition loaded into
VictoriaMetrics with an hour of history, the exported rule pack evaluated by vmalert, and
``clusterwatch serve --prometheus-url`` answering the overview, jobs and job pages over it.

    .venv/bin/python bench/bench_scale.py [--nodes 16384] [--history 60m] [--interval 60s]

What is loaded (each figure is printed):
- Every node's own exposition, rendered once by the simulator (``Fleet.render_metrics``: the
  exporter's real code over the simulated NVML and host), relabelled as the shipped scrape config
  would (``instance`` = node name, ``job="gpu-nodes"``, ``rack``), plus ``up``. Only the families
  that the rule pack or the overview, jobs and job pages read are kept (see ``keep_family``):
  per-CPU, disk, network and most per-port counters, which only the node page of one node reads,
  are left out to fit this shared 23 GB machine.
- The scheduler's metrics (``slurm_*``, scheduler/metrics.py) over the simulator's Slurm face,
  as serve's /metrics exposes them (scraped with honor_labels).
- History: ``--history`` back from now plus ``--ahead`` into the future at ``--interval``, so
  the measurements, which take minutes, see a fleet that is still reporting (there is no live
  scrape; the engine carries no ingest load while it is measured). Gauges that move in a real
  fleet (utilisation, power, temperatures, SM clock) jitter around each GPU's simulated value;
  counters and the rest stay at the rendered value (a healthy fleet's error counters are flat).
Load goes through VictoriaMetrics' JSON-lines import (``/api/v1/import``), one line per series.

Then vmalert evaluates ``clusterwatch rules export`` output against it (recording rules and
ALERTS written back by remote write), as a deployment runs it: the bench waits until every group
has evaluated once (so the dashboard's and the jobs' recorded series exist), lets vmalert run
alone for ``--rules-seconds`` and compares its own ``vmalert_iteration_duration_seconds`` per
group with the group's interval, then measures the overview, jobs and job pages through
``clusterwatch serve --prometheus-url`` WHILE vmalert keeps evaluating, and the groups again over
that phase (``--pages-idle`` adds the pages with vmalert stopped). It ends with the issue's goals,
each met or not. Dashboard figures are client times of sequential GETs over one keep-alive
loopback connection (server time plus well under a millisecond of transport), with payload as
sent with ``Accept-Encoding: gzip`` and without.
"""
from __future__ import annotations

import argparse
import gzip
import http.client
import json
import queue
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import free_port, percentile, rss_bytes, wait_http  # noqa: E402
from cwkernel.durations import parse_duration  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
# Read only by the node page (one node at a time), or per port/link/reason detail the rules do
# not select: left out at this size.
DROPPED_FAMILIES = {"node_cpu_seconds_total", "gpu_clock_event_active", "gpu_remapped_rows"}
# The rule pack selects these reasons of gpu_clock_event_seconds_total; the other 5 reasons are left out.
CLOCK_EVENT_REASONS = {"hw_thermal_slowdown", "sw_thermal_slowdown", "hw_slowdown", "hw_power_brake_slowdown"}
# Gauges that move from scrape to scrape: (absolute jitter, scale of the value, lower, upper bound).
JITTER = {"gpu_utilization_ratio": (0.03, 1.0, 0.0, 1.0), "gpu_power_watts": (0.03, None, 0.0, None),
          "gpu_temperature_celsius": (1.0, 1.0, 0.0, None), "gpu_memory_temperature_celsius": (1.0, 1.0, 0.0, None),
          "gpu_sm_clock_hertz": (0.01, None, 0.0, None)}
# Gauges whose value is the time of the sample (a constant would read as an exporter stuck since the load).
FOLLOW_TIME = {"clusterwatch_exporter_last_collection_timestamp_seconds"}
LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
SERVER_INSTANCE = "clusterwatch:9400"  # the target label Prometheus adds to serve's own series


def read_families() -> set[str]:
    """Metric names that appear in the rule pack or the dashboard's code (its queries)."""
    text = "".join(p.read_text() for p in (ROOT / "alerts" / "rules").glob("*.yml"))
    text += "".join(p.read_text() for p in (ROOT / "dashboard").rglob("*.py"))
    return set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", text))


def keep_family(name: str, labels: dict[str, str], read: set[str]) -> bool:
    if name not in read or name in DROPPED_FAMILIES:
        return False
    if name == "gpu_clock_event_seconds_total":
        return labels.get("reason") in CLOCK_EVENT_REASONS
    return True


def parse_exposition(text: str, read: set[str]):
    for line in text.splitlines():
        if not line or line[0] == "#":
            continue
        match = LINE.match(line)
        if match is None:
            continue
        name, body, value = match.groups()
        if name not in read:
            continue
        labels = {k: v.replace('\\"', '"').replace("\\\\", "\\") for k, v in LABEL.findall(body or "")}
        if keep_family(name, labels, read):
            yield name, labels, float(value)


class Loader:
    """JSON lines into VictoriaMetrics' /api/v1/import, posted from a thread while the next chunk
    is built (the engine parses one chunk while Python builds the next)."""

    def __init__(self, port: int, timestamps: list[int], seed: int) -> None:
        self.port = port
        self.steps = len(timestamps)
        self.timestamps = timestamps
        self.ts_json = "[" + ",".join(map(str, timestamps)) + "]"
        self.rng = random.Random(seed)
        self.offsets = [[self.rng.uniform(-1, 1) for _ in range(self.steps)] for _ in range(97)]
        self.constant: dict[float, str] = {}
        self.lines: list[str] = []
        self.series = self.samples = self.bytes = 0
        self.queue: queue.Queue = queue.Queue(maxsize=2)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._post_loop, daemon=True)
        self.thread.start()

    def add(self, name: str, labels: dict[str, str], value: float) -> None:
        jitter = JITTER.get(name)
        if name in FOLLOW_TIME:
            values = "[" + ",".join(f"{t / 1000:.0f}" for t in self.timestamps) + "]"
        elif jitter is None or value == 0:
            values = self.constant.get(value)
            if values is None:
                values = self.constant[value] = "[" + ",".join([repr(value)] * self.steps) + "]"
        else:
            amplitude, scale, low, high = jitter
            amplitude *= value if scale is None else scale
            offsets = self.offsets[self.rng.randrange(len(self.offsets))]
            points = []
            for offset in offsets:
                v = value + amplitude * offset
                v = max(low, v) if low is not None else v
                v = min(high, v) if high is not None else v
                points.append(f"{v:.4g}")
            values = "[" + ",".join(points) + "]"
        self.lines.append(f'{{"metric":{json.dumps({"__name__": name, **labels})},'
                          f'"values":{values},"timestamps":{self.ts_json}}}')
        self.series += 1
        self.samples += self.steps
        if len(self.lines) >= 8192:
            self.flush()

    def flush(self) -> None:
        if self.lines:
            body = ("\n".join(self.lines) + "\n").encode()
            self.bytes += len(body)
            self.lines = []
            self.queue.put(body)
        if self.error:
            raise RuntimeError(f"import failed: {self.error}")

    def close(self) -> None:
        self.flush()
        self.queue.put(None)
        self.thread.join()
        if self.error:
            raise RuntimeError(f"import failed: {self.error}")

    def _post_loop(self) -> None:
        while (body := self.queue.get()) is not None:
            if self.error:
                continue
            try:
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
                connection.request("POST", "/api/v1/import", body=body)
                response = connection.getresponse()
                answer = response.read()
                connection.close()
                if response.status >= 300:
                    raise RuntimeError(f"HTTP {response.status}: {answer[:300]!r}")
            except BaseException as exc:  # noqa: BLE001 - reported by the producer
                self.error = exc


def scheduler_exposition(fleet) -> str:
    """serve's slurm_* series for the simulated cluster (the scheduler adapter's parsers and
    collector over the simulator's squeue/sinfo JSON)."""
    from prometheus_client import CollectorRegistry, generate_latest

    from scheduler.metrics import SchedulerCollector
    from scheduler.model import SchedulerSnapshot
    from scheduler.parsers.document import source_info
    from scheduler.parsers.jobs import parse_jobs
    from scheduler.parsers.nodes import parse_nodes
    from scheduler.poller import PollStatus

    squeue, sinfo = fleet.squeue(), fleet.sinfo()
    snapshot = SchedulerSnapshot(tuple(parse_jobs(squeue)), tuple(parse_nodes(sinfo)), time.time(),
                        source_info(squeue, "simulator"))
    registry = CollectorRegistry()
    registry.register(SchedulerCollector(lambda: PollStatus(snapshot), "simulator"))
    return generate_latest(registry).decode()


def load(args, vm_port: int) -> dict:
    from simulator.fleet import Fleet

    started = time.perf_counter()
    now = time.time()
    interval = parse_duration(args.interval)
    history, ahead = parse_duration(args.history), parse_duration(args.ahead)
    fleet = Fleet(nodes=args.nodes, seed=args.seed, speed=0, start=now - 120)
    fleet.advance(120)  # every node's GPUs settle into their jobs' behaviour
    built = time.perf_counter() - started
    first = int((now - history) // interval * interval)
    timestamps = [int((first + i * interval) * 1000) for i in range(int((history + ahead) // interval) + 1)]
    loader = Loader(vm_port, timestamps, args.seed)
    read = read_families()
    per_family: dict[str, int] = {}
    closer = ThreadPoolExecutor(max_workers=256)
    for name in fleet.node_names():
        rack = fleet.nodes[name].spec.rack
        target = {"instance": name, "job": "gpu-nodes", "rack": rack}
        loader.add("up", target, 1.0)
        for metric, labels, value in parse_exposition(fleet.render_metrics(name).decode(), read):
            loader.add(metric, {**labels, **target}, value)
            per_family[metric] = per_family.get(metric, 0) + 1
        # Its exporter's XID thread: 16,384 of them would swamp the machine. Closing waits for the
        # thread's 2 s poll, so closes run in a pool while the next nodes render.
        closer.submit(fleet.nodes[name].close)
    for metric, labels, value in parse_exposition(scheduler_exposition(fleet), read | {"slurm_job_info"}):
        target = {"job": "clusterwatch", "instance": labels.get("instance", SERVER_INSTANCE)}
        loader.add(metric, {**labels, **target}, value)
        per_family[metric] = per_family.get(metric, 0) + 1
    loader.close()
    closer.shutdown(wait=True)
    urllib.request.urlopen(f"http://127.0.0.1:{vm_port}/internal/force_flush", timeout=300).read()
    jobs = [j for j in fleet.scheduler.jobs.values() if j.state == "RUNNING"]
    biggest = max(jobs, key=lambda j: j.total_gpus)
    fleet.stop()
    return {"seconds": time.perf_counter() - started, "fleet_seconds": built, "series": loader.series,
            "samples": loader.samples, "bytes": loader.bytes, "steps": len(timestamps), "families": per_family,
            "first": timestamps[0] / 1000, "last": timestamps[-1] / 1000, "biggest_job": str(biggest.job_id),
            "biggest_gpus": biggest.total_gpus, "running_jobs": len(jobs)}


def get(port: int, path: str, gzip_ok: bool, connection: http.client.HTTPConnection | None = None):
    own = connection is None
    connection = connection or http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    headers = {"Accept": "application/json", "Accept-Encoding": "gzip" if gzip_ok else "identity"}
    begin = time.perf_counter()
    connection.request("GET", path, headers=headers)
    response = connection.getresponse()
    body = response.read()
    elapsed = time.perf_counter() - begin
    if own:
        connection.close()
    if response.status != 200:
        raise RuntimeError(f"GET {path}: HTTP {response.status}: {body[:300]!r}")
    return elapsed, body, response.getheader("Content-Encoding", "identity")


def start_serve(port: int, vm_port: int, work: Path) -> subprocess.Popen:
    serve = subprocess.Popen([sys.executable, "-m", "clusterwatch", "serve", "--listen", f"127.0.0.1:{port}",
                              "--prometheus-url", f"http://127.0.0.1:{vm_port}"], cwd=ROOT,
                             stdout=subprocess.DEVNULL, stderr=open(work / "serve.log", "a"))
    wait_http(f"http://127.0.0.1:{port}/-/ready", timeout=120)
    return serve


def measure(port: int, label: str, path: str, repeats: int) -> dict:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    get(port, path, True, connection)  # warm: first request pays imports and connection set-up
    times, sent, encoding = [], 0, "identity"
    for _ in range(repeats):
        elapsed, body, encoding = get(port, path, True, connection)
        times.append(elapsed)
        sent = len(body)
    connection.close()
    _, plain, _ = get(port, path, False)
    print(f"{label}: p50 {percentile(times, 50) * 1e3:.0f} ms, p99 {percentile(times, 99) * 1e3:.0f} ms, "
          f"max {max(times) * 1e3:.0f} ms (n={repeats}); payload {sent:,} B {encoding} / {len(plain):,} B identity",
          flush=True)
    body = json.loads(gzip.decompress(plain) if plain[:2] == b"\x1f\x8b" else plain)
    return {"p50": percentile(times, 50), "p99": percentile(times, 99), "gzip": sent, "identity": len(plain),
            "body": body}


def overview_breakdown(vm_port: int) -> None:
    """Where the overview's time goes: the view run in this process over the same engine, each
    query timed (engine, transfer and JSON parsing into series) and the rest (view model, JSON)."""
    from dashboard.context import DashboardContext
    from dashboard.params import TimeRange
    from dashboard.views.overview import overview
    from tsdb.client import HTTPQueryClient

    timings: list[tuple[float, int, str]] = []

    class Timed(HTTPQueryClient):
        def instant(self, query, at=None):
            begin = time.perf_counter()
            result = super().instant(query, at)
            timings.append((time.perf_counter() - begin, len(result.series), query))
            return result

    client = Timed(f"http://127.0.0.1:{vm_port}", timeout=600)
    now = time.time()
    overview(DashboardContext(query=client), TimeRange(now - 3600, now))  # warm
    timings.clear()
    begin = time.perf_counter()
    model = overview(DashboardContext(query=client), TimeRange(now - 3600, now))
    total = time.perf_counter() - begin
    begin = time.perf_counter()
    model.model_dump_json()
    encode = time.perf_counter() - begin
    queried = sum(t for t, _, _ in timings)
    print(f"overview in process: {total * 1e3:.0f} ms; its {len(timings)} queries took {queried * 1e3:.0f} ms summed "
          f"(engine + transfer + parsing; more than the wall time when they run in parallel); JSON encoding "
          f"{encode * 1e3:.0f} ms", flush=True)
    for elapsed, series, query in sorted(timings, reverse=True):
        print(f"  {elapsed * 1e3:6.0f} ms {series:8,} series  {query[:110]}", flush=True)
    client.close()


def vmalert_groups(port: int) -> dict[str, dict]:
    """Per group: iteration count, mean and max-quantile duration from vmalert's own /metrics."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30).read().decode()
    groups: dict[str, dict] = {}
    for line in text.splitlines():
        if not line.startswith("vmalert_iteration_duration_seconds"):
            continue
        match = LINE.match(line)
        if match is None:
            continue
        name, body, value = match.groups()
        labels = dict(LABEL.findall(body or ""))
        group = groups.setdefault(labels.get("group", "?"), {})
        if name.endswith("_sum"):
            group["sum"] = float(value)
        elif name.endswith("_count"):
            group["count"] = float(value)
        elif "quantile" in labels:
            group[f"q{labels['quantile']}"] = float(value)
    rules = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/rules", timeout=30).read())
    for group in rules["data"]["groups"]:
        entry = groups.setdefault(group["name"], {})
        entry["interval"] = float(group.get("interval", 0))
        entry["rules"] = len(group.get("rules", []))
        entry["last_error"] = next((r.get("lastError") for r in group.get("rules", []) if r.get("lastError")), "")
    return groups


def print_groups(title: str, groups: dict[str, dict], before: dict[str, dict] | None = None) -> None:
    print(title)
    for name, g in sorted(groups.items()):
        count, total = g.get("count", 0), g.get("sum", 0.0)
        if before and name in before:  # this phase only
            count -= before[name].get("count", 0)
            total -= before[name].get("sum", 0.0)
        mean = total / count if count else float("nan")
        worst = max((v for k, v in g.items() if k.startswith("q") and v == v), default=float("nan"))
        interval = g.get("interval", float("nan"))
        verdict = "no evaluation yet" if not count else "within" if worst <= interval else "OVER"
        print(f"  {name}: {g.get('rules', '?')} rules, {count:.0f} evaluations, mean {mean:.2f} s, "
              f"worst recent quantile {worst:.2f} s, interval {interval:g} s: {verdict}"
              + (f"; error: {g['last_error'][:200]}" if g.get("last_error") else ""), flush=True)


def alert_sink() -> ThreadingHTTPServer:
    """An Alertmanager stand-in that accepts vmalert's notifications and drops them (this vmalert
    has no -notifier.blackhole); notification routing is not what is measured here."""

    class Sink(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def stop(proc: subprocess.Popen | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def start_vmalert(vm_port: int, port: int, sink_port: int, work: Path) -> subprocess.Popen:
    """vmalert on ``clusterwatch rules export``'s pack (recording rules and ALERTS written back)."""
    rules = work / "rules"
    subprocess.run([sys.executable, "-m", "clusterwatch", "rules", "export", "--out", str(rules)], check=True,
                   cwd=ROOT, stdout=subprocess.DEVNULL)
    proc = subprocess.Popen(["vmalert", f"-rule={rules}/*.yml", f"-datasource.url=http://127.0.0.1:{vm_port}",
                             f"-remoteWrite.url=http://127.0.0.1:{vm_port}", f"-notifier.url=http://127.0.0.1:{sink_port}",
                             "-evaluationInterval=30s", f"-httpListenAddr=127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=open(work / "vmalert.log", "w"))
    wait_http(f"http://127.0.0.1:{port}/-/healthy", timeout=60)
    return proc


def wait_every_group(port: int, timeout: float) -> float:
    """Until every group has finished one evaluation (the dashboard's and jobs' series recorded once
    and written back): the pages are meant to be measured as a deployment runs them, over the
    recorded series. Returns the seconds waited."""
    begin = time.monotonic()
    while True:
        groups = vmalert_groups(port)
        if groups and all(g.get("count", 0) >= 1 for g in groups.values()):
            time.sleep(5)  # remote write flushes every second or so; the engine makes it searchable
            return time.monotonic() - begin
        if time.monotonic() - begin > timeout:
            waiting = [name for name, g in groups.items() if not g.get("count")]
            raise RuntimeError(f"vmalert groups not evaluated within {timeout:.0f} s: {waiting}")
        time.sleep(2)


def measure_pages(port: int, args, loaded: dict, phase: str) -> dict[str, dict]:
    gpus = args.nodes * 8
    results = {"overview": measure(port, f"[{phase}] overview, {gpus:,} GPUs, range 1h", "/api/overview",
                                   args.repeats)}
    print(f"  kpis: {json.dumps(results['overview']['body']['kpis'])}", flush=True)
    if args.only_overview:
        return results
    measure(port, f"[{phase}] overview coloured by temperature", "/api/overview?color=temperature",
            max(3, args.repeats // 4))
    results["jobs"] = measure(port, f"[{phase}] jobs (RUNNING)", "/api/jobs?state=RUNNING", max(5, args.repeats // 2))
    print(f"  {len(results['jobs']['body'].get('jobs', [])):,} jobs listed", flush=True)
    results["job"] = measure(port, f"[{phase}] job {loaded['biggest_job']} ({loaded['biggest_gpus']} GPUs), range 1h",
                             f"/api/jobs/{loaded['biggest_job']}", max(5, args.repeats // 2))
    return results


def groups_within(groups: dict[str, dict], before: dict[str, dict] | None = None) -> tuple[int, int]:
    """(groups within their interval, groups evaluated) over a phase: the worst recent quantile of
    the iteration duration against the interval."""
    within = evaluated = 0
    for name, g in groups.items():
        count = g.get("count", 0) - (before or {}).get(name, {}).get("count", 0)
        if not count:
            continue
        evaluated += 1
        worst = max((v for k, v in g.items() if k.startswith("q") and v == v), default=float("inf"))
        within += worst <= g.get("interval", 0)
    return within, evaluated


def print_goals(pages: dict[str, dict], alone: tuple[int, int], beside_pages: tuple[int, int]) -> None:
    overview, jobs, job = pages.get("overview"), pages.get("jobs"), pages.get("job")
    rows = [("overview p50", overview and overview["p50"], 1.0, "s"),
            ("overview p99", overview and overview["p99"], 2.0, "s"),
            ("overview payload (gzip)", overview and overview["gzip"] / 1000, 300, "kB"),
            ("jobs list p50", jobs and jobs["p50"], 1.0, "s"),
            ("job page p50", job and job["p50"], 0.5, "s")]
    print("goals (pages measured while vmalert evaluates the pack):")
    for label, value, goal, unit in rows:
        if value is None:
            continue
        print(f"  {label}: {value:.3g} {unit} (goal <= {goal:g} {unit}): {'met' if value <= goal else 'NOT met'}")
    for label, (within, evaluated) in (("alone", alone), ("beside the pages", beside_pages)):
        print(f"  vmalert groups within their interval, {label}: {within} of {evaluated}: "
              f"{'met' if evaluated and within == evaluated else 'NOT met'}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=16384)
    parser.add_argument("--history", default="60m", help="history loaded before now")
    parser.add_argument("--ahead", default="20m", help="samples after now, so the fleet looks live while measured")
    parser.add_argument("--interval", default="60s", help="sample interval of the loaded history")
    parser.add_argument("--repeats", type=int, default=20, help="overview requests per phase (other pages: fewer)")
    parser.add_argument("--rules-seconds", type=float, default=150.0,
                        help="vmalert alone this long after every group evaluated once, before the pages")
    parser.add_argument("--pages-idle", action="store_true",
                        help="also measure the pages with vmalert stopped (the engine answering them alone)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--only-overview", action="store_true", help="measure the overview only")
    parser.add_argument("--keep", help="keep VictoriaMetrics' data in this directory (default: a temp dir, removed)")
    parser.add_argument("--reuse", action="store_true", help="with --keep: measure the data loaded there before")
    args = parser.parse_args()
    for binary in ("victoria-metrics", "vmalert"):
        if shutil.which(binary) is None:
            print(f"{binary} not installed", file=sys.stderr)
            return 2
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that the servers are stopped and the temp dir removed
    work = Path(tempfile.mkdtemp(prefix="cw-scale-"))
    vm = vmalert = serve = sink = None
    try:
        vm_port, vmalert_port, serve_port = free_port(), free_port(), free_port()
        vm = subprocess.Popen(["victoria-metrics", f"-httpListenAddr=127.0.0.1:{vm_port}",
                               f"-storageDataPath={args.keep or work / 'vm-data'}", "-retentionPeriod=7d",
                               "-search.latencyOffset=0s", "-search.disableCache", "-memory.allowedPercent=30",
                               "-search.maxUniqueTimeseries=2000000",
                               "-search.maxQueryDuration=300s"],
                              stdout=subprocess.DEVNULL, stderr=open(work / "vm.log", "w"))
        wait_http(f"http://127.0.0.1:{vm_port}/health", timeout=60)
        loaded = load_or_reuse(args, vm_port)
        count = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{vm_port}/api/v1/series/count",
                                                  timeout=300).read())["data"][0]
        print(f"loaded {loaded['series']:,} series x {loaded['steps']} samples = {loaded['samples']:,} samples "
              f"({loaded['bytes'] / 2**30:.2f} GiB of JSON lines) in {loaded['seconds']:.0f} s "
              f"(simulator build {loaded['fleet_seconds']:.0f} s); VictoriaMetrics reports {count:,} series; "
              f"RSS {rss_bytes(vm.pid) / 2**30:.2f} GiB; {loaded['running_jobs']:,} running jobs", flush=True)
        families = sorted(loaded["families"].items(), key=lambda kv: -kv[1])
        print("  series per family: " + ", ".join(f"{k} {v:,}" for k, v in families), flush=True)

        sink = alert_sink()
        vmalert = start_vmalert(vm_port, vmalert_port, sink.server_port, work)
        waited = wait_every_group(vmalert_port, timeout=900)
        print(f"every rule group evaluated once after {waited:.0f} s", flush=True)
        start = vmalert_groups(vmalert_port)
        time.sleep(args.rules_seconds)
        alone = vmalert_groups(vmalert_port)
        print_groups(f"vmalert alone for {args.rules_seconds:.0f} s (iteration duration per group vs interval):",
                     alone, start)
        print(f"  VictoriaMetrics RSS {rss_bytes(vm.pid) / 2**30:.2f} GiB, vmalert RSS "
              f"{rss_bytes(vmalert.pid) / 2**20:.0f} MiB", flush=True)

        serve = start_serve(serve_port, vm_port, work)
        pages = measure_pages(serve_port, args, loaded, "vmalert running")
        beside = vmalert_groups(vmalert_port)
        print_groups("vmalert while the pages were measured:", beside, alone)
        print(f"  VictoriaMetrics RSS {rss_bytes(vm.pid) / 2**30:.2f} GiB, serve RSS "
              f"{rss_bytes(serve.pid) / 2**20:.0f} MiB", flush=True)
        if args.pages_idle:
            stop(vmalert)
            vmalert = None
            measure_pages(serve_port, args, loaded, "engine idle")
        overview_breakdown(vm_port)
        print_goals(pages, groups_within(alone, start), groups_within(beside, alone))
        gpus_total = pages["overview"]["body"]["kpis"]["gpus_total"]
        if gpus_total != args.nodes * 8:
            print(f"overview counts {gpus_total:,} GPUs, expected {args.nodes * 8:,}", file=sys.stderr)
            return 1
        return 0
    except BaseException:
        for log in ("vm.log", "vmalert.log", "serve.log"):
            if (work / log).exists():
                print(f"--- {log} (tail)", file=sys.stderr)
                print("\n".join((work / log).read_text(errors="replace").splitlines()[-15:]), file=sys.stderr)
        raise
    finally:
        for proc in (serve, vmalert, vm):
            stop(proc)
        if sink is not None:
            sink.shutdown()
        shutil.rmtree(work, ignore_errors=True)


def load_or_reuse(args, vm_port: int) -> dict:
    """Load the fleet, or (``--keep DIR --reuse``) take what an earlier run loaded there, warning
    when the rules or pages now name a family that load left out."""
    meta = Path(args.keep) / "bench_scale_load.json" if args.keep else None
    if args.reuse and meta is not None and meta.exists():
        loaded = json.loads(meta.read_text())
        print(f"reusing the data loaded at {time.ctime(loaded['loaded_at'])} in {args.keep} "
              f"(samples until {time.ctime(loaded['last'])})", flush=True)
        missing = sorted(n for n in read_families() - set(loaded.get("read", [])) if n.startswith(("gpu_", "node_", "slurm_")))
        if missing:
            print(f"  WARNING: names read now that were not read at load (load again if they are metrics): "
                  f"{', '.join(missing[:20])}", flush=True)
        return loaded
    print(f"loading {args.nodes:,} nodes ({args.nodes * 8:,} GPUs), history {args.history} + {args.ahead} "
          f"ahead at {args.interval} ...", flush=True)
    loaded = load(args, vm_port)
    loaded["loaded_at"] = time.time()
    loaded["read"] = sorted(read_families())
    if meta is not None:
        meta.write_text(json.dumps(loaded))
    return loaded


if __name__ == "__main__":
    sys.exit(main())
