"""The worst day: `serve` watching the 140-node simulator while everything hostile happens at once.

    .venv/bin/python bench/bench_storm.py [--duration 300] [--nodes 140] [--keep DIR]

Real processes: `clusterwatch simulate` (140 x 8 GPUs), `clusterwatch serve` scraping it every
5 s with the scheduler adapter, the shipped rule pack and automation on (`--automation auto`),
an alerting config whose every alert also goes to a dead receiver (a TCP port that accepts and
never answers), and a load process (another interpreter, so its work does not share this one's
GIL) that for ``--duration`` seconds runs all of these at once:

- 50 dashboard/API clients, each asking a page or a query every second;
- the adversarial inputs of issue 14 (regex backtracking, a 6 h x 2 s range over every gpu_
  series, a 30 d : 1 ms subquery, a 6 KB parser bomb, 1000 nested parentheses, out-of-range
  times and steps, a webhook nested 100,000 deep, an unauthenticated 64 MB POST, a non-UTF-8
  form, a silence of 99999999y), one round every 5 s;
- a 10,000-alert Alertmanager webhook every 30 s (five sets of distinct alerts in turn, so 50,000
  stay active);
- 1,100 connections that send half a request and then nothing (re-opened when the server closes
  them).

This process measures, quietly first and then during the storm: `/-/healthy`, `/metrics` and the
dashboard overview (`/api/overview`) latencies; an XID 79 injected into a simulated GPU to the
remediation engine's case for it (the remediation hook's delivery); the server's RSS. After the
storm it reads back every `up` sample the server recorded: the real scrape intervals (p50/p99;
goal p99 <= 1.5x the interval) and how many `up == 0` it wrote for nodes the simulator says were
reachable (false downs; goal 0). Goals are in issue 14; figures go to docs/performance.md.
"""
from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import free_port, percentile, rss_bytes, wait_http  # noqa: E402

OPERATOR_TOKEN = "storm-operator"
WEBHOOK_TOKEN = "storm-webhook"
ALERT_SETS = 5


# ---- the hostile side (runs in its own process) -----------------------------------------------

def adversarial_requests(base: str) -> list[tuple[str, str, dict]]:
    """(method, path, httpx keyword arguments) of each hostile input, one round."""
    slow_regex = 'label_replace(label_replace(vector(1),"x","aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!","",""),"y","z","x","(a+)+$")'
    now = time.time()
    deep = "[" * 100_000 + "]" * 100_000

    def big_body():
        chunk = b"x" * (1 << 20)
        for _ in range(64):
            yield chunk

    return [
        ("GET", "/api/v1/query", {"params": {"query": slow_regex}}),
        ("GET", "/api/v1/query_range", {"params": {"query": '{__name__=~"gpu_.+"}', "start": now - 6 * 3600,
                                                   "end": now, "step": "2"}}),
        ("GET", "/api/v1/query", {"params": {"query": "count_over_time(vector(1)[30d:1ms])"}}),
        ("POST", "/api/v1/query", {"data": {"query": "+".join(["1"] * 3000)}}),
        ("GET", "/api/v1/query", {"params": {"query": "(" * 1000 + "1" + ")" * 1000}}),
        ("GET", "/api/v1/query", {"params": {"query": "up", "time": "1e300"}}),
        ("GET", "/api/v1/query_range", {"params": {"query": "up", "start": now - 60, "end": now, "step": "NaN"}}),
        ("GET", "/api/v1/query", {"params": {"query": "up @ 1e18"}}),
        ("POST", "/api/v1/query", {"content": b"query=\xff\xfe\xfa", "headers": {
            "content-type": "application/x-www-form-urlencoded"}}),
        ("POST", "/api/v1/alertmanager/webhook", {"content": deep.encode(), "headers": {
            "authorization": f"Bearer {WEBHOOK_TOKEN}", "content-type": "application/json"}}),
        ("POST", "/api/silences", {"content": big_body(), "headers": {"content-type": "application/json"}}),
        ("POST", "/api/silences", {"json": {"matchers": ['alertname="Storm"'], "duration": "99999999y",
                                            "comment": "bad"},
                                   "headers": {"authorization": f"Bearer {OPERATOR_TOKEN}"}}),
        ("GET", "/api/overview", {"params": {"end": "nan"}}),
    ]


