"""``clusterwatch serve`` as a real process: scrapes a file_sd target, answers the API, exposes
its self-metrics, and on SIGTERM stops cleanly and writes its snapshot."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.realcomponents import free_port, wait_http
from tests.tsdb.scrape_pages import PAGES


def test_bad_flags_exit_2_naming_the_option() -> None:
    result = subprocess.run([sys.executable, "-m", "clusterwatch", "serve", "--scrape-interval", "soon"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "scrape_interval" in result.stderr
    result = subprocess.run([sys.executable, "-m", "clusterwatch", "serve", "--file-sd", "/nonexistent.json"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "file_sd: no such file" in result.stderr


@pytest.mark.real_component
def test_serve_scrapes_answers_and_stops_on_sigterm(server: str, tmp_path: Path, process_factory) -> None:
    PAGES["/metrics"] = 'gpu_utilization_ratio{gpu="0"} 0.75\n'
    sd = tmp_path / "sd.json"
    sd.write_text(json.dumps([{"targets": [server], "labels": {"instance": "gpu-001"}}]))
    port = free_port()
    snapshot = tmp_path / "store.npz"
    proc = process_factory([sys.executable, "-m", "clusterwatch", "serve", "--listen", f"127.0.0.1:{port}",
                            "--file-sd", str(sd), "--scrape-interval", "1s", "--snapshot", str(snapshot)],
                           name="serve")
    base = f"http://127.0.0.1:{port}"
    wait_http(f"{base}/-/ready", timeout=30, proc=proc)
    deadline = time.monotonic() + 15
    result: list = []
    while time.monotonic() < deadline and not result:
        body = httpx.post(f"{base}/api/v1/query", data={"query": "avg by (instance) (gpu_utilization_ratio)"}).json()
        result = body["data"]["result"]
        time.sleep(0.3)
    assert result == [{"metric": {"instance": "gpu-001"}, "value": result[0]["value"]}]
    assert result[0]["value"][1] == "0.75"
    metrics = httpx.get(f"{base}/metrics").text
    for name in ("clusterwatch_tsdb_series", "clusterwatch_scrapes_total", "clusterwatch_engine_queries_total",
                 "clusterwatch_scrape_last_success_timestamp_seconds"):
        assert name in metrics
    targets = httpx.get(f"{base}/api/v1/targets").json()["data"]["activeTargets"]
    assert targets[0]["health"] == "up" and targets[0]["labels"]["instance"] == "gpu-001"
    proc.popen.send_signal(signal.SIGTERM)
    assert proc.popen.wait(20) == 0, proc.log_tail()
    assert snapshot.exists()
