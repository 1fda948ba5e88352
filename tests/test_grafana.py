"""Grafana dashboards: valid JSON models whose every query runs on the store ClusterWatch serves."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from clusterwatch.grafana import DASHBOARDS, dashboard
from simulator.fleet import Fleet
from tsdb.client import LocalQueryClient
from tsdb.promql.engine import Engine
from tsdb.store import Store
from tsdb.exposition import parse_exposition

T0 = 1_800_000_000.0


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
            expr = target["expr"].replace("$job_id", ".*").replace("$instance", ".*")
            client.instant(expr, T0 + 120)  # raises QueryError on a bad expression


def test_command_writes_one_file_per_dashboard(tmp_path):
    result = subprocess.run([sys.executable, "-m", "clusterwatch", "grafana-dashboard", "--out", str(tmp_path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    written = sorted(path.name for path in tmp_path.iterdir())
    assert written == sorted(f"{uid}.json" for uid in DASHBOARDS)
    assert json.loads((tmp_path / "clusterwatch-job.json").read_text())["templating"]["list"][1]["name"] == "job_id"


def test_panels_show_the_fleet(client):
    gpus = dashboard("clusterwatch-cluster")["panels"][0]["targets"][0]["expr"]
    assert client.instant(gpus, T0 + 120).series[0].value == 24
    node_util = dashboard("clusterwatch-node")["panels"][0]["targets"][0]["expr"].replace("$instance", "gpu-002")
    assert len(client.instant(node_util, T0 + 120).series) == 8