def webhook_bodies(alerts: int) -> list[bytes]:
    """ALERT_SETS Alertmanager webhook bodies of ``alerts`` distinct alerts each, over 100 instances."""
    starts = "2026-01-01T00:00:00Z"
    bodies = []
    for k in range(ALERT_SETS):
        items = [{"status": "firing", "labels": {"alertname": f"StormAlert{k}", "instance": f"storm-{i % 100:03d}",
                                                 "severity": "warning", "shard": str(i)},
                  "annotations": {"summary": f"storm alert {k}/{i}"}, "startsAt": starts,
                  "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://prometheus.example/graph",
                  "fingerprint": f"{k:02x}{i:014x}"} for i in range(alerts)]
        bodies.append(json.dumps({
            "version": "4", "groupKey": f"{{}}:{{alertname=\"StormAlert{k}\"}}", "truncatedAlerts": 0,
            "status": "firing", "receiver": "storm", "groupLabels": {"alertname": f"StormAlert{k}"},
            "commonLabels": {"alertname": f"StormAlert{k}", "severity": "warning"}, "commonAnnotations": {},
            "externalURL": "http://alertmanager.example", "alerts": items}).encode())
    return bodies


CLIENT_PATHS = ["/api/overview", "/api/jobs", "/api/nodes", "/api/alerts-view", "/api/nodes/gpu-007",
                "/api/v1/query?query=avg(gpu_utilization_ratio)",
                "/api/v1/query?query=sum%20by%20(instance)%20(gpu_power_watts)", "/api/alerts?state=firing",
                "/api/automation/cases", "/api/users"]


def _hold_half_requests(host: str, port: int, count: int, stop: threading.Event, stats: dict) -> None:
    """``count`` connections that send half a request and never the rest; closed ones re-opened."""
    held: list[socket.socket | None] = [None] * count
    while not stop.is_set():
        for i in range(count):
            sock = held[i]
            if sock is not None:
                try:
                    if sock.recv(1, socket.MSG_DONTWAIT | socket.MSG_PEEK) == b"":
                        raise ConnectionResetError
                    stats["idle_answered"] += 1  # the server answered (408/503): close, open again
                    sock.close()
                    sock = held[i] = None
                except BlockingIOError:
                    continue  # still held open by the server
                except OSError:
                    sock.close()
                    sock = held[i] = None
                    stats["idle_closed_by_server"] += 1
            try:
                sock = socket.create_connection((host, port), timeout=2)
                sock.sendall(b"GET /api/overview HTTP/1.1\r\nHost: storm\r\nX-Slow: ")
                held[i] = sock
                stats["idle_opened"] += 1
            except OSError:
                stats["idle_open_failed"] += 1
        stop.wait(1.0)
    for sock in held:
        if sock is not None:
            sock.close()


