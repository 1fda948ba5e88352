"""The overview at scale (docs/dashboard.md#the-overview-at-scale): from NODE_CELLS_FROM_NODES
nodes one cell per node, grouped by rack, coloured by a per-node aggregate, every number read from
one series per node or per fleet (the dashboard's recording rules when they run, else the same
aggregations asked with ``by (instance)``), the same KPIs as the per-GPU overview on the same data,
and the drill-down to one node's GPUs reading only that node."""
from __future__ import annotations

import gzip
import re
from pathlib import Path

import pytest

import dashboard.definitions as definitions
from bench.recorded import record_once
from dashboard.context import DashboardContext
from dashboard.params import TimeRange
from dashboard.views.overview import STATUS_CODES, overview
from dashboard.views.overview_nodes import NODE_COLORS, node_gpus
from tests.dashboard.fleet import GPUS, large_fleet
from tests.dashboard.query_log import RecordingClient
from tsdb.client import LocalQueryClient
from tsdb.promql.engine import Engine

RULES = Path(__file__).resolve().parents[2] / "alerts" / "rules"
NODES = 64
# The raw per-GPU families: a query naming one makes the engine read every GPU's series.
PER_GPU = re.compile(r"(?<![:\w])(gpu_up|gpu_utilization_ratio|gpu_temperature_celsius|gpu_memory_used_bytes|"
                     r"gpu_power_watts|gpu_job_info|slurm_job_gpu_info|gpu_xid_errors_total|gpu_remapped_rows_\w+)\b")


@pytest.fixture(scope="module")
def fleet():
    return large_fleet(NODES)


def view(store, at: float, color: str = "util", cells_from: int = 1, monkeypatch=None):
    client = RecordingClient(Engine(store))
    monkeypatch.setattr(definitions, "NODE_CELLS_FROM_NODES", cells_from)
    return overview(DashboardContext(query=client, clock=lambda: at), TimeRange(at - 900, at), color), client


def test_a_fleet_from_the_threshold_up_gets_one_cell_per_node_grouped_by_rack(fleet, monkeypatch):
    model, _ = view(fleet.store, fleet.last, monkeypatch=monkeypatch)
    assert model.heatmap is None and model.racks == [] and model.nodes is not None
    racks = model.nodes.racks
    assert [r.rack for r in racks] == [f"rack-{i:03d}" for i in (1, 2)]
    assert [n for r in racks for n in r.nodes] == fleet.nodes
    cells = {n: (v, s, u, g) for r in racks for n, v, s, u, g in zip(r.nodes, r.value, r.status, r.unhealthy_gpus, r.gpus)}
    idle_node = fleet.idle_gpu[0]
    expected_mean = fleet.util[idle_node] * (GPUS - 1) / GPUS * 100
    assert cells[idle_node][0] == round(expected_mean)  # mean utilisation of the node's GPUs, in %
    assert cells[fleet.nodes[0]][0] == round(fleet.util[fleet.nodes[0]] * 100)
    assert STATUS_CODES[cells[fleet.drained][1]] == "drain" and STATUS_CODES[cells[fleet.nodes[0]][1]] == "alloc"
    assert STATUS_CODES[cells[fleet.xid_gpu[0]][1]] == "fault" and cells[fleet.xid_gpu[0]][2] == 1
    assert all(g == GPUS for *_, g in cells.values())


def test_below_the_threshold_the_overview_is_the_per_gpu_heatmap(fleet, monkeypatch):
    model, _ = view(fleet.store, fleet.last, cells_from=NODES + 1, monkeypatch=monkeypatch)
    assert model.nodes is None and len(model.heatmap.nodes) == NODES and len(model.racks) == 2


def test_node_cells_show_the_same_kpis_as_the_per_gpu_overview(fleet, monkeypatch):
    """One definition of each KPI: on a fleet whose idle GPU is idle over the whole range and
    the last 5 minutes alike, both shapes count the same."""
    nodes, _ = view(fleet.store, fleet.last, monkeypatch=monkeypatch)
    gpus, _ = view(fleet.store, fleet.last, cells_from=NODES + 1, monkeypatch=monkeypatch)
    assert nodes.kpis == gpus.kpis
    assert nodes.kpis.gpus_idle == 2 and nodes.kpis.gpus_unhealthy == 1 and nodes.kpis.nodes_drained == 1


