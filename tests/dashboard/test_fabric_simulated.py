"""Issue 19's "done when", end to end in process: the simulator's fat-tree swept by the real fabric
collector and its nodes scraped into the embedded store on an explicit clock, the shipped
``fabric-links`` group evaluated every 30 s; a cable fault on one host cable raises
FabricLinkErrors naming both ends, and the fabric page shows that cable as the worst with the
running jobs behind it, its switch page and the node page too."""
from __future__ import annotations

from pathlib import Path

import pytest

from alerts.evaluator.manager import RuleEvaluator
from alerts.evaluator.rulefile import load_rule_file
from dashboard.context import DashboardContext
from dashboard.params import TimeRange
from dashboard.views.fabric import fabric, switch
from dashboard.views.nodes import node
from simulator.fleet import FABRIC_INSTANCE, FABRIC_JOB, Fleet
from tsdb.client import LocalQueryClient
from tsdb.exposition import parse_exposition
from tsdb.local import scrape_pages
from tsdb.promql.engine import Engine
from tsdb.store import Store

T0 = 1_800_000_000.0
STEP = 30.0
RULES = Path(__file__).resolve().parents[2] / "alerts" / "rules" / "fabric.yml"
NODE, PORT = "gpu-003", 1  # the faulty cable: this node's first HCA port to its leaf


class Simulated:
    def __init__(self) -> None:
        self.fleet = Fleet(nodes=16, seed=7, speed=0, start=T0, ib_ports=1)
        self.store = Store(retention_s=1e9)
        self.client = LocalQueryClient(Engine(self.store))
        group = next(g for g in load_rule_file(RULES) if g.name == "fabric-links")
        self.rules = RuleEvaluator([group], self.client, writer=self.store.append_rule_output)
        self.exporter = self.fleet.fabric_exporter()
        self.exporter.collectors[0].run_in_background = False
        self.now = T0

    def step(self, seconds: float) -> None:
        end = self.now + seconds
        while self.now < end:
            self.now += STEP
            self.fleet.advance(STEP)
            ts = int(self.now * 1000)
            scrape_pages(self.store, self.fleet, ts, job="gpu-nodes")
            self.exporter.collectors[0].sweep_once()
            text = self.exporter.collect_once().text.decode()
            target = {"instance": FABRIC_INSTANCE, "job": FABRIC_JOB}
            self.store.append_scrape("fabric", ts, [
                (tuple(sorted({**dict(labels), "__name__": name, **target}.items())), value)
                for name, labels, value, _ in parse_exposition(text).samples])
            self.rules.evaluate(self.now)


@pytest.fixture(scope="module")
def simulated():
    try:
        sim = Simulated()
        sim.step(2 * 60)
        sim.fleet.inject({"kind": "fabric_symbol_errors", "node": NODE, "port": PORT, "rate": 600})
        sim.fault_at = sim.now
        sim.step(8 * 60)  # FabricLinkErrors: errors for 5 minutes
        yield sim
    finally:
        sim.fleet.stop()


def test_a_cable_fault_raises_the_alert_naming_both_ends_and_the_page_shows_it_with_its_jobs(simulated):
    sim = simulated
    cable = sim.fleet.fabric.host_cable(NODE, PORT)
    at = sim.now
    firing = sim.client.instant('ALERTS{alertname="FabricLinkErrors", alertstate="firing"}', at).series
    assert len(firing) == 1
    alert = firing[0].labels
    leaf = alert["switch"]
    assert alert["peer"].startswith(f"{NODE} ") and alert["switch_port"] == str(cable.a.number)
    jobs = {labels["job_id"] for labels, _ in
            sim.client.instant(f'gpu_job_info{{instance="{NODE}", job_id!=""}}', at).samples()}
    assert jobs, "the simulated Slurm runs a job on the faulty node"

    ctx = DashboardContext(sim.client, clock=lambda: at)
    tr = TimeRange(at - 3600, at)
    view = fabric(ctx, tr)
    assert view.worst_total == 1
    worst = view.worst_links[0]
    assert (worst.cable.switch, worst.cable.switch_port, worst.cable.peer) == (leaf, alert["switch_port"],
                                                                                alert["peer"])
    assert worst.cable.node == NODE and worst.state.health_name == "errors"
    assert worst.state.worst_end in ("switch", "peer")
    assert sim.fault_at <= worst.since <= at and not worst.since_before_range
    assert worst.impact.nodes == [NODE] and {j.job_id for j in worst.impact.jobs} == jobs
    index = view.graph.switches.index(leaf)
    assert view.graph.worst[index] == 1 and view.graph.hosts_bad[index] == 1

    page = switch(ctx, tr, leaf)
    port = next(p for p in page.ports if p.port == alert["switch_port"])
    assert port.other_end == alert["peer"] and port.state.health_name == "errors"
    cables = node(ctx, tr, NODE).fabric_links
    assert [(c.switch, c.switch_port, c.health_name) for c in cables] == [(leaf, alert["switch_port"], "errors")]