def load_main(base: str, duration: float, clients: int, idle: int, webhook_alerts: int, webhook_every: float,
              results: "multiprocessing.Queue") -> None:
    """The storm, for ``duration`` seconds; puts a dict of what it saw on ``results``."""
    # The clients stand for other machines: on this shared machine they take what CPU the
    # server and the simulated nodes (which stand for 140 machines of their own) leave.
    os.nice(10)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    host, port = base.removeprefix("http://").rsplit(":", 1)
    stop = threading.Event()
    stats = {"client_requests": 0, "client_errors": 0, "client_5xx": 0, "idle_opened": 0, "idle_closed_by_server": 0,
             "idle_answered": 0, "idle_open_failed": 0}
    statuses: dict[str, dict[int | str, int]] = {}
    webhook_latencies: list[float] = []
    webhook_statuses: list[int | str] = []
    webhook_started: list[float] = []
    lock = threading.Lock()
    bodies = webhook_bodies(webhook_alerts)

    def client_loop(n: int) -> None:
        with httpx.Client(base_url=base, timeout=60) as http:
            i = n
            while not stop.is_set():
                try:
                    code = http.get(CLIENT_PATHS[i % len(CLIENT_PATHS)]).status_code
                    with lock:
                        stats["client_requests"] += 1
                        stats["client_5xx"] += code >= 500
                except httpx.HTTPError:
                    with lock:
                        stats["client_errors"] += 1
                i += 1
                stop.wait(1.0)

    def adversarial_loop() -> None:
        with httpx.Client(base_url=base, timeout=180) as http:
            while not stop.is_set():
                for method, path, kwargs in adversarial_requests(base):
                    if stop.is_set():
                        break
                    key = f"{method} {path} {next(iter(kwargs.get('params', kwargs.get('data', {'': ''})).values()))!s:.40}"
                    try:
                        code: int | str = http.request(method, path, **kwargs).status_code
                    except httpx.HTTPError as exc:
                        code = type(exc).__name__
                    with lock:
                        statuses.setdefault(key, {}).setdefault(code, 0)
                        statuses[key][code] += 1
                stop.wait(5.0)

    def webhook_loop() -> None:
        with httpx.Client(base_url=base, timeout=120) as http:
            k = 0
            while not stop.is_set():
                began = time.monotonic()
                with lock:
                    webhook_started.append(time.time())
                try:
                    code: int | str = http.post("/api/v1/alertmanager/webhook", content=bodies[k % ALERT_SETS],
                                                headers={"authorization": f"Bearer {WEBHOOK_TOKEN}",
                                                         "content-type": "application/json"}).status_code
                except httpx.HTTPError as exc:
                    code = type(exc).__name__
                with lock:
                    webhook_latencies.append(time.monotonic() - began)
                    webhook_statuses.append(code)
                k += 1
                stop.wait(max(0.0, webhook_every - (time.monotonic() - began)))

    threads = [threading.Thread(target=client_loop, args=(n,), daemon=True) for n in range(clients)]
    threads += [threading.Thread(target=adversarial_loop, daemon=True), threading.Thread(target=webhook_loop, daemon=True),
                threading.Thread(target=_hold_half_requests, args=(host, int(port), idle, stop, stats), daemon=True)]
    for thread in threads:
        thread.start()
    stop.wait(duration)
    stop.set()
    for thread in threads:
        thread.join(timeout=200)
    results.put({"stats": stats, "adversarial": {k: {str(c): n for c, n in v.items()} for k, v in statuses.items()},
                 "webhook_latencies": webhook_latencies, "webhook_statuses": [str(s) for s in webhook_statuses],
                 "webhook_started": webhook_started})


# ---- the measuring side -------------------------------------------------------------------------

@dataclass
class Probe:
    """GETs ``path`` every ``every`` seconds on its own connection; latencies and failures."""

    base: str
    path: str
    every: float
    timeout: float = 30.0
    latencies: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def run(self, stop: threading.Event) -> None:
        with httpx.Client(base_url=self.base, timeout=self.timeout) as http:
            while not stop.is_set():
                began = time.monotonic()
                try:
                    response = http.get(self.path)
                    if response.status_code != 200:
                        self.failures.append(f"HTTP {response.status_code}")
                    self.latencies.append(time.monotonic() - began)
                except httpx.HTTPError as exc:
                    self.failures.append(type(exc).__name__)
                    self.latencies.append(time.monotonic() - began)
                stop.wait(max(0.0, self.every - (time.monotonic() - began)))


def probe_phase(base: str, seconds: float, pid: int, during=None) -> tuple[dict[str, Probe], list[int]]:
    """Runs the probes (and ``during(stop)`` in a thread, if given) for ``seconds``."""
    probes = {"healthy": Probe(base, "/-/healthy", 0.25), "metrics": Probe(base, "/metrics", 1.0),
              "overview": Probe(base, "/api/overview", 2.0)}
    stop = threading.Event()
    threads = [threading.Thread(target=p.run, args=(stop,), daemon=True) for p in probes.values()]
    rss: list[int] = []
    for thread in threads:
        thread.start()
    extra = threading.Thread(target=during, args=(stop,), daemon=True) if during else None
    if extra:
        extra.start()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        rss.append(rss_bytes(pid))
        time.sleep(1.0)
    stop.set()
    for thread in threads:
        thread.join(timeout=60)
    if extra:
        extra.join(timeout=300)
    return probes, rss


