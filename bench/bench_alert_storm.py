"""Alert storm (issue 14, finding 4): with 50,000 alerts active, one 10,000-alert Alertmanager
webhook, and what the rest of the server answers meanwhile.

    .venv/bin/python bench/bench_alert_storm.py [--active 50000] [--storm 10000] [--after 10]

A real `clusterwatch serve` (the shipped alerting configuration: its inhibit rules and routes,
the log receiver; SQLite state in a temporary directory) is fed ``--active`` alerts by webhooks of
10,000, and left to notify them all. Then, quietly, `/-/healthy`, `/metrics`, the dashboard
overview (`/api/overview`) and the alerts page (`/api/alerts-view`) are timed one request after
another; then the same requests are repeated from one thread each while one ``--storm``-alert
webhook of new alerts is posted. Printed: the webhook's answer time (goal <= 1 s) and each
endpoint's p50/p99 quietly, during the post, and during the post plus the ``--after`` seconds in
which the server notifies the new alerts (goal: p99 within 2x the quiet p99).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import free_port, percentile, rss_bytes, wait_http  # noqa: E402

TOKEN = "bench-storm"
BATCH = 10_000
ENDPOINTS = ("/-/healthy", "/metrics", "/api/overview", "/api/alerts-view")
QUIET_REQUESTS = {"/-/healthy": 300, "/metrics": 100, "/api/overview": 30, "/api/alerts-view": 10}
# Pause between one poller's requests: probes and scrapes back to back, a dashboard user's page
# every few seconds (the alerts page judges all 50,000 alerts: back to back it would be a load
# of its own rather than a witness).
PAUSE_S = {"/-/healthy": 0.01, "/metrics": 0.01, "/api/overview": 0.2, "/api/alerts-view": 3.0}


def webhook_body(first: int, count: int, starts_at: str) -> bytes:
    """``count`` distinct GPU alerts (numbered from ``first``), with a NodeDown on every 100th
    node and critical/warning mixes, so that the shipped inhibit rules have work to do."""
    alerts = []
    for i in range(first, first + count):
        node = f"node-{i // 8:05d}"
        labels = ({"alertname": "NodeDown", "instance": node, "severity": "critical"} if i % 800 == 0 else
                  {"alertname": "GpuHot", "instance": node, "gpu": str(i % 8), "job": "gpu",
                   "severity": "critical" if i % 3 == 0 else "warning"})
        alerts.append({"status": "firing", "labels": labels, "annotations": {"summary": f"bench alert {i}"},
                       "startsAt": starts_at, "endsAt": "0001-01-01T00:00:00Z",
                       "generatorURL": "http://prometheus:9090/graph", "fingerprint": ""})
    return json.dumps({"version": "4", "groupKey": '{}:{alertname="GpuHot"}', "truncatedAlerts": 0,
                       "status": "firing", "receiver": "bench", "groupLabels": {"alertname": "GpuHot"},
                       "commonLabels": {}, "commonAnnotations": {}, "externalURL": "http://alertmanager:9093",
                       "alerts": alerts}).encode()


def post_webhook(base: str, body: bytes) -> float:
    started = time.perf_counter()
    response = httpx.post(f"{base}/api/v1/alertmanager/webhook", content=body, timeout=300,
                          headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    seconds = time.perf_counter() - started
    if response.status_code != 200:
        raise RuntimeError(f"webhook answered {response.status_code}: {response.text[:300]}")
    return seconds


def metric_sum(base: str, name: str) -> float:
    text = httpx.get(f"{base}/metrics", timeout=60).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name) and not line.startswith("#"))


def wait_notified(base: str, timeout: float) -> tuple[float, float]:
    """Seconds until the notifications of what is active have all been delivered (nothing pending
    and the delivered count steady for 3 s), and how many were."""
    started = time.monotonic()
    last, steady_since = -1.0, time.monotonic()
    while time.monotonic() - started < timeout:
        delivered = metric_sum(base, "clusterwatch_notifications_delivered_total")
        pending = metric_sum(base, "clusterwatch_notification_outbox_pending")
        if delivered != last or pending:
            last, steady_since = delivered, time.monotonic()
        elif delivered and time.monotonic() - steady_since >= 3:
            return steady_since - started, delivered
        time.sleep(0.5)
    raise RuntimeError(f"notifications still under way after {timeout:.0f} s")


def timed(client: httpx.Client, path: str) -> float:
    started = time.perf_counter()
    response = client.get(path)
    seconds = time.perf_counter() - started
    if response.status_code != 200:
        raise RuntimeError(f"GET {path} answered {response.status_code}: {response.text[:200]}")
    return seconds


class Poller:
    """Times one endpoint in a loop from its own thread: (finished at, seconds) per request."""

    def __init__(self, base: str, path: str) -> None:
        self.path = path
        self.pause = PAUSE_S[path]
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._client = httpx.Client(base_url=base, timeout=300)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            seconds = timed(self._client, self.path)
            self.samples.append((time.monotonic(), seconds))
            self._stop.wait(self.pause)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(300)
        self._client.close()

    def between(self, start: float, end: float) -> list[float]:
        """Latencies of the requests that were under way at some point in [start, end]."""
        return [s for done, s in self.samples if done >= start and done - s <= end]


def ms(values: list[float]) -> str:
    if not values:
        return "no request"
    return f"p50 {percentile(values, 50) * 1e3:7.1f} ms  p99 {percentile(values, 99) * 1e3:7.1f} ms  (n={len(values)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--active", type=int, default=50_000, help="alerts active before the storm")
    parser.add_argument("--storm", type=int, default=10_000, help="alerts in the storm's webhook")
    parser.add_argument("--after", type=float, default=10.0, help="seconds measured after the post")
    args = parser.parse_args()
    starts_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 600))
    with tempfile.TemporaryDirectory(prefix="cw-alert-storm-") as work:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        log = open(Path(work) / "serve.log", "w")
        server = subprocess.Popen(
            [sys.executable, "-m", "clusterwatch", "serve", "--listen", f"127.0.0.1:{port}", "--state-dir",
             str(Path(work) / "state"), "--webhook-token", TOKEN], stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_http(f"{base}/-/healthy", 60)
            loads = [post_webhook(base, webhook_body(first, min(BATCH, args.active - first), starts_at))
                     for first in range(0, args.active, BATCH)]
            notified, delivered = wait_notified(base, 600)
            print(f"{args.active} alerts loaded by {len(loads)} webhooks (each answered in "
                  f"{min(loads):.2f} to {max(loads):.2f} s); {delivered:.0f} notifications delivered "
                  f"{notified:.0f} s after the last")
            quiet = {}
            with httpx.Client(base_url=base, timeout=300) as client:
                for path in ENDPOINTS:
                    quiet[path] = [timed(client, path) for _ in range(QUIET_REQUESTS[path])]
            pollers = [Poller(base, path) for path in ENDPOINTS]
            time.sleep(2.0)
            body = webhook_body(args.active, args.storm, starts_at)
            began = time.monotonic()
            answered = post_webhook(base, body)
            ended = time.monotonic()
            time.sleep(args.after)
            for poller in pollers:
                poller.stop()
            rss = rss_bytes(server.pid)
        finally:
            server.terminate()
            server.wait(30)
            log.close()
    print(f"webhook of {args.storm} alerts ({len(body) / 1e6:.1f} MB) with {args.active} active: "
          f"answered in {answered:.2f} s; server RSS {rss / 2**20:.0f} MiB")
    for poller in pollers:
        path = poller.path
        print(f"{path:18} quiet        {ms(quiet[path])}")
        print(f"{'':18} during post  {ms(poller.between(began, ended))}")
        print(f"{'':18} post + {args.after:g} s  {ms(poller.between(began, ended + args.after))}")


if __name__ == "__main__":
    main()
