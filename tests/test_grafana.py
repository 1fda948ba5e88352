"""Grafana dashboards: valid JSON models whose every query runs on the store ClusterWatch serves."""
from __future__ import annotations

import json
import subprocess
import sys

import promql_parser as pp
import pytest

from clusterwatch.grafana import DASHBOARDS, PROFILING, dashboard
from simulator.fleet import Fleet
from tsdb.client import LocalQueryClient
from tsdb.exposition import parse_exposition
from tsdb.promql.engine import Engine, parse_query
from tsdb.store import Store

T0 = 1_800_000_000.0


def _all(expr: str, **chosen: str) -> str:
    """``expr`` as Grafana sends it: each variable replaced by its value ("All" is .*)."""
    for name in ("job_id", "instance", "gpu"):
        expr = expr.replace(f"${name}", chosen.get(name, ".*"))
    return expr


def _selectors(expr):
    """Every vector selector of a parsed PromQL tree."""
    if isinstance(expr, pp.VectorSelector):
        yield expr
    elif isinstance(expr, pp.MatrixSelector):
        yield expr.vector_selector
    elif isinstance(expr, pp.BinaryExpr):
        yield from _selectors(expr.lhs)
        yield from _selectors(expr.rhs)
    elif isinstance(expr, pp.Call):
        for arg in expr.args:
            yield from _selectors(arg)
    elif isinstance(expr, (pp.ParenExpr, pp.UnaryExpr, pp.SubqueryExpr, pp.AggregateExpr)):
        yield from _selectors(expr.expr)


@pytest.fixture(scope="module")
def client():
    """A store holding two scrapes of a small simulated fleet, as the server would have."""
    fleet = Fleet(nodes=3, seed=4, speed=0, start=T0)
    store = Store(retention_s=1e9)
    try:
        for step in range(2):
            fleet.advance(60)
            for node in fleet.node_names():
                for simulated in fleet.nodes.values():
                    simulated._collected_at = -1e9
                page = parse_exposition(fleet.render_metrics(node).decode(), False)
                samples = [(tuple(sorted({**dict(labels), "__name__": name, "instance": node}.items())), value)
                           for name, labels, value, _ in page.samples]
                store.append_scrape(node, int((T0 + 60 * (step + 1)) * 1000), samples)
    finally:
        fleet.stop()
    return LocalQueryClient(Engine(store))


@pytest.mark.parametrize("uid", list(DASHBOARDS))
def test_every_panel_query_runs(client, uid):
    model = dashboard(uid)
    assert model["uid"] == uid and model["panels"]
    ids = [panel["id"] for panel in model["panels"]]
    assert len(ids) == len(set(ids))
    for panel in model["panels"]:
        for target in panel["targets"]:
            expr = _all(target["expr"])
            client.instant(expr, T0 + 120)  # raises QueryError on a bad expression


