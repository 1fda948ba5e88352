"""The fabric page's JSON (issue 19 item 5) over a generated fat-tree in an embedded store: the
worst cables named by both ends with their health, which end counts the errors, since when, the
nodes behind them and the running jobs spanning those; a switch's ports; a node's cables; switch
names checked before they reach a query; what the page reads sized by switches and bad cables,
not by cables. (The browser: test_fabric_browser.py; at 16,384 nodes: bench/bench_fabric_page.py.)"""
from __future__ import annotations

from types import SimpleNamespace
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

import dashboard.views.fabric as fabric_view
from cwkernel.server import build_app
from dashboard.component import dashboard_component
from dashboard.context import DashboardContext
from dashboard.params import TimeRange
from dashboard.views.fabric import fabric
from bench.fabric_fleet import STEP, fat_tree
from tests.dashboard.query_log import RecordingClient
from tsdb.client import LocalQueryClient
from tsdb.promql.engine import Engine

SMALL = {"hosts_per_leaf": 4, "leaves_per_pod": 4, "spines_per_pod": 2, "core_uplinks": 0}
VENDOR = "MF0;switch-abc:MQM8700/U1"  # a vendor-default description kept as the name


def app_of(tree) -> TestClient:
    ctx = DashboardContext(LocalQueryClient(Engine(tree.store)), clock=lambda: tree.last)
    return TestClient(build_app([dashboard_component(ctx)]))


@pytest.fixture(scope="module")
def tree():
    return fat_tree(16, **SMALL)


@pytest.fixture(scope="module")
def client(tree):
    with app_of(tree) as client:
        yield client


def test_worst_cables_name_both_ends_their_health_end_since_and_the_jobs_behind_them(tree, client):
    view = client.get("/api/fabric").json()
    errors, flapping, down = tree.faults
    assert view["worst_total"] == 3 and view["links"] == len(tree.links) == 24
    assert view["links_by_health"] == {"healthy": 21, "errors": 1, "degraded": 0, "flapping": 1, "down": 1,
                                       "no data": 0}
    worst = view["worst_links"]
    ends = [(w["cable"]["switch"], w["cable"]["switch_port"], w["cable"]["peer"], w["cable"]["peer_port"])
            for w in worst]
    assert ends == [down.link, flapping.link, errors.link]  # down, flapping, errors: worst first
    host_down, isl, host_errors = worst
    assert host_down["cable"]["node"] == "gpu-00014" and host_down["state"]["health_name"] == "down"
    assert host_errors["state"]["worst_end"] == "switch" and host_errors["state"]["errors_per_second"]["switch"] == 40
    assert host_errors["since"] == tree.last - 3 * STEP and not host_errors["since_before_range"]
    # behind a host cable its node; behind a leaf's uplink every node of the leaf; with the jobs on them
    assert host_down["impact"]["nodes"] == ["gpu-00014"]
    assert host_down["impact"]["jobs"] == [{"job_id": tree.job_of["gpu-00014"], "nodes": 1}]
    leaf_nodes = sorted(n for n, leaf in tree.leaf_of.items() if leaf == flapping.link[0])
    assert isl["impact"]["nodes"] == leaf_nodes and isl["impact"]["node_count"] == 4
    assert {j["job_id"] for j in isl["impact"]["jobs"]} == {tree.job_of[n] for n in leaf_nodes if n in tree.job_of}
    assert isl["state"]["worst_end"] == "peer" and isl["state"]["downed_15m"]["peer"] == 7


def test_the_graph_colours_each_switch_pair_by_its_worst_cable_and_sums_host_cables_per_leaf(tree, client):
    graph = client.get("/api/fabric").json()["graph"]
    index = {name: i for i, name in enumerate(graph["switches"])}
    assert [graph["tiers"][t] for t in graph["tier"]] == ["spine"] * 2 + ["leaf"] * 4  # spines first: on top
    assert graph["edges"] == "all" and len(graph["edge_a"]) == 8
    leaf, _, spine, _ = tree.faults[1].link
    pairs = {(graph["switches"][a], graph["switches"][b]): h
             for a, b, h in zip(graph["edge_a"], graph["edge_b"], graph["edge_health"])}
    assert pairs[(leaf, spine)] == 3 and sum(pairs.values()) == 3
    down_leaf = tree.faults[2].link[0]
    assert graph["hosts"][index[down_leaf]] == 4 and graph["hosts_bad"][index[down_leaf]] == 1
    assert graph["worst"][index[down_leaf]] == 4 and graph["worst"][index[spine]] == 3


