"""The overview at scale in a real Chromium: a generated fleet of 2,048 nodes (above
NODE_CELLS_FROM_NODES) in an embedded store, its dashboard recording rules evaluated once, served
in process (uvicorn in a thread). One cell per node, grouped by rack; the colour selector
recolours them; a rack opens its nodes, a node its GPUs; nothing logs an error or leaves
127.0.0.1. Screenshots go to test-artifacts/dashboard/. (The small fleet's per-GPU heatmap:
tests/dashboard/test_browser.py.)"""
from __future__ import annotations

import pytest

from bench.recorded import record_once
from cwkernel.server import build_app
from dashboard.component import dashboard_component
from dashboard.context import DashboardContext
from dashboard.definitions import NODE_CELLS_FROM_NODES
from tests.dashboard.chromium import served, shot
from tests.dashboard.fleet import GPUS, NODES_PER_RACK, large_fleet
from tsdb.client import LocalQueryClient
from tsdb.promql.engine import Engine

pytestmark = pytest.mark.real_component
NODES = 2_048


@pytest.fixture(scope="module")
def fleet():
    assert NODES >= NODE_CELLS_FROM_NODES
    generated = large_fleet(NODES)
    record_once(generated.store, generated.last)
    return generated


@pytest.fixture(scope="module")
def server(fleet):
    ctx = DashboardContext(LocalQueryClient(Engine(fleet.store)), clock=lambda: fleet.last)
    with served(build_app([dashboard_component(ctx)])) as base:
        yield base


def cell_colours(page) -> list[str]:
    return page.evaluate("() => [...document.querySelectorAll('#nodemap .ncell')].slice(0, 64)"
                         ".map(c => c.className + ' ' + c.style.background)")


def test_node_cells_render_recolour_and_drill_down_to_a_rack_and_a_node(server, fleet, page):
    page.goto(f"{server}/?refresh=0")
    page.wait_for_selector("#nodemap .ncell")
    assert page.locator("#nodemap .ncell").count() == NODES
    assert page.locator("#nodemap .rackblock").count() == NODES // NODES_PER_RACK
    assert page.locator("#heatmap").count() == 0
    assert "dashboard recording rules" in page.inner_text("#color-note")
    assert page.locator("#kpis .kpi").nth(0).locator(".value").inner_text() == f"{NODES * GPUS}"
    shot(page, "overview-nodes-util")

    by_util = cell_colours(page)
    page.select_option("#color", "temperature")
    page.wait_for_function("() => document.getElementById('color-note').textContent.includes('hottest')")
    assert "color=temperature" in page.url and cell_colours(page) != by_util
    page.select_option("#color", "status")
    page.wait_for_function("() => document.querySelector('#nodemap .ncell').className.includes('s-')")
    drained = page.locator(f'#nodemap .ncell[data-node="{fleet.drained}"]')
    assert "s-drain" in drained.get_attribute("class")
    shot(page, "overview-nodes-status")

    page.locator('#nodemap .rackblock[data-rack="rack-001"]').click()
    page.wait_for_selector("#rack-nodes .bigcell")
    assert page.locator("#rack-nodes .bigcell").count() == NODES_PER_RACK
    assert "rack=rack-001" in page.url
    assert page.locator("#rack-table tbody tr").count() == NODES_PER_RACK
    node, gpu = fleet.xid_gpu
    page.locator(f'#rack-nodes [data-node="{node}"]').click()
    page.wait_for_selector("#gpu-table tbody tr")
    assert page.locator("#gpu-table tbody tr").count() == GPUS
    assert "unhealthy" in page.locator("#gpu-table tbody tr").nth(gpu).inner_text()
    assert page.get_attribute("#node-page", "href").startswith(f"/nodes/{node}")
    shot(page, "overview-nodes-drilldown")
    assert page.errors == [] and page.foreign == []


def test_a_deep_link_opens_the_rack_and_the_node_and_a_refresh_keeps_them(server, fleet, page):
    node = fleet.nodes[40]
    page.goto(f"{server}/?refresh=0&color=util_min&rack=rack-002&node={node}")
    page.wait_for_selector("#gpu-table tbody tr")
    assert page.input_value("#color") == "util_min"
    assert page.locator("#rack-nodes .bigcell").count() == NODES_PER_RACK
    page.evaluate("() => CW.refresh()")
    page.wait_for_selector("#gpu-table tbody tr")
    assert page.locator("#gpu-table tbody tr").count() == GPUS
    assert page.errors == [] and page.foreign == []