def test_a_gpu_spinning_at_idle_sms_is_idle_and_not_busy_in_both_shapes(fleet, monkeypatch):
    """Busy and idle are each GPU's own measure (SM activity where it has GPM): a GPU 'utilised'
    by a kernel spinning on idle SMs (a hung collective) was counted busy by its utilisation and
    idle by its SM activity at once."""
    allocated = GPUS * len(fleet.allocated)
    for cells_from in (1, NODES + 1):
        model, _ = view(fleet.store, fleet.last, cells_from=cells_from, monkeypatch=monkeypatch)
        assert model.kpis.gpus_idle == 2, cells_from  # the idle GPU and the spinning one
        assert model.kpis.gpus_busy == allocated - 2, cells_from
    store = large_fleet(NODES).store
    record_once(store, fleet.last)
    recorded, _ = view(store, fleet.last, monkeypatch=monkeypatch)
    assert recorded.nodes.recorded and (recorded.kpis.gpus_busy, recorded.kpis.gpus_idle) == (allocated - 2, 2)


def test_recorded_and_computed_node_cells_agree_and_recorded_reads_no_gpu_series(fleet, monkeypatch):
    store = large_fleet(NODES).store
    for color in NODE_COLORS:
        computed, _ = view(store, fleet.last, color, monkeypatch=monkeypatch)
        assert not computed.nodes.recorded and "recording rules have not run" in computed.nodes.notes["source"]
    record_once(store, fleet.last)
    for color in NODE_COLORS:
        computed, _ = view(fleet.store, fleet.last, color, monkeypatch=monkeypatch)  # the store without rules
        recorded, client = view(store, fleet.last, color, monkeypatch=monkeypatch)
        assert recorded.nodes.recorded
        assert recorded.kpis == computed.kpis, color
        assert recorded.nodes.racks == computed.nodes.racks, color
        for query, rows in client.answers:
            assert not PER_GPU.search(query), f"{color}: reads every GPU's series: {query}"
            assert len(rows) <= NODES, query
            assert "slurm_node_flag{" not in query and "sum(" not in query, query  # recorded, not summed here
        per_node = [query for query, rows in client.answers if len(rows) == NODES]
        assert len(per_node) <= 4, per_node  # GPUs present, racks and up, the colour, GPUs allocated


def test_computed_node_cells_read_each_expression_once_and_get_one_series_per_node(fleet, monkeypatch):
    """Without the rules every per-node expression reads every GPU's series: each is asked once
    (the KPIs are summed from the per-node answers, not asked again inside a sum)."""
    for color in NODE_COLORS:
        _, client = view(fleet.store, fleet.last, color, monkeypatch=monkeypatch)
        queries = [query for query, _ in client.answers]
        assert len(queries) == len(set(queries)), queries
        assert sum(q.count("gpu_up[1h]") for q in queries) == 1
        assert sum(q.count("gpu_job_info") for q in queries) == 3  # GPUs allocated, busy, idle
        for query, rows in client.answers:
            assert len(rows) <= NODES, query
            assert all("gpu" not in r for r in rows) or len(rows) <= 1, query  # the one unhealthy GPU


def test_each_colour_is_its_per_node_aggregate(fleet, monkeypatch):
    node = fleet.nodes[3]  # allocated, every GPU at one level
    level = fleet.util[node]
    expected = {"util": level * 100, "util_min": level * 100, "temperature": 40 + 40 * level,
                "memory": GPUS * (1 + 60 * level), "power": GPUS * (100 + 500 * level), "unhealthy": 0,
                "status": STATUS_CODES.index("alloc")}
    for color, value in expected.items():
        model, _ = view(fleet.store, fleet.last, color, monkeypatch=monkeypatch)
        cells = {n: v for r in model.nodes.racks for n, v in zip(r.nodes, r.value)}
        assert cells[node] == pytest.approx(round(value) if value >= 10 else round(value, 1)), color
        assert model.nodes.color_by == color
    idle_node = fleet.idle_gpu[0]
    model, _ = view(fleet.store, fleet.last, "util_min", monkeypatch=monkeypatch)
    assert {n: v for r in model.nodes.racks for n, v in zip(r.nodes, r.value)}[idle_node] == 0
    model, _ = view(fleet.store, fleet.last, "errors", monkeypatch=monkeypatch)  # the per-GPU colour's nearest
    assert model.nodes.color_by == "unhealthy"
    assert {n: v for r in model.nodes.racks for n, v in zip(r.nodes, r.value)}[fleet.xid_gpu[0]] == 1


