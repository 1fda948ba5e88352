"""The fabric page in a real Chromium (issue 19 item 5): a generated leaf/spine fabric of 16 nodes
with three cable faults, in an embedded store, served in process. The graph colours the flapping
leaf-spine cable and the leaf with a cable down; the worst cables list names each cable by both
ends with the job behind it; a click on a switch opens its page; a node's page links to its
cable's switch. Nothing logs an error or leaves 127.0.0.1. Screenshots go to
test-artifacts/dashboard/."""
from __future__ import annotations

import pytest

from cwkernel.server import build_app
from dashboard.component import dashboard_component
from dashboard.context import DashboardContext
from tests.dashboard.chromium import served, shot
from bench.fabric_fleet import fat_tree
from tsdb.client import LocalQueryClient
from tsdb.promql.engine import Engine

pytestmark = pytest.mark.real_component


@pytest.fixture(scope="module")
def tree():
    return fat_tree(16, hosts_per_leaf=4, leaves_per_pod=4, spines_per_pod=2, core_uplinks=0)


@pytest.fixture(scope="module")
def server(tree):
    ctx = DashboardContext(LocalQueryClient(Engine(tree.store)), clock=lambda: tree.last)
    with served(build_app([dashboard_component(ctx)])) as base:
        yield base


def test_the_graph_colours_bad_cables_and_the_list_names_both_ends_and_the_job(server, tree, page):
    errors, flapping, down = tree.faults
    page.goto(f"{server}/fabric?refresh=0")
    page.wait_for_selector("#fabric-graph rect.sw")
    assert page.locator("#fabric-graph rect.sw").count() == len(tree.leaves) + len(tree.spines) == 6
    leaf, _, spine, _ = flapping.link
    edge = page.locator(f'#fabric-graph line[data-a="{leaf}"][data-b="{spine}"]')
    assert edge.get_attribute("class") == "e3"  # flapping
    assert page.locator("#fabric-graph line.e0").count() == 7
    assert "h4" in page.get_attribute(f'#fabric-graph rect.sw[data-switch="{down.link[0]}"]', "class")
    stroke = page.evaluate("l => getComputedStyle(l).stroke", edge.element_handle())
    healthy = page.evaluate("l => getComputedStyle(l).stroke", page.locator("#fabric-graph line.e0").first.element_handle())
    assert stroke != healthy
    rows = page.locator("#worst tbody tr")
    assert rows.count() == 3
    first = rows.nth(0).inner_text()  # sorted by health, worst first: the cable that is down
    switch, port, peer, peer_port = down.link
    assert f"{switch} port {port}" in first and f"{peer} port {peer_port}" in first and "down" in first
    assert tree.job_of["gpu-00014"] in first
    errors_row = rows.filter(has_text=f"{errors.link[0]} port {errors.link[1]}").inner_text()
    assert "switch 40" in errors_row and "errors" in errors_row
    shot(page, "fabric")
    assert page.errors == [] and page.foreign == []


def test_a_click_on_a_switch_opens_its_page_with_its_ports(server, tree, page):
    leaf, leaf_port, spine, spine_port = tree.faults[1].link
    page.goto(f"{server}/fabric?refresh=0")
    page.locator(f'#fabric-graph rect.sw[data-switch="{spine}"]').click()
    page.wait_for_selector("#ports tbody tr")
    assert page.url.startswith(f"{server}/fabric/switch/{spine}")
    assert page.locator("#ports tbody tr").count() == 4
    row = page.locator("#ports tbody tr").nth(int(spine_port) - 1).inner_text()
    assert f"{leaf} port {leaf_port}" in row and "flapping" in row
    assert page.locator("#switch-nodes a").count() == 16
    shot(page, "fabric-switch")
    assert page.errors == [] and page.foreign == []


def test_a_node_page_links_to_its_cable_and_switch(server, tree, page):
    switch, port, _, _ = tree.host_link["gpu-00014"]
    page.goto(f"{server}/nodes/gpu-00014?refresh=0")
    page.wait_for_selector("#cables tbody tr")
    row = page.locator("#cables tbody tr").first
    assert "mlx5_0" in row.inner_text() and "down" in row.inner_text()
    shot(page, "node-fabric-cables")
    row.locator("a").click()
    page.wait_for_selector("#ports tbody tr")
    assert page.url.startswith(f"{server}/fabric/switch/{switch}")
    own = page.locator("#ports tbody tr").nth(int(port) - 1).inner_text()
    assert "gpu-00014" in own and "down" in own
    assert page.errors == [] and page.foreign == []


def test_at_16384_nodes_the_graph_draws_every_switch_and_only_the_bad_pairs(page):
    big = fat_tree(16_384, hosts_per_leaf=8, spines_per_pod=8, gpu_jobs=False)  # the simulator's shape
    switches = len(big.leaves) + len(big.spines) + len(big.cores)
    ctx = DashboardContext(LocalQueryClient(Engine(big.store)), clock=lambda: big.last)
    with served(build_app([dashboard_component(ctx)])) as base:
        page.goto(f"{base}/fabric?refresh=0")
        page.wait_for_selector("#fabric-graph rect.sw", timeout=60_000)
        assert page.locator("#fabric-graph rect.sw").count() == switches == 2_816
        assert page.locator("#fabric-graph line").count() == 1  # the flapping leaf-spine pair, nothing healthy
        leaf, _, spine, _ = big.faults[1].link
        assert page.get_attribute(f'#fabric-graph line[data-a="{leaf}"][data-b="{spine}"]', "class") == "e3"
        assert "only the 1 switch pairs with a bad cable are drawn" in page.inner_text("#graph-note")
        assert page.locator("#worst tbody tr").count() == 3
        shot(page, "fabric-16384")
    assert page.errors == [] and page.foreign == []
