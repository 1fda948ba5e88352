"""``clusterwatch serve --prometheus-url``: the same JSON views against a real Prometheus (Debian's
``prometheus``) scraping a small simulator through its file_sd, with no embedded store. The GPU
counts, nodes and jobs must match the simulator's ground truth (/api/fleet)."""
from __future__ import annotations

import sys
import time

import httpx
import pytest

from dashboard.context import DashboardContext
from dashboard.params import TimeRange
from dashboard.views import jobs as job_views
from tsdb.client import HTTPQueryClient

from tests.realcomponents import free_port, require_binary, until, wait_http

pytestmark = pytest.mark.real_component

NODES = 3


def test_serve_reads_every_view_from_a_real_prometheus(tmp_path, process_factory, monkeypatch):
    prometheus = require_binary("prometheus")
    sim_port, prom_port, serve_port = free_port(), free_port(), free_port()
    sim, prom, base = (f"http://127.0.0.1:{p}" for p in (sim_port, prom_port, serve_port))
    file_sd = tmp_path / "fleet.json"
    simulator = process_factory([sys.executable, "-m", "clusterwatch", "simulate", "--nodes", str(NODES), "--listen",
                                 f"127.0.0.1:{sim_port}", "--file-sd", str(file_sd)], name="simulate")
    wait_http(f"{sim}/-/healthy", timeout=60, proc=simulator)
    config = tmp_path / "prometheus.yml"
    # The GPU nodes through the simulator's file_sd, and serve's own /metrics, where the scheduler
    # adapter's slurm_* series are exposed when there is no embedded store to ingest them.
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        "  - job_name: gpu-nodes\n"
        "    honor_labels: true\n"
        f"    file_sd_configs: [{{files: ['{file_sd}'], refresh_interval: 1s}}]\n"
        "  - job_name: clusterwatch\n"
        "    honor_labels: true\n"  # as docs/operations.md: slurm_job_gpu_info's instance is the GPU's node
        f"    static_configs: [{{targets: ['127.0.0.1:{serve_port}']}}]\n")
    proc = process_factory([prometheus, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
                            f"--web.listen-address=127.0.0.1:{prom_port}"])
    wait_http(f"{prom}/-/ready", timeout=60, proc=proc)
    serve = process_factory([sys.executable, "-m", "clusterwatch", "serve", "--listen", f"127.0.0.1:{serve_port}",
                             "--prometheus-url", prom, "--scheduler", "simulator", "--scheduler-url", f"{sim}/slurm",
                             "--scheduler-interval", "1s"], name="serve")
    wait_http(f"{base}/-/ready", timeout=60, proc=serve)
    fleet = httpx.get(f"{sim}/api/fleet", timeout=10).json()
    gpus = sum(len(n["gpus"]) for n in fleet["nodes"])

    def overview():
        body = httpx.get(f"{base}/api/overview", params={"range": "15m"}, timeout=20).json()
        scraped = sum(v is not None for row in body["heatmap"]["z"] for v in row)
        return body if body["kpis"]["gpus_total"] == gpus == scraped and body["kpis"]["jobs_running"] else None

    # The scheduler's poll knows the GPUs at once; wait until Prometheus has scraped them too.
    view = until(overview, 60, "the overview to show every simulated GPU, scraped, and the running jobs")
    heat = view["heatmap"]
    assert heat["nodes"] == sorted(n["name"] for n in fleet["nodes"])
    assert [sum(v is not None for v in row) for row in heat["z"]] == [len(n["gpus"]) for n in
                                                                     sorted(fleet["nodes"], key=lambda n: n["name"])]
    assert view["kpis"]["nodes_total"] == NODES
    assert {(g["rack"], n) for g in view["racks"] for n in g["nodes"]} == {(n["rack"], n["name"]) for n in fleet["nodes"]}

    fleet = httpx.get(f"{sim}/api/fleet", timeout=10).json()
    rows = {r["job_id"]: r for r in httpx.get(f"{base}/api/jobs", timeout=20).json()["jobs"]}
    running = [j for j in fleet["jobs"] if j["state"] == "RUNNING" and str(j["job_id"]) in rows]
    assert running
    for job in running:
        assert rows[str(job["job_id"])]["gpus"] == job["gpus_total"]
    biggest = max(running, key=lambda j: j["gpus_total"])

    def job_view():
        body = httpx.get(f"{base}/api/jobs/{biggest['job_id']}", params={"range": "15m"}, timeout=20).json()
        return body if len(body["gpus"]) == biggest["gpus_total"] else None

    until(job_view, 30, f"job {biggest['job_id']}'s GPUs")
    # Above DETAIL_GPUS a job's memory and power bands are Prometheus's own min, quantile and max
    # over the job's GPUs: the same as every GPU's series reduced here, on the same range.
    def scraped_job():
        at = time.time() - 2
        ctx, tr = DashboardContext(HTTPQueryClient(prom), clock=lambda: at), TimeRange(at - 600, at)
        try:
            view = job_views.job(ctx, tr, str(biggest["job_id"]))
        except job_views.JobNotFound:  # serve's slurm_* not scraped by Prometheus yet
            return None
        return (ctx, tr, view) if any(v is not None for v in view.bands["memory_bytes"].max) else None

    ctx, tr, detailed = until(scraped_job, 30, f"job {biggest['job_id']}'s slurm_* and GPU series in Prometheus")
    monkeypatch.setattr(job_views, "DETAIL_GPUS", 0)
    banded = job_views.job(ctx, tr, str(biggest["job_id"]))
    assert detailed.per_gpu_detail and not banded.per_gpu_detail and banded.timestamps == detailed.timestamps
    for name, tolerance in (("memory_bytes", 1e6), ("power_watts", 0.1)):
        for row in ("min", "median", "max"):
            theirs, ours = getattr(banded.bands[name], row), getattr(detailed.bands[name], row)
            assert len(theirs) == len(ours) and any(v is not None for v in theirs)
            assert theirs == [pytest.approx(v, abs=tolerance) if v is not None else None for v in ours], (name, row)
    assert banded.efficiency.memory_peak_bytes == detailed.efficiency.memory_peak_bytes
    node = fleet["nodes"][0]
    body = httpx.get(f"{base}/api/nodes/{node['name']}", params={"range": "15m"}, timeout=20).json()
    assert set(body["gpu_series"]["utilization"]) == {str(g["index"]) for g in node["gpus"]}
    assert httpx.get(f"{base}/api/alerts-view", timeout=20).status_code == 200
    # Nothing here reads an embedded store: serve has none, and says so by not serving its API.
    assert httpx.get(f"{base}/api/v1/query", params={"query": "up"}).status_code == 404
