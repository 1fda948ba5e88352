"""Issue 20's "done when": on one data set in the embedded store (the scheduler's job states,
restart counts and interruption records, the pack's alerts, a checkpoint signal, and the
clusterwatch-reliability group evaluated over them), the job page's Continuity API,
``/api/reliability`` and ``clusterwatch report --format json`` (asking the server, and computing
from its Prometheus API) return the same ETTR, lost time by cause and interruptions over the same
range, and those are the definitions' expected values (tests/dashboard/reliability_data_set.py)."""
from __future__ import annotations

import json

import httpx
import pytest

from clusterwatch.cli import main
from cwkernel.server import Component, build_app
from dashboard.component import dashboard_component
from dashboard.context import DashboardContext
from tests.dashboard.chromium import served
from tests.dashboard.reliability_data_set import (END, EXPECTED_CLUSTER_ETTR, EXPECTED_ETTR, EXPECTED_LOST_GPU_MINUTES,
                                                  evaluated_history)
from tsdb import api as prometheus_api
from tsdb.client import LocalQueryClient
from tsdb.promql.engine import Engine

RANGE = {"range": "3h", "end": str(END)}  # the data set's three hours


@pytest.fixture(scope="module")
def server():
    store = evaluated_history()
    engine = Engine(store)
    ctx = DashboardContext(LocalQueryClient(engine), clock=lambda: END)
    app = build_app([dashboard_component(ctx), Component("tsdb", routers=[prometheus_api.build_router(engine, store)])])
    with served(app) as base:
        yield base


def report(capsys, *args: str) -> str:
    assert main(["report", "--range", "3h", "--end", str(END), *args]) == 0
    return capsys.readouterr().out


def test_job_page_reliability_page_and_report_agree(server, capsys):
    page = httpx.get(f"{server}/api/reliability", params=RANGE, timeout=60).json()
    asked = json.loads(report(capsys, "--format", "json", "--server", server))
    computed = json.loads(report(capsys, "--format", "json", "--prometheus-url", server))
    for other in (asked, computed):
        assert {k: v for k, v in other.items() if k != "time"} == {k: v for k, v in page.items() if k != "time"}

    assert page["ettr"] == pytest.approx(EXPECTED_CLUSTER_ETTR) and page["ettr_upper_bound"] is True
    rows = {row["job_id"]: row for row in page["jobs"]}
    for job_id, lost in EXPECTED_LOST_GPU_MINUTES.items():
        continuity = httpx.get(f"{server}/api/jobs/{job_id}/continuity", params=RANGE, timeout=60).json()
        assert continuity["account"] == rows[job_id]
        assert continuity["account"]["ettr"] == pytest.approx(EXPECTED_ETTR[job_id])
        assert {c: None if v is None else round(v * 60, 6) for c, v in continuity["account"]["lost_gpu_hours"].items()} == lost
        assert continuity["interruptions"] == [i for i in page["interruptions"] if i["job_id"] == job_id]
    assert [(i["job_id"], i["ordinal"], i["cause"], i["node"]) for i in page["interruptions"]] == [
        ("201", 1, "gpu", "n2"), ("202", 1, "hbm_ecc", "n5"), ("201", 2, "unknown", "")]


def test_the_continuity_section_says_redone_work_is_unknown_without_a_checkpoint_signal(server):
    body = httpx.get(f"{server}/api/jobs/202/continuity", params=RANGE, timeout=60).json()
    assert body["lost_seconds"]["redone_work"] is None and body["account"]["ettr_upper_bound"] is True
    assert any("unknown (no checkpoint signal)" in note for note in body["notes"])
    assert body["lost_seconds"]["restart_wait"] == 600.0  # 10 minutes of the job's own time
    assert httpx.get(f"{server}/api/jobs/bad%22id/continuity", timeout=30).status_code == 400


def test_the_text_report_prints_the_same_numbers(server, capsys):
    text = report(capsys, "--server", server)
    assert "cluster ETTR (GPU-hour weighted): <= 76.9%" in text
    assert "interruptions: 3; MTBI per 1,000 GPUs: 3.8 min (64 GPUs)" in text
    assert "2023-11-14     2  (GPU (XID, lost GPU, PCIe) 1, HBM / ECC 1)" in text
    assert "2023-11-15     1  (unknown 1)" in text
    assert "job 201 #2 (PENDING): unknown: no alert on its nodes, unknown; redone 10 min" in text
    assert "job 202 #1 (NODE_FAIL): HBM / ECC: GpuEccUncorrectableErrors on n5 GPU 1; redone unknown (no checkpoint signal)" in text


def test_the_report_refuses_what_it_cannot_use(server, capsys):
    assert main(["report", "--range", "40d", "--server", server]) == 2
    assert "range" in capsys.readouterr().err
    assert main(["report", "--server", "file:///etc/passwd"]) == 2
    assert "not an http(s) URL" in capsys.readouterr().err
    assert main(["report", "--range", "1h", "--server", f"{server}/nowhere"]) == 2
    assert "HTTP 404" in capsys.readouterr().err


def test_the_page_is_served_with_its_view_and_a_nav_link(server):
    html = httpx.get(f"{server}/reliability", params=RANGE, timeout=60).text
    assert '<a href="/reliability">Reliability</a>' in html and 'data-api="/api/reliability"' in html
    assert "reliability.js" in html and "plotly-cartesian" in html
    job_page = httpx.get(f"{server}/jobs/201", params=RANGE, timeout=60).text
    assert "job_continuity.js" in job_page
