"""The nodes list and a node's page at scale: the list reads one series per node (the dashboard
rules' when they run), a node's page reads that node's series only, including its unhealthy GPUs
(before issue 17 the page asked the unhealthy expression of every GPU in the fleet and filtered)."""
from __future__ import annotations

import re

import pytest

import dashboard.definitions as definitions
from bench.recorded import record_once
from dashboard.context import DashboardContext
from dashboard.params import TimeRange
from dashboard.views.nodes import node, nodes
from tests.dashboard.fleet import large_fleet
from tests.dashboard.query_log import RecordingClient
from tsdb.promql.engine import Engine

NODES = 32
PER_GPU = re.compile(r"(?<![:\w])(gpu_up|gpu_utilization_ratio|gpu_xid_errors_total|gpu_remapped_rows_\w+)\b")


@pytest.fixture(scope="module")
def fleet():
    return large_fleet(NODES)


def context(store, at: float) -> tuple[DashboardContext, RecordingClient]:
    client = RecordingClient(Engine(store))
    return DashboardContext(query=client, clock=lambda: at), client


def test_a_node_page_reads_only_that_nodes_gpu_series(fleet):
    name = fleet.xid_gpu[0]
    ctx, client = context(fleet.store, fleet.last)
    view = node(ctx, TimeRange(fleet.last - 900, fleet.last), name)
    assert view.unhealthy_gpus == [fleet.xid_gpu[1]]
    unscoped = [q for q, _ in client.answers if PER_GPU.search(q) and name not in q]
    assert unscoped == []


def test_the_nodes_list_reads_per_node_series_once_recorded_and_agrees_with_the_computed_list(fleet, monkeypatch):
    monkeypatch.setattr(definitions, "RECORDED_UNHEALTHY_FROM_NODES", NODES)  # this fleet counts as large
    ctx, _ = context(fleet.store, fleet.last)
    computed = nodes(ctx, TimeRange(fleet.last - 900, fleet.last))
    store = large_fleet(NODES).store
    record_once(store, fleet.last)
    ctx, client = context(store, fleet.last)
    recorded = nodes(ctx, TimeRange(fleet.last - 900, fleet.last))
    assert [q for q, _ in client.answers if PER_GPU.search(q)] == []
    assert recorded.nodes == computed.nodes
    assert sum(row.unhealthy_gpus for row in recorded.nodes) == 1