def xid_to_hook(base: str, sim: str, node: str, gpu: int, timeout: float = 180.0) -> float:
    """Seconds from an XID 79 injected on (node, gpu) to the remediation case the hook opened."""
    with httpx.Client(timeout=30) as http:
        before = _case_ids(http, base)
        injected = time.time()
        http.post(f"{sim}/api/faults", json={"kind": "xid", "node": node, "gpu": gpu, "xid": 79}).raise_for_status()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                for case in http.get(f"{base}/api/automation/cases").json()["cases"]:
                    if case["id"] not in before and case["node"] == node:
                        return case["created_at"] - injected
            except (httpx.HTTPError, ValueError, KeyError):
                pass
            time.sleep(0.5)
    return math.nan


def _case_ids(http: httpx.Client, base: str, patience_s: float = 120.0) -> set[int]:
    """The automation's case ids; asked again while the server sheds the request (503 under the
    storm: the cases list is a view like any other), as a client should."""
    deadline = time.monotonic() + patience_s
    while True:
        response = http.get(f"{base}/api/automation/cases")
        if response.status_code == 200 or time.monotonic() > deadline:
            response.raise_for_status()
            return {c["id"] for c in response.json()["cases"]}
        time.sleep(0.5)


def unreachable_watch(sim: str, seen: set[str], stop: threading.Event) -> None:
    """Nodes the simulator reports unreachable at any moment (rebooted by the automation...)."""
    with httpx.Client(timeout=30) as http:
        while not stop.is_set():
            try:
                for node in http.get(f"{sim}/api/fleet").json()["nodes"]:
                    if not node.get("reachable", True):
                        seen.add(node["name"])
            except (httpx.HTTPError, ValueError, KeyError):
                pass
            stop.wait(1.0)


def scrape_record(base: str, start: float, end: float) -> dict[str, list[tuple[float, float]]]:
    """Every `up` sample the server wrote between start and end, per node."""
    window = max(1, math.ceil(end - start))
    response = httpx.get(f"{base}/api/v1/query", params={"query": f'up{{job="clusterwatch"}}[{window}s]', "time": end},
                         timeout=120)
    response.raise_for_status()
    return {s["metric"]["instance"]: [(float(t), float(v)) for t, v in s["values"]]
            for s in response.json()["data"]["result"]}


def ms(values: list[float], q: float) -> str:
    return f"{percentile(values, q) * 1e3:.1f} ms" if values else "n/a"


def dead_receiver() -> tuple[socket.socket, int]:
    """A port that accepts connections and never answers (a receiver hung, not refused)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(4096)
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            held.append(conn)

    threading.Thread(target=accept, daemon=True).start()
    return sock, sock.getsockname()[1]


def alerting_config(path: Path, dead_port: int) -> None:
    path.write_text(f"""\
route:
  receiver: ops
  group_by: [alertname, instance]
  group_wait: 10s
  group_interval: 1m
  repeat_interval: 4h
  routes:
    - receiver: remediation
      matchers: ['action=~"reboot|reset_gpu|drain|notify_owner"']
      group_by: [alertname, instance, gpu, job_id]
      group_wait: 10s
      group_interval: 1m
      repeat_interval: 1h
      continue: true
    - receiver: dead
      continue: true
    - receiver: ops
receivers:
  - name: ops
    log_configs: [{{level: info}}]
  - name: remediation
    hook_configs: [{{name: remediation, send_resolved: true}}]
  - name: dead
    webhook_configs: [{{url: 'http://127.0.0.1:{dead_port}/hook'}}]