def test_a_switch_page_lists_its_ports_other_ends_health_and_what_is_behind_each(tree, client):
    leaf, leaf_port, spine, spine_port = tree.faults[1].link
    view = client.get(f"/api/fabric/switch/{spine}").json()
    assert view["tier"] == "spine" and view["bad_ports"] == 1 and len(view["ports"]) == 4
    port = next(p for p in view["ports"] if p["port"] == spine_port)
    assert (port["direction"], port["other_end"], port["other_port"]) == ("down", leaf, leaf_port)
    assert port["state"]["health_name"] == "flapping" and port["impact"]["node_count"] == 4
    assert view["impact"]["node_count"] == 16  # every node is under this spine
    page = client.get(f"/api/fabric/switch/{leaf}").json()
    assert [p["direction"] for p in page["ports"]] == ["host"] * 4 + ["up"] * 2
    assert client.get("/fabric/switch/leaf-0001").status_code == 200
    assert client.get("/fabric").status_code == 200


def test_a_node_page_lists_its_cables_and_their_switch_ports(tree, client):
    view = client.get("/api/nodes/gpu-00014").json()
    switch, port, _, _ = tree.host_link["gpu-00014"]
    assert view["fabric_links"] == [{"hca": "mlx5_0", "peer_port": "1", "switch": switch, "switch_port": port,
                                     "health": 4, "health_name": "down"}]


def test_switch_names_are_checked_before_any_query_and_vendor_names_work():
    tree = fat_tree(16, **SMALL, rename={"leaf-0002": VENDOR})
    with app_of(tree) as client:
        view = client.get(f"/api/fabric/switch/{quote(VENDOR, safe='')}").json()
        assert view["name"] == VENDOR and len(view["ports"]) == 6
        assert view["ports"][1]["state"]["health_name"] == "errors"  # the errors fault is on this leaf
        worst = client.get("/api/fabric").json()["worst_links"]
        assert VENDOR in [w["cable"]["switch"] for w in worst]
        for bad in ['leaf"} or vector(1) or {x="', "leaf\\", "a{b}", " leaf", "x" * 200]:
            response = client.get(f"/api/fabric/switch/{quote(bad, safe='')}")
            assert response.status_code == 400 and "not a switch name" in response.text
        assert client.get("/api/fabric/switch/leaf-9999").status_code == 404


def test_without_the_recorded_series_every_cable_reads_no_data_and_none_is_called_bad():
    tree = fat_tree(16, **SMALL, recorded=False)
    with app_of(tree) as client:
        view = client.get("/api/fabric").json()
    assert view["links_by_health"]["no data"] == 24 and view["worst_total"] == 0
    assert set(view["graph"]["worst"]) == {0}


def test_what_the_page_reads_is_sized_by_switches_and_bad_cables_not_cables(monkeypatch):
    monkeypatch.setattr(fabric_view, "EDGES_ALL_UP_TO", 1_000)  # as 16,384 nodes' 32,768 above 4,096
    tree = fat_tree(1_024, core_uplinks=4)
    switches = len(tree.leaves) + len(tree.spines) + len(tree.cores)
    assert len(tree.links) - len(tree.nodes) > fabric_view.EDGES_ALL_UP_TO  # only the bad pairs are drawn
    client = RecordingClient(Engine(tree.store))
    view = fabric(DashboardContext(client, clock=lambda: tree.last), TimeRange(tree.last - 3600, tree.last))
    assert view.graph.edges == "bad" and len(view.graph.edge_a) == 1
    assert view.graph.edges_omitted == len(tree.links) - len(tree.nodes) - 1
    assert len(view.graph.switches) == switches
    largest = max(len(labels) for _, labels in client.answers)
    assert largest <= 2 * switches < len(tree.links)  # switch info and per-switch counts; no per-cable read


def test_with_the_scheduler_adapter_its_running_jobs_are_the_ones_behind_a_cable(tree):
    class Scheduler:  # the adapter's cached snapshot is the authority on jobs when the server has one
        def snapshot(self):
            jobs = [SimpleNamespace(job_id="77", state="RUNNING", nodes=["gpu-00001", "gpu-00014"],
                                    gpu_indices={"gpu-00014": (0, 1, 2)}),
                    SimpleNamespace(job_id="78", state="PENDING", nodes=["gpu-00014"], gpu_indices={})]
            return SimpleNamespace(jobs=jobs)

    ctx = DashboardContext(LocalQueryClient(Engine(tree.store)), scheduler=Scheduler(), clock=lambda: tree.last)
    view = fabric(ctx, TimeRange(tree.last - 3600, tree.last))
    down = next(w for w in view.worst_links if w.cable.node == "gpu-00014")
    assert [(j.job_id, j.nodes) for j in down.impact.jobs] == [("77", 1)]
