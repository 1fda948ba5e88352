"""Rule evaluation over the reference fleet: the whole shipped pack, 140 nodes x 8 GPUs.

The series come from the simulator (every node's exporter rendered once, jobs placed by its
scheduler, plus the Slurm adapter's job/GPU join from its squeue), then HISTORY_S of history at
SCRAPE_S is synthesised from them in the embedded store (counters keep increasing, utilisation
moves), so range functions over 5 m to 1 h windows see full windows. Then every group is
evaluated CYCLES times through LocalQueryClient, with outputs written back as in `serve`, after
one warm-up cycle (the first evaluation builds the store's cached selections and label sets; it is
reported on its own line). Prints the per-cycle wall time (median, p90, max), the CPU time of
this process per cycle (the figure to read on a machine shared with other work), and the
store's size, and each group's median with the evaluation time per 15 s round when every group
runs at its own interval. ``--peer`` does the same in the real Prometheus over the same series
(``prometheus_peer``).

    .venv/bin/python bench/bench_rules.py [--nodes 140] [--history 1800] [--cycles 20] [--warmup 1] [--peer]
"""
from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

import httpx
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from alerts.evaluator.component import build_evaluator  # noqa: E402
from bench.common import cpu_seconds, free_port, rss_bytes, start, stop, wait_ready  # noqa: E402
from cwkernel.metrics import escape_label, format_value  # noqa: E402
from simulator.fleet import Fleet  # noqa: E402
from tsdb.client import LocalQueryClient  # noqa: E402
from tsdb.exposition import parse_exposition  # noqa: E402
from tsdb.promql.engine import Engine  # noqa: E402
from tsdb.store import Store  # noqa: E402

SCRAPE_S = 15.0
ERROR_WORDS = ("error", "xid", "replay", "discard", "symbol", "link_downed", "recovery", "oom", "retrans", "drop",
               "timeout", "clock_event")  # clock_event: a healthy GPU is not throttled
T0 = 1_700_000_000.0
PEER_LEAD_S = 150.0  # promtool's backfill and Prometheus's start, with room


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


