"""Time to notify: a fault injected in the simulator -> the notification handed on (issue 6).

    .venv/bin/python bench/bench_time_to_notify.py [--repeats 3]

A. XID 79, real processes on the wall clock: `clusterwatch simulate` + `clusterwatch serve`
   (1 s scrape, 1 s evaluation) routing to a webhook served by this script; fault injected over
   the simulator's API; time until the webhook receives GpuXidRebootRequired for that GPU.
   Bound: scrape interval + rule `for` (0) + evaluation interval of the rule's group (the pack's
   `gpu-hardware` group runs every 15 s, whatever `--evaluation-interval` says) + 2 s.
B. A hung job, on the simulated clock (15 minutes of `for` do not fit a benchmark on the wall
   clock): the simulator's exporters and its Slurm face (through the real scheduler adapter)
   ingested into the embedded store every 15 s of simulated time, the shipped pack evaluated at
   each step; a running job is made to hang; simulated time until JobHung is handed to notify.
   Bound: 15 s + `for` (900 s) + 15 s + 2 s.
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

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import free_port, wait_http  # noqa: E402

SCRAPE_S, EVAL_S = 1, 1


class Webhook:
    """Records (arrival time, alert labels) of every notification it receives."""

    def __init__(self) -> None:
        self.received: list[tuple[float, dict]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                now = time.time()
                owner.received += [(now, alert["labels"]) for alert in body["alerts"] if alert["status"] == "firing"]
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def first(self, alertname: str, instance: str, since: float) -> float | None:
        for at, labels in self.received:
            if at >= since and labels.get("alertname") == alertname and labels.get("instance") == instance:
                return at
        return None


def xid_on_the_wall_clock(repeats: int) -> list[float]:
    work = Path(tempfile.mkdtemp(prefix="cw-ttn-"))
    hook = Webhook()
    config = work / "alerting.yml"
    config.write_text(
        "route: {receiver: bench, group_by: [alertname, instance, gpu], group_wait: 0s, group_interval: 1s}\n"
        f"receivers: [{{name: bench, webhook_configs: [{{url: '{hook.url}'}}]}}]\n")
    sim_port, port = free_port(), free_port()
    procs = []
    try:
        procs.append(subprocess.Popen([sys.executable, "-m", "clusterwatch", "simulate", "--nodes", "6", "--listen",
                                       f"127.0.0.1:{sim_port}", "--file-sd", str(work / "fleet.json")],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_http(f"http://127.0.0.1:{sim_port}/-/healthy", timeout=60)
        procs.append(subprocess.Popen([sys.executable, "-m", "clusterwatch", "serve", "--listen", f"127.0.0.1:{port}",
                                       "--file-sd", str(work / "fleet.json"), "--scrape-interval", f"{SCRAPE_S}s",
                                       "--evaluation-interval", f"{EVAL_S}s", "--alerting-config", str(config),
                                       "--state-dir", str(work / "state")],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_http(f"http://127.0.0.1:{port}/-/ready", timeout=60)
        time.sleep(5)  # every node scraped a few times, every rule group evaluated
        delays = []
        for attempt in range(repeats):
            node, gpu = f"gpu-00{attempt + 1}", 3
            injected = time.time()
            httpx.post(f"http://127.0.0.1:{sim_port}/api/faults",
                       json={"kind": "xid", "node": node, "gpu": gpu, "xid": 79}).raise_for_status()
            deadline = injected + 60
            while time.time() < deadline and hook.first("GpuXidRebootRequired", node, injected) is None:
                time.sleep(0.05)
            arrived = hook.first("GpuXidRebootRequired", node, injected)
            delays.append(float("nan") if arrived is None else arrived - injected)
        return delays
    finally:
        for proc in reversed(procs):
            proc.terminate()
            proc.wait(30)
        hook.server.shutdown()


def hung_job_on_the_simulated_clock() -> tuple[float, int]:
    from alerts.evaluator.component import build_evaluator
    from scheduler import build_scheduler
    from simulator.fleet import Fleet
    from simulator.jobs import HUNG, RUNNING
    from simulator.server import SimulatorHTTPServer
    from tsdb.client import LocalQueryClient
    from tsdb.exposition import parse_exposition
    from tsdb.local import LocalSource
    from tsdb.promql.engine import Engine
    from tsdb.store import Store

    step = 15.0
    fleet = Fleet(nodes=4, seed=5, speed=0, start=1_700_000_000.0)
    server = SimulatorHTTPServer(("127.0.0.1", 0), fleet)
    server.start_in_thread()
    store = Store(retention_s=1e9)
    evaluator = build_evaluator(None, LocalQueryClient(Engine(store)), store.append_scrape, None, step)
    notified: list = []
    evaluator.notify = notified.extend
    adapter = build_scheduler("simulator", f"{server.base_url}/slurm", min_interval=0.001)
    slurm = LocalSource(store, "scheduler", adapter.collector, step, "slurm")

    def advance(now: float) -> None:
        fleet.advance(step)
        for node in fleet.node_names():
            text = fleet.render_metrics(node).decode()
            samples = [(tuple(sorted({**dict(labels), "__name__": name, "instance": node, "job": "clusterwatch"}.items())),
                        value) for name, labels, value, _ in parse_exposition(text).samples]
            store.append_scrape(node, int(now * 1000), samples)
        adapter.refresh(wait=True)
        store.append_scrape(slurm.target, int(now * 1000), slurm.samples())
        evaluator.evaluate(now)

    try:
        now = fleet.clock.now()
        for _ in range(10):
            now += step
            advance(now)
        job = next(j for j in fleet.scheduler.jobs.values()
                   if j.state == RUNNING and j.behaviour == "train" and j.start_time < now - 600)
        job.behaviour, job.hang_after = HUNG, now - job.start_time  # hangs from this moment on
        hung_at = now
        while now < hung_at + 1800:
            now += step
            advance(now)
            if any(a.labels.get("alertname") == "JobHung" and a.labels.get("job_id") == str(job.job_id) for a in notified):
                return now - hung_at, job.job_id
        return float("nan"), job.job_id
    finally:
        server.shutdown()
        fleet.stop()


def group_interval(alertname: str) -> float:
    """The evaluation interval of the shipped group that holds ``alertname``."""
    from alerts.evaluator.component import SHIPPED_RULES
    from alerts.evaluator.rulefile import load_rule_files

    for group in load_rule_files([SHIPPED_RULES]):
        if any(getattr(rule, "name", None) == alertname for rule in group.rules):
            return group.interval_s or 60.0
    raise LookupError(alertname)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    delays = xid_on_the_wall_clock(args.repeats)
    interval = group_interval("GpuXidRebootRequired")
    bound = SCRAPE_S + 0 + interval + 2
    print(f"A. XID 79 -> webhook (wall clock, scrape {SCRAPE_S}s, rule group every {interval:g}s, group_wait 0s): "
          + ", ".join(f"{d:.2f} s" for d in delays) + f"; bound {bound} s; "
          + ("within" if all(d <= bound for d in delays) else "NOT within"))
    seconds, job_id = hung_job_on_the_simulated_clock()
    bound = 15 + 900 + 15 + 2
    print(f"B. job {job_id} hangs -> JobHung notified (simulated clock, 15 s scrape and evaluation): {seconds:.0f} s "
          f"simulated; bound {bound} s; " + ("within" if seconds <= bound else "NOT within"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