""")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=300.0, help="seconds of storm (issue 14: at least 300)")
    parser.add_argument("--quiet", type=float, default=60.0, help="seconds of quiet measurement before the storm")
    parser.add_argument("--nodes", type=int, default=140)
    parser.add_argument("--scrape-interval", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--idle-connections", type=int, default=1100)
    parser.add_argument("--webhook-alerts", type=int, default=10_000)
    parser.add_argument("--webhook-every", type=float, default=30.0)
    parser.add_argument("--keep", help="keep the state directory and logs here")
    args = parser.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    work = Path(args.keep or tempfile.mkdtemp(prefix="cw-storm-"))
    work.mkdir(parents=True, exist_ok=True)
    dead_sock, dead_port = dead_receiver()
    alerting_config(work / "alerting.yml", dead_port)
    sim_port, port = free_port(), free_port()
    sim, base = f"http://127.0.0.1:{sim_port}", f"http://127.0.0.1:{port}"
    env = {**os.environ, "CLUSTERWATCH_OPERATOR_TOKEN": OPERATOR_TOKEN}
    logs = [open(work / "simulator.log", "wb"), open(work / "serve.log", "wb")]
    procs = [subprocess.Popen([sys.executable, "-m", "clusterwatch", "simulate", "--nodes", str(args.nodes),
                               "--listen", f"127.0.0.1:{sim_port}", "--file-sd", str(work / "fleet.json")],
                              stdout=logs[0], stderr=subprocess.STDOUT)]
    try:
        wait_http(f"{sim}/-/healthy", timeout=120)
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "clusterwatch", "serve", "--listen", f"127.0.0.1:{port}",
             "--file-sd", str(work / "fleet.json"), "--scrape-interval", f"{args.scrape_interval:g}s",
             "--scheduler", "simulator", "--scheduler-url", f"{sim}/slurm", "--automation", "auto",
             "--alerting-config", str(work / "alerting.yml"), "--state-dir", str(work / "state"),
             "--webhook-token", WEBHOOK_TOKEN], stdout=logs[1], stderr=subprocess.STDOUT, env=env))
        wait_http(f"{base}/-/ready", timeout=120)
        pid = procs[1].pid
        print(f"serve pid {pid} on {base}, simulator {args.nodes} nodes on {sim}, state in {work}", flush=True)
        time.sleep(3 * args.scrape_interval)  # every node scraped, every group evaluated once
        rss_start = rss_bytes(pid)

        names = [node["name"] for node in httpx.get(f"{sim}/api/fleet", timeout=60).json()["nodes"]]
        quiet_node, storm_node = names[-1], names[-2]  # the faults' nodes: the automation reboots them
        unreachable: set[str] = set()
        quiet_xid: list[float] = []
        quiet, quiet_rss = probe_phase(base, args.quiet, pid,
                                       during=lambda stop: quiet_xid.append(xid_to_hook(base, sim, quiet_node, 2)))
        print(f"quiet ({args.quiet:.0f} s): healthy p99 {ms(quiet['healthy'].latencies, 99)}, metrics p99 "
              f"{ms(quiet['metrics'].latencies, 99)}, overview p99 {ms(quiet['overview'].latencies, 99)}; "
              f"XID 79 -> remediation hook {quiet_xid[0]:.1f} s", flush=True)

        results: multiprocessing.Queue = multiprocessing.get_context("spawn").Queue()
        loader = multiprocessing.get_context("spawn").Process(
            target=load_main, args=(base, args.duration, args.clients, args.idle_connections, args.webhook_alerts,
                                    args.webhook_every, results), daemon=True)
        storm_xid: list[float] = []
        storm_xid_at: list[float] = []

        def during_storm(stop: threading.Event) -> None:
            watch = threading.Thread(target=unreachable_watch, args=(sim, unreachable, stop), daemon=True)
            watch.start()
            stop.wait(args.duration / 2)
            if not stop.is_set():
                storm_xid_at.append(time.time())
                storm_xid.append(xid_to_hook(base, sim, storm_node, 5))
            watch.join(timeout=60)

        storm_start = time.time()
        loader.start()
        storm, storm_rss = probe_phase(base, args.duration, pid, during=during_storm)
        storm_end = time.time()
        load = results.get(timeout=600)
        loader.join(timeout=60)

        time.sleep(60)  # the storm is over: what the server keeps
        rss_after = rss_bytes(pid)
        record = scrape_record(base, storm_start, storm_end)
        watched = {quiet_node, storm_node} | unreachable
        intervals = [b[0] - a[0] for samples in record.values() for a, b in zip(samples, samples[1:])]
        false_down = sum(1 for node, samples in record.items() if node not in watched for _, v in samples if v == 0)
        late = sorted({round(b[0] - storm_start) for samples in record.values() for a, b in zip(samples, samples[1:])
                       if b[0] - a[0] > 1.5 * args.scrape_interval})
        false_at = sorted({round(t - storm_start) for node, samples in record.items() if node not in watched
                           for t, v in samples if v == 0})
        true_down = sum(1 for node, samples in record.items() if node in watched for _, v in samples if v == 0)

        print("\n== storm: {:.0f} s, {} nodes, scrape every {:g} s, {} clients, {} idle connections, "
              "{}-alert webhook every {:g} s, dead receiver, automation auto".format(
                  args.duration, args.nodes, args.scrape_interval, args.clients, args.idle_connections,
                  args.webhook_alerts, args.webhook_every))
        goal = 1.5 * args.scrape_interval
        print(f"scrape interval: p50 {percentile(intervals, 50):.2f} s, p99 {percentile(intervals, 99):.2f} s, "
              f"max {max(intervals, default=math.nan):.2f} s over {len(intervals)} intervals of {len(record)} nodes "
              f"(goal p99 <= {goal:g} s: {'met' if percentile(intervals, 99) <= goal else 'MISSED'})")
        print(f"late scrapes (storm second of the scrape that came late): {late[:40]}; false downs at {false_at[:40]}; "
              f"webhooks posted at {[round(t - storm_start) for t in load['webhook_started']]}; "
              f"storm XID injected at {round(storm_xid_at[0] - storm_start) if storm_xid_at else None}")
        print(f"false up == 0: {false_down} samples (goal 0: {'met' if false_down == 0 else 'MISSED'}); "
              f"up == 0 on nodes the automation rebooted or that were unreachable ({sorted(watched)}): {true_down}")
        for name in ("healthy", "metrics", "overview"):
            q, s = quiet[name], storm[name]
            q99, s99 = percentile(q.latencies, 99), percentile(s.latencies, 99)
            print(f"{name}: quiet p99 {ms(q.latencies, 99)}, storm p50 {ms(s.latencies, 50)} p99 {ms(s.latencies, 99)} "
                  f"max {ms(s.latencies, 100)} ({s99 / q99:.1f}x quiet); "
                  f"failures {len(s.failures)} ({', '.join(sorted(set(s.failures))) or 'none'})")
        webhook = load["webhook_latencies"]
        print(f"webhook ({args.webhook_alerts} alerts): p50 {ms(webhook, 50)}, p99 {ms(webhook, 99)}, "
              f"max {ms(webhook, 100)}, n={len(webhook)}, statuses {sorted(set(load['webhook_statuses']))} "
              f"(the <= 1 s goal is for the storm alone: bench/bench_alert_storm.py)")
        quiet_bound = args.scrape_interval + 15 + 10 + 2
        storm_delay = storm_xid[0] if storm_xid else math.nan
        print(f"XID 79 -> remediation hook: quiet {quiet_xid[0]:.1f} s, storm {storm_delay:.1f} s (quiet bound "
              f"{quiet_bound:g} s: scrape + gpu-hardware group 15 s + remediation group_wait 10 s + 2 s; goal <= "
              f"{quiet_bound + 5:g} s: {'met' if storm_delay <= quiet_bound + 5 else 'MISSED'})")
        rss_all = quiet_rss + storm_rss
        print(f"RSS: at start {rss_start / 2**20:.0f} MiB, max {max(rss_all) / 2**20:.0f} MiB, 60 s after the storm "
              f"{rss_after / 2**20:.0f} MiB")
        print(f"clients: {load['stats']}")
        print("adversarial inputs (status: count):")
        for key, counts in sorted(load["adversarial"].items()):
            print(f"  {key}: {counts}")
        return 0
    finally:
        for proc in reversed(procs):
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        for log in logs:
            log.close()
        dead_sock.close()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