def history(base: dict[str, list[tuple[tuple, float]]], steps: int) -> Iterator[tuple[float, str, list]]:
    """Each node's scrape at each of ``steps`` rounds of SCRAPE_S from T0, time-major."""
    rng = random.Random(1)
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
            yield ts, node, row


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, default=140)
    parser.add_argument("--history", type=float, default=1800.0)
    parser.add_argument("--cycles", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=1, help="cycles run first and reported apart")
    parser.add_argument("--peer", action="store_true", help="also the real Prometheus on the same series")
    parser.add_argument("--peer-window", type=float, default=240.0, help="seconds Prometheus is measured for")
    args = parser.parse_args()

    fleet = Fleet(nodes=args.nodes, seed=1, speed=0, start=T0)
    try:
        base = node_series(fleet)
    finally:
        fleet.stop()
    store = Store(retention_s=1e9)
    steps = int(args.history // SCRAPE_S)
    started = time.perf_counter()
    for ts, node, row in history(base, steps):
        store.append_scrape(node, int(ts * 1000), row)
    load_s = time.perf_counter() - started
    client = LocalQueryClient(Engine(store))
    evaluator = build_evaluator(None, client, store.append_scrape, None, SCRAPE_S)
    end = T0 + (steps - 1) * SCRAPE_S
    times, cpu, warmup = [], [], []
    durations: dict[str, list[float]] = {g.group.name: [] for g in evaluator.groups}
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
        for g in evaluator.groups:
            durations[g.group.name].append(g.last_duration_s)
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
    intervals = {g.group.name: g.interval_s for g in evaluator.groups}
    ours = {name: statistics.median(values) for name, values in durations.items()}
    for name, median in ours.items():
        print(f"  {name} (every {intervals[name]:g} s): median {median * 1000:.1f} ms")
    print(f"  per {SCRAPE_S:g} s round, each group at its own interval: {per_round(ours, intervals) * 1000:.1f} ms")
    slowest = sorted(((h.last_duration_s, key.split("|")[-1]) for g in evaluator.groups
                      for key, h in g.health.items()), reverse=True)[:8]
    print("  slowest rules: " + ", ".join(f"{name} {d * 1000:.0f} ms" for d, name in slowest))
    if errors:
        print("rule errors:", errors[:3])
        return 1
    if args.peer:
        peer = prometheus_peer(base, steps, args.peer_window, max(intervals.values()))
        for name, median in peer["groups"].items():
            print(f"  Prometheus {name}: median {median * 1000:.1f} ms ({peer['evaluations'][name]} evaluations)")
        print(f"Prometheus {peer['version']}, the same pack and series, per {SCRAPE_S:g} s round at the groups' own "
              f"intervals: {per_round(peer['groups'], intervals) * 1000:.1f} ms of evaluation time; its process CPU "
              f"{peer['cpu_per_round'] * 1000:.1f} ms per round over {args.peer_window:g} s "
              f"({peer['series']} series loaded in {peer['load_s']:.0f} s)")
    return 0


def per_round(medians: dict[str, float], intervals: dict[str, float]) -> float:
    """Evaluation time per scrape round when each group runs at its own interval."""
    return sum(medians[name] * SCRAPE_S / intervals[name] for name in medians)


def read_by_pack(rule_dir: Path) -> set[str]:
    """Every word of the pack's expressions: a superset of the metric names its rules select."""
    words: set[str] = set()
    for path in rule_dir.glob("*.yml"):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                words.update(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", rule["expr"]))
    return words


def write_openmetrics(out: Path, rows: Iterator[tuple[float, str, list]], names: set[str], shift: float) -> int:
    """The rows whose metric is in ``names`` as OpenMetrics, time-major (each series in time order,
    as promtool's backfill appends them), moved by ``shift`` seconds. Returns the series count."""
    series: set[tuple] = set()
    with out.open("w") as text:
        for ts, _, row in rows:
            stamp = f"{ts + shift:.3f}"
            for labels, value in row:
                pairs = dict(labels)
                name = pairs.pop("__name__")
                if name not in names:
                    continue
                series.add(labels)
                rendered = ",".join(f'{k}="{escape_label(v)}"' for k, v in pairs.items())
                text.write(f"{name}{{{rendered}}} {format_value(value)} {stamp}\n")
        text.write("# EOF\n")
    return len(series)


def prometheus_peer(base: dict[str, list[tuple[tuple, float]]], steps: int, window: float,
                    longest_interval: float) -> dict:
    """The same pack over the same series in the real Prometheus, evaluating at its groups' intervals.

    Prometheus evaluates at the wall clock, so the history is moved to end now and goes on for
    PEER_LEAD_S more (a query at time t sees only samples up to t): for the whole measured window
    every evaluation sees a full history, as a live fleet's would. Only the series the pack's
    expressions name are loaded (promtool's backfill of all 143,000 would take a long while);
    evaluation reads only those."""
    prometheus, promtool = shutil.which("prometheus"), shutil.which("promtool")
    if not prometheus or not promtool:
        raise SystemExit("--peer needs prometheus and promtool (Debian package prometheus)")
    lead_steps = int((PEER_LEAD_S + window) // SCRAPE_S)
    with tempfile.TemporaryDirectory(prefix="cw-bench-rules-") as tmp:
        work = Path(tmp)
        subprocess.run([sys.executable, "-m", "clusterwatch", "rules", "export", "--out", str(work / "rules")],
                       check=True, capture_output=True, timeout=120)
        began = time.perf_counter()
        # The history ends PEER_LEAD_S from now: about the time promtool and Prometheus take to start.
        shift = time.time() + PEER_LEAD_S - (T0 + (steps - 1) * SCRAPE_S)
        series = write_openmetrics(work / "history.om", history(base, steps + lead_steps),
                                   read_by_pack(work / "rules"), shift)
        subprocess.run([promtool, "tsdb", "create-blocks-from", "openmetrics", str(work / "history.om"),
                        str(work / "data")], check=True, capture_output=True)
        (work / "history.om").unlink()
        config = work / "prometheus.yml"
        config.write_text(f"global: {{evaluation_interval: {SCRAPE_S:g}s}}\nrule_files: ['{work / 'rules'}/*.yml']\n")
        port = free_port()
        proc = start([prometheus, f"--config.file={config}", f"--storage.tsdb.path={work / 'data'}",
                      f"--web.listen-address=127.0.0.1:{port}"], work / "prometheus.log")
        try:
            wait_ready(f"http://127.0.0.1:{port}/-/ready", proc)
            load_s = time.perf_counter() - began
            if time.time() > T0 + (steps - 1) * SCRAPE_S + shift:
                print(f"note: the history's end passed before Prometheus was ready ({load_s:.0f} s); "
                      f"evaluations see more than {steps * SCRAPE_S:g} s of it", file=sys.stderr)
            rules_url = f"http://127.0.0.1:{port}/api/v1/rules"
            time.sleep(2 * longest_interval)  # every group evaluated twice: its first, cold one left out
            seen: dict[str, dict[str, float]] = {}
            cpu_before, window_began = cpu_seconds(proc.pid), time.monotonic()
            while time.monotonic() - window_began < window:
                for group in httpx.get(rules_url, timeout=30).json()["data"]["groups"]:
                    seen.setdefault(group["name"], {})[group["lastEvaluation"]] = group["evaluationTime"]
                time.sleep(2)
            cpu = cpu_seconds(proc.pid) - cpu_before
            elapsed = time.monotonic() - window_began
            version = httpx.get(f"http://127.0.0.1:{port}/api/v1/status/buildinfo").json()["data"]["version"]
        finally:
            stop(proc)
    return {"groups": {name: statistics.median(times.values()) for name, times in seen.items()},
            "evaluations": {name: len(times) for name, times in seen.items()},
            "cpu_per_round": cpu / (elapsed / SCRAPE_S), "series": series, "load_s": load_s, "version": version}

if __name__ == "__main__":
    raise SystemExit(main())
