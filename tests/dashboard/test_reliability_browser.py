"""The /reliability page and the job page's Continuity section in a real Chromium, over the goodput
data set (tests/dashboard/reliability_data_set.py) served in process: the KPIs, the stacked bar
of interruptions per day by class, the lost-by-cause chart, the lemon nodes and the interruptions
table render the server's numbers; the job page of a job without a checkpoint signal says its
redone work is unknown. Nothing logs an error or leaves 127.0.0.1. Screenshots go to
test-artifacts/dashboard/."""
from __future__ import annotations

import pytest

from cwkernel.server import build_app
from dashboard.component import dashboard_component
from dashboard.context import DashboardContext
from tests.dashboard.chromium import served, shot
from tests.dashboard.reliability_data_set import END, evaluated_history
from tsdb.client import LocalQueryClient
from tsdb.promql.engine import Engine

pytestmark = pytest.mark.real_component
RANGE = f"range=3h&end={END:.0f}&refresh=0"


@pytest.fixture(scope="module")
def server():
    ctx = DashboardContext(LocalQueryClient(Engine(evaluated_history())), clock=lambda: END)
    with served(build_app([dashboard_component(ctx)])) as base:
        yield base


def test_the_reliability_page_renders_ettr_interruptions_by_day_and_lemons(server, page):
    page.goto(f"{server}/reliability?{RANGE}")
    page.wait_for_selector("#per-day .main-svg")
    page.wait_for_selector("#lost-chart .main-svg")
    kpis = page.inner_text("#reliability-kpis")
    assert "≤ 76.9%" in kpis and "64" in kpis
    stacked = page.evaluate("() => document.getElementById('per-day').data.map(t => [t.name, t.x, t.y])")
    assert stacked == [["GPU (XID, lost GPU, PCIe)", ["2023-11-14", "2023-11-15"], [1, 0]],
                       ["HBM / ECC", ["2023-11-14", "2023-11-15"], [1, 0]],
                       ["unknown", ["2023-11-14", "2023-11-15"], [0, 1]]]
    assert page.evaluate("() => document.getElementById('per-day').layout.barmode") == "stack"
    assert page.locator("#lemons tbody tr").count() == 2
    rows = page.locator("#interruptions tbody tr")
    assert rows.count() == 3
    assert "GpuEccUncorrectableErrors on n5 GPU 1" in page.inner_text("#interruptions")
    assert "unknown (no checkpoint signal)" in page.inner_text("#interruptions")
    assert page.locator("#range").input_value() == "3h"
    shot(page, "reliability")
    assert page.errors == [] and page.foreign == []


def test_the_job_page_shows_continuity(server, page):
    page.goto(f"{server}/jobs/202?{RANGE}")
    page.wait_for_selector("#continuity-kpis")
    text = page.inner_text("#continuity")
    assert "≤ 94.4%" in text  # ETTR, an upper bound: no checkpoint signal
    assert "unknown (no checkpoint signal)" in text
    assert "HBM / ECC" in page.inner_text("#continuity-interruptions")
    shot(page, "job-continuity")
    assert page.errors == [] and page.foreign == []
