"""The job page of a job above DETAIL_GPUS in a real Chromium: the GPU x time heatmap has every GPU,
the utilisation chart is the band plus the straggler's own line, memory and power are bands, the
alerts timeline is drawn, and nothing logs an error. Served in process (uvicorn in a thread) over
the day-long store of tests/dashboard/large_job.py (Chromium: the ``page`` fixture, conftest.py)."""
from __future__ import annotations

import pytest

from cwkernel.server import build_app
from dashboard.component import dashboard_component
from dashboard.context import DashboardContext
from tests.dashboard.chromium import served, shot
from tests.dashboard.large_job import JOB_ID, LAST, Scheduler, build_store
from tests.dashboard.pod_jobs import END as POD_END, pod_store
from tsdb.client import LocalQueryClient
from tsdb.promql.engine import Engine

pytestmark = pytest.mark.real_component


@pytest.fixture(scope="module")
def server():
    ctx = DashboardContext(LocalQueryClient(Engine(build_store())), scheduler=Scheduler(), clock=lambda: LAST + 1)
    with served(build_app([dashboard_component(ctx)])) as base:
        yield base


def test_large_job_page_draws_bands_stragglers_heatmap_and_alerts(server, page):
    page.goto(f"{server}/jobs/{JOB_ID}?range=24h&refresh=0")
    page.wait_for_selector("#util-heat .main-svg")
    page.wait_for_selector("#timeline .main-svg")
    traces = page.evaluate("""() => Object.fromEntries(['util-lines', 'util-heat', 'memory', 'power', 'timeline']
        .map(id => [id, document.getElementById(id).data.map(t => [t.type, t.name || '', t.y ? t.y.length : 0])]))""")
    assert len(traces["util-heat"]) == 1 and traces["util-heat"][0][2] == 80  # every GPU a row
    for chart in ("util-lines", "memory", "power"):
        names = [name for _, name, _ in traces[chart]]
        assert names[:3] == ["min", "min – max of the job's GPUs", "median GPU"], chart
        assert names[3:] == ["gpu-004/5 (straggler)"], chart
    assert traces["timeline"][0][0] == "scatter" and "GpuXidError on gpu-002 GPU 3" in page.inner_text("#events")
    shot(page, "job-512-style-bands")
    assert page.errors == [] and page.foreign == []


def test_a_pods_page_names_its_namespace_and_says_why_it_has_no_continuity(page):
    """The overview's link to a pod (its job id encoded, ``/jobs/team-a%2Ftrainer-0``) in Chromium."""
    ctx = DashboardContext(LocalQueryClient(Engine(pod_store())), clock=lambda: POD_END)
    with served(build_app([dashboard_component(ctx)])) as base:
        page.goto(f"{base}/jobs/team-a%2Ftrainer-0?range=1h&refresh=0")
        page.wait_for_selector("#util-heat .main-svg")
        page.wait_for_selector("#continuity li")
        assert "team-a / trainer-0" in page.inner_text("#efficiency") and "user / account" not in page.inner_text("#efficiency")
        assert "not measured for a Kubernetes pod" in page.inner_text("#continuity")
        assert page.query_selector("#continuity-kpis") is None
        shot(page, "job-pod")
        assert page.errors == [] and page.foreign == []
