"""End to end in process: the simulator's exporters scraped into the embedded store on an explicit
clock, the shipped pack evaluated over it; XID 79 raises the right alerts, a healthy fleet none."""
from __future__ import annotations

import pytest

import simulator.node
from simulator.fleet import Fleet
from alerts.evaluator.component import build_evaluator
from tsdb.client import LocalQueryClient
from tsdb.local import scrape_pages
from tsdb.promql.engine import Engine
from tsdb.store import Store

T0 = 1_700_000_000.0
STEP = 15.0


@pytest.fixture(autouse=True)
def fresh_snapshots(monkeypatch):
    # The simulator reuses an exporter snapshot for a while of wall time; on an explicit simulated
    # clock every scrape must collect anew.
    monkeypatch.setattr(simulator.node, "SNAPSHOT_REUSE_SECONDS", -1.0)


class Harness:
    def __init__(self, nodes: int = 3) -> None:
        self.fleet = Fleet(nodes=nodes, seed=7, speed=0, start=T0)
        self.store = Store(retention_s=1e9)
        self.client = LocalQueryClient(Engine(self.store))
        self.evaluator = build_evaluator(None, self.client, self.store.append_scrape, None, STEP)
        self.sent: list = []
        self.evaluator.notify = self.sent.extend
        self.now = T0

    def scrape(self) -> None:
        scrape_pages(self.store, self.fleet, int(self.now * 1000))

    def step(self, seconds: float) -> None:
        end = self.now + seconds
        while self.now < end:
            self.now += STEP
            self.fleet.advance(STEP)
            self.scrape()
            self.evaluator.evaluate(self.now)

    def alerts(self, name: str) -> list:
        return [a for _, a in self.evaluator.active_alerts() if a.labels["alertname"] == name and a.state != "inactive"]

    def close(self) -> None:
        self.fleet.stop()


HARDWARE = {"GpuXidRebootRequired", "GpuXidResetRequired", "GpuXidHardwareFault", "GpuXidNeedsInvestigation",
            "GpuXidApplicationErrorsRepeated", "GpuEccUncorrectableErrors", "GpuRowRemapPending",
            "GpuRowRemapFailed", "GpuRetiredPagesPending", "GpuRetiredPagesHigh", "GpuLost", "GpuCountDropped",
            "GpuNvlinkErrorRateHigh", "GpuNvlinkLinkDown", "GpuPcieReplaysHigh", "GpuPcieLinkWidthDegraded",
            "GpuPcieLinkGenerationDegraded", "GpuThermalThrottling", "GpuPowerThrottling", "GpuTemperatureHigh",
            "GpuMemoryTemperatureHigh", "InfinibandPortDown", "InfinibandLinkFlapping", "InfinibandSymbolErrors",
            "InfinibandReceiveErrors"}


def test_xid79_raises_reboot_and_lost_gpu_alerts_with_labels():
    h = Harness()
    try:
        h.step(120)
        node = h.fleet.node_names()[1]
        h.fleet.inject({"kind": "xid", "node": node, "gpu": 2, "xid": 79})
        h.step(STEP)
        lost = h.alerts("GpuLost")
        assert [(a.state, a.labels["instance"], a.labels["gpu"]) for a in lost] == [("pending", node, "2")]
        reboot = h.alerts("GpuXidRebootRequired")
        assert [(a.state, a.labels["instance"], a.labels["gpu"], a.labels["xid"], a.labels["action"])
                for a in reboot] == [("firing", node, "2", "79", "reboot")]
        h.step(60)
        lost = h.alerts("GpuLost")
        assert [(a.state, a.labels["action"]) for a in lost] == [("firing", "reboot")]
        assert {a.labels["alertname"] for a in h.sent} >= {"GpuLost", "GpuXidRebootRequired"}
    finally:
        h.close()


@pytest.mark.slow
def test_healthy_fleet_raises_no_hardware_alert():
    h = Harness()
    try:
        h.step(20 * 60)
        active = {a.labels["alertname"] for _, a in h.evaluator.active_alerts()}
        assert not active & HARDWARE, active
        assert all(not health.last_error for g in h.evaluator.groups for health in g.health.values())
    finally:
        h.close()
