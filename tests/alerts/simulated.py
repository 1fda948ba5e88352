"""The simulator's exporters scraped into the embedded store on an explicit clock, with the shipped
rule pack evaluated over it (``Harness``), for the evaluator tests on simulated faults."""
from __future__ import annotations

from alerts.evaluator.component import build_evaluator
from simulator.fleet import FABRIC_INSTANCE, FABRIC_JOB, Fleet
from tsdb.client import LocalQueryClient
from tsdb.exposition import parse_exposition
from tsdb.local import scrape_pages
from tsdb.promql.engine import Engine
from tsdb.store import Store

T0 = 1_700_000_000.0
STEP = 15.0


class Harness:
    """``fabric``: also sweep the simulated fat-tree with the real fabric collector every step and
    scrape it as its own target (``job="clusterwatch-fabric"``), as a production Prometheus would."""

    def __init__(self, nodes: int = 3, fabric: bool = False, **fleet_options) -> None:
        self.fleet = Fleet(nodes=nodes, seed=7, speed=0, start=T0, **fleet_options)
        self.fabric = None
        if fabric:
            self.fabric = self.fleet.fabric_exporter()
            self.fabric.collectors[0].run_in_background = False
        self.store = Store(retention_s=1e9)
        self.client = LocalQueryClient(Engine(self.store))
        self.evaluator = build_evaluator(None, self.client, self.store.append_scrape, None, STEP)
        self.sent: list = []
        self.evaluator.notify = self.sent.extend
        self.now = T0

    def scrape(self) -> None:
        scrape_pages(self.store, self.fleet, int(self.now * 1000))
        if self.fabric is not None:
            self.fabric.collectors[0].sweep_once()
            target = {"instance": FABRIC_INSTANCE, "job": FABRIC_JOB}
            self.store.append_scrape("fabric", int(self.now * 1000), [
                (tuple(sorted({**dict(labels), "__name__": name, **target}.items())), value)
                for name, labels, value, _ in parse_exposition(self.fabric.collect_once().text.decode()).samples])

    def step(self, seconds: float) -> None:
        end = self.now + seconds
        while self.now < end:
            self.now += STEP
            self.fleet.advance(STEP)
            self.scrape()
            self.evaluator.evaluate(self.now)

    def xid(self, code: int, gpu: int = 2) -> str:
        """After two warm minutes, an XID on a GPU of the second node, seen by one scrape and
        evaluation; returns the node."""
        self.step(120)
        node = self.fleet.node_names()[1]
        self.fleet.inject({"kind": "xid", "node": node, "gpu": gpu, "xid": code})
        self.step(STEP)
        return node

    def alerts(self, name: str) -> list:
        return [a for _, a in self.evaluator.active_alerts() if a.labels["alertname"] == name and a.state != "inactive"]

    def close(self) -> None:
        self.fleet.stop()