def test_the_dashboard_group_records_the_node_aggregates():
    """alerts/rules/recording.yml records NODE_AGGREGATES (dashboard/definitions.py) over the
    recording group's series, CLUSTER_TOTALS over those and the Slurm flags set: the page's
    fallback computes the same expressions over raw series."""
    import promql_parser as pp

    from alerts.evaluator.rulefile import load_rule_file

    group = next(g for g in load_rule_file(RULES / "recording.yml") if g.name == "clusterwatch-dashboard")
    rules = {rule.name: rule.expr for rule in group.rules}
    for record, template in definitions.NODE_AGGREGATES.items():
        assert str(pp.parse(rules[record])) == str(pp.parse(template.format(**definitions.NODE_SOURCES_RECORDED)))
    for record, expr in definitions.CLUSTER_TOTALS.values():
        assert str(pp.parse(rules[record])) == str(pp.parse(expr.format(**definitions.NODE_SOURCES_RECORDED)))
    assert str(pp.parse(rules[definitions.NODE_FLAGS_RECORDED])) == str(pp.parse(definitions.NODE_FLAGS_SET))


def test_node_drill_down_lists_its_gpus_reading_only_that_node(fleet, monkeypatch):
    node, gpu = fleet.xid_gpu
    client = RecordingClient(Engine(fleet.store))
    model = node_gpus(DashboardContext(query=client, clock=lambda: fleet.last), TimeRange(fleet.last - 900, fleet.last), node)
    assert [g.gpu for g in model.gpus] == list(range(GPUS))
    assert [g.unhealthy for g in model.gpus] == [g == gpu for g in range(GPUS)]
    level = fleet.util[node]
    assert model.gpus[0].utilization == pytest.approx(level) and model.gpus[0].power_watts == pytest.approx(100 + 500 * level)
    assert model.gpus[0].job_id == str(1000 + fleet.nodes.index(node) // 4)
    for query, rows in client.answers:  # every query names the node; the most: 4 gauges of its GPUs
        assert node in query and len(rows) <= 4 * GPUS, query


def test_node_cells_at_16384_nodes_fit_the_payload_goal():
    """One cell per node, parallel arrays per rack: at 16,384 nodes <= 300 kB gzip (issue 17)."""
    from dashboard.views.overview_nodes import NodeAnswers, node_cells
    from tsdb.client import QueryResult, Series

    names = [f"gpu-{i + 1:05d}" for i in range(16_384)]
    targets = {n: Series({"instance": n, "rack": f"rack-{i // 32 + 1:03d}"}, [0.0], [1.0]) for i, n in enumerate(names)}
    answers = NodeAnswers(present={n: 8 for n in names}, recorded=True, unhealthy=set(),
                          values={n: 0.3 + (i % 70) / 100 for i, n in enumerate(names)}, allocated={}, sums={},
                          targets=targets, alerts=QueryResult("vector"), flags={})
    cells = node_cells(answers, names, ["alloc"] * len(names), STATUS_CODES, {}, {n: 8 for n in names}, None, "util")
    size = len(gzip.compress(cells.model_dump_json().encode()))
    assert size <= 300_000, size


def test_racks_are_grouped_under_their_slurm_partition_when_the_scheduler_knows_it(fleet, monkeypatch):
    from scheduler.model import Node, SchedulerSnapshot, SourceInfo

    nodes = tuple(Node(name=n, state="ALLOCATED" if n in fleet.allocated else "IDLE", gpus=GPUS,
                       partitions=("train",) if i < NODES // 2 else ("infer", "train"))
                  for i, n in enumerate(fleet.nodes))

    class Scheduler:
        def snapshot(self):
            return SchedulerSnapshot(jobs=(), nodes=nodes, taken_at=fleet.last, source=SourceInfo("test"))

    monkeypatch.setattr(definitions, "NODE_CELLS_FROM_NODES", 1)
    ctx = DashboardContext(query=LocalQueryClient(Engine(fleet.store)), scheduler=Scheduler(), clock=lambda: fleet.last)
    model = overview(ctx, TimeRange(fleet.last - 900, fleet.last))
    assert [(r.partition, r.rack) for r in model.nodes.racks] == [("infer", "rack-002"), ("train", "rack-001")]
    assert model.nodes.racks[1].nodes == fleet.nodes[:NODES // 2]
    statuses = {STATUS_CODES[s] for r in model.nodes.racks for s in r.status}
    assert statuses == {"alloc", "ok", "fault"}  # Slurm's state; the XID'd node's fault wins
