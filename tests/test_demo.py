"""`clusterwatch demo` (what `make demo` runs): a simulated cluster scraped and polled by the server."""
from __future__ import annotations

import sys
import time

import httpx
import pytest

from tests.realcomponents import free_port, wait_http

pytestmark = pytest.mark.real_component


def query(base: str, promql: str) -> list[dict]:
    body = httpx.get(f"{base}/api/v1/query", params={"query": promql}, timeout=10).json()
    assert body["status"] == "success", body
    return body["data"]["result"]


def test_demo_serves_the_simulated_cluster_with_jobs_joined(tmp_path, process_factory):
    port, sim_port = free_port(), free_port()
    proc = process_factory([sys.executable, "-m", "clusterwatch", "demo", "--nodes", "6", "--listen", f"127.0.0.1:{port}",
                            "--simulator-listen", f"127.0.0.1:{sim_port}", "--state-dir", str(tmp_path / "demo"),
                            "--scrape-interval", "1s"])
    base = f"http://127.0.0.1:{port}"
    wait_http(f"{base}/-/ready", timeout=120, proc=proc)
    deadline = time.monotonic() + 60
    joined: list = []
    while time.monotonic() < deadline:
        joined = query(base, "sum by (job_id) (gpu_utilization_ratio * on (instance, gpu) group_left (job_id)"
                             " slurm_job_gpu_info)")
        if joined and query(base, "count(gpu_up)"):
            break
        time.sleep(1)
    assert float(query(base, "count(gpu_up)")[0]["value"][1]) == 48
    truth = httpx.get(f"http://127.0.0.1:{sim_port}/api/fleet").json()
    running = {str(j["job_id"]) for j in truth["jobs"] if j["state"] == "RUNNING"}
    assert joined, "no GPU joined to a Slurm job"
    assert {r["metric"]["job_id"] for r in joined} <= running
    # The node exporter's view and the scheduler's agree on which job holds which GPU.
    from_exporter = query(base, "count by (job_id) (gpu_job_info)")
    assert {r["metric"]["job_id"] for r in from_exporter if r["metric"].get("job_id")} & running
