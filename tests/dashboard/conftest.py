"""One `clusterwatch demo` (simulator + serve with the dashboard) shared by the dashboard tests."""
from __future__ import annotations

import sys
import time

import httpx
import pytest

from tests.realcomponents import ManagedProcess, free_port, wait_http

NODES = 6
TOKEN = "test-operator-secret"


@pytest.fixture(scope="package")
def demo(tmp_path_factory):
    state = tmp_path_factory.mktemp("demo")
    port, sim_port = free_port(), free_port()
    proc = ManagedProcess([sys.executable, "-m", "clusterwatch", "demo", "--nodes", str(NODES), "--listen",
                           f"127.0.0.1:{port}", "--simulator-listen", f"127.0.0.1:{sim_port}", "--state-dir",
                           str(state / "demo"), "--scrape-interval", "1s"], state / "demo.log",
                          env={"CLUSTERWATCH_OPERATORS": f"alice:{TOKEN}"})
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/-/ready", timeout=120, proc=proc)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # scraped GPUs and a scheduler poll with running jobs
            body = httpx.get(f"{base}/api/overview", timeout=10).json()
            if body["kpis"]["gpus_total"] == NODES * 8 and body["kpis"]["jobs_running"] and body["heatmap"]["job_ids"]:
                break
            time.sleep(0.5)
        yield {"base": base, "sim": f"http://127.0.0.1:{sim_port}", "proc": proc}
    finally:
        proc.stop()