def test_command_writes_one_file_per_dashboard(tmp_path):
    result = subprocess.run([sys.executable, "-m", "clusterwatch", "grafana-dashboard", "--out", str(tmp_path)],
                            check=False, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    written = sorted(path.name for path in tmp_path.iterdir())
    assert written == sorted(f"{uid}.json" for uid in DASHBOARDS)
    assert json.loads((tmp_path / "clusterwatch-job.json").read_text())["templating"]["list"][1]["name"] == "job_id"


def test_panels_show_the_fleet(client):
    gpus = dashboard("clusterwatch-cluster")["panels"][0]["targets"][0]["expr"]
    assert client.instant(gpus, T0 + 120).series[0].value == 24
    node_util = dashboard("clusterwatch-node")["panels"][0]["targets"][0]["expr"]
    assert len(client.instant(_all(node_util, instance="gpu-002"), T0 + 120).series) == 8
    assert len(client.instant(_all(node_util, instance="gpu-002", gpu="3|5"), T0 + 120).series) == 2


@pytest.mark.parametrize("uid, scope", [("clusterwatch-node", "instance"), ("clusterwatch-job", "job_id")])
def test_gpu_variable_offers_all_and_filters_every_gpu_panel(client, uid, scope):
    model = dashboard(uid)
    variables = {variable["name"]: variable for variable in model["templating"]["list"]}
    gpu = variables["gpu"]
    assert gpu["type"] == "query" and gpu["includeAll"] and gpu["multi"] and gpu["allValue"] == ".*"
    assert gpu["current"]["value"] == ["$__all"]
    # label_values(<selector>, gpu), the selector narrowed by the dashboard's other variable
    assert gpu["query"].startswith("label_values(") and gpu["query"].endswith(", gpu)")
    selector = gpu["query"][len("label_values("):-len(", gpu)")]
    assert f"${scope}" in selector and [v["name"] for v in model["templating"]["list"]].index("gpu") > 1
    assert client.instant(_all(selector), T0 + 120).series
    # every query of per-GPU series is filtered by $gpu (the job's through its join on gpu_job_info)
    for panel in model["panels"]:
        for target in panel["targets"]:
            selectors = list(_selectors(parse_query(_all(target["expr"]))))
            if any(s.name and s.name.startswith("gpu_") for s in selectors):
                assert any({m.name: m.value for m in s.matchers.matchers}.get("gpu") == ".*" for s in selectors
                           if s.name and s.name.startswith("gpu_")), (panel["title"], target["expr"])


@pytest.mark.parametrize("uid", list(DASHBOARDS))
def test_annotations_mark_firing_alerts(client, uid):
    annotations = dashboard(uid)["annotations"]["list"]
    assert annotations[0]["builtIn"] == 1
    firing = annotations[1]
    assert firing["datasource"]["type"] == "prometheus" and firing["enable"]
    tree = parse_query(_all(firing["expr"]))
    assert isinstance(tree, pp.VectorSelector) and tree.name == "ALERTS"
    matchers = {m.name: m.value for m in tree.matchers.matchers}
    assert matchers["alertstate"] == "firing"
    assert "{{alertname}}" in firing["titleFormat"]
    assert "{{alertname}}" in firing["textFormat"] and "{{instance}}" in firing["textFormat"]
    client.instant(_all(firing["expr"]), T0 + 120)


@pytest.mark.parametrize("uid", ["clusterwatch-node", "clusterwatch-job"])
def test_profiling_panel(client, uid):
    [panel] = [panel for panel in dashboard(uid)["panels"] if panel["title"] == "GPU profiling (GPM)"]
    assert "gpu_gpm_supported == 1" in panel["description"]
    assert panel["fieldConfig"]["defaults"]["unit"] == "percentunit"
    read = []
    for target in panel["targets"]:
        names = {s.name for s in _selectors(parse_query(_all(target["expr"])))}
        read += sorted(names & {metric for metric, _ in PROFILING})
        assert "{{gpu}}" in target["legendFormat"]
        client.instant(_all(target["expr"]), T0 + 120)
    assert read == ["gpu_sm_active_ratio", "gpu_tensor_active_ratio", "gpu_dram_active_ratio"]


def test_profiling_panel_shows_gpm_gpus_only(client):
    """Per GPU, where the GPU has GPM: as many series as gpu_gpm_supported == 1 says."""
    [panel] = [panel for panel in dashboard("clusterwatch-node")["panels"] if panel["title"] == "GPU profiling (GPM)"]
    supported = client.instant("gpu_gpm_supported == 1", T0 + 120).series
    assert supported
    for target in panel["targets"]:
        assert len(client.instant(_all(target["expr"]), T0 + 120).series) == len(supported)


def test_job_efficiency_panel_names_its_measure(client):
    """The job dashboard's efficiency, per job, by SM activity where every GPU of the job has GPM
    (gpu_gpm_supported == 1) and by utilisation elsewhere, as the rule pack's job_id:gpu_efficiency:ratio1h;
    the legend and the description say which."""
    [panel] = [p for p in dashboard("clusterwatch-job")["panels"] if p["title"].startswith("Job GPU efficiency")]
    assert "SM activity" in panel["title"] and "{{measure}}" in panel["targets"][0]["legendFormat"]
    assert "20% SM activity" in panel["description"] and "30% utilisation" in panel["description"]
    answer = client.instant(_all(panel["targets"][0]["expr"]), T0 + 120).series
    gpm = {(s.labels["instance"], s.labels["gpu"]): s.value == 1 for s in client.instant("gpu_gpm_supported", T0 + 120).series}
    held: dict[str, list[bool]] = {}
    for s in client.instant('gpu_job_info{job_id!=""}', T0 + 120).series:
        held.setdefault(s.labels["job_id"], []).append(gpm.get((s.labels["instance"], s.labels["gpu"]), False))
    assert answer and {s.labels["job_id"] for s in answer} == set(held)
    measures: dict[str, set[str]] = {}
    for s in answer:
        measures.setdefault(s.labels["job_id"], set()).add(s.labels["measure"])
        assert 0 <= s.value <= 1
    # The first scrape has no GPM pair yet (the collector's first cycle): there, utilisation for all.
    assert measures == {job: {"sm_active", "utilization"} if all(gpus) else {"utilization"}
                        for job, gpus in held.items()}
    assert any(all(gpus) for gpus in held.values())
