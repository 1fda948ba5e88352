"""Issue 19's "done when" for the rules, end to end in process: the simulator's fat-tree swept by
the real fabric collector and its nodes scraped into the embedded store on an explicit clock, the
whole shipped pack evaluated, its alerts through the notification pipeline with the shipped
inhibitions (alerts/notify/default.yml). One cable fault (flapping, or trained at 2 lanes) is one
notification, the cable's alert naming both ends, within the rule's bound; a leaf switch gone bad
is one switch notification. The node's own InfinibandLinkFlapping for the flapping cable fires and
is inhibited; nothing else is notified."""
from __future__ import annotations

import pytest

from alerts import fabric_health
from alerts.evaluator.rulefile import parse_duration
from tests.alerts.notify_support import Harness as PipelineHarness
from tests.alerts.simulated import STEP, T0, Harness
from tests.alerts.rule_support import SHIPPED, with_capture

pytestmark = pytest.mark.slow

NODE, PORT = "gpu-003", 1  # its first HCA port's cable to its leaf
EVALUATIONS = 2 * 30.0  # the fabric-links group records, then its alerts read, each every 30 s
SWEEP = 15.0  # the simulated fabric collector's sweep (simulator/fleet.py)


def _run(fault: dict, minutes: float) -> tuple[Harness, dict[str, float], list[dict[str, str]]]:
    """After two quiet minutes, ``fault``; returns the harness, when each alert name first fired
    (seconds after the fault) and the labels of every firing alert notified after inhibition."""
    sim = Harness(nodes=16, fabric=True, ib_ports=1)
    pipeline = PipelineHarness(with_capture(SHIPPED["embedded"]))
    sim.evaluator.notify = pipeline.pipeline.notify
    try:
        sim.step(120)
        assert not [a for _, a in sim.evaluator.active_alerts() if a.state == "firing"], "a quiet fleet first"
        sim.fleet.inject(fault)
        start, first = sim.now, {}
        while sim.now < start + minutes * 60:
            sim.step(STEP)
            pipeline.at(sim.now - T0)
            for _, alert in sim.evaluator.active_alerts():
                if alert.state == "firing":
                    first.setdefault(alert.labels["alertname"], sim.now - start)
        notified = [dict(a.labels) for n in pipeline.sent for a in n.alerts if a.status == "firing"]
        return sim, first, notified
    finally:
        sim.close()


def _cable(sim: Harness) -> tuple[str, str, str, str]:
    """The faulty cable by both ends, from the simulated fat-tree (a host cable runs from a leaf
    port, its ``a`` end, to the HCA's port)."""
    cable = sim.fleet.fabric.host_cable(NODE, PORT)
    return sim.fleet.fabric.leaf_of[NODE].name, str(cable.a.number), f"{NODE} mlx5_{PORT - 1}", str(cable.b.number)


def _named(alert: dict[str, str]) -> tuple:
    return (alert["alertname"],) + tuple(alert.get(label, "") for label in fabric_health.LINK) + \
        (alert.get("instance", ""),)


def test_a_flapping_host_cable_is_one_notification_naming_both_ends():
    period = 120.0
    sim, first, notified = _run({"kind": "fabric_flapping", "node": NODE, "port": PORT, "period": period}, 8)
    assert {_named(a) for a in notified} == {("FabricLinkFlapping", *_cable(sim), NODE)}
    # Each flap counts a link-down and a retrain at both ends: over 2 events from the second flap.
    assert first["FabricLinkFlapping"] <= 2 * period + SWEEP + EVALUATIONS
    assert "InfinibandLinkFlapping" in first, "the node's own rule saw it too, and was inhibited"
    assert "FabricLinkDown" not in first, "down half a period at a time: never the 2 minutes Down needs"


def test_a_cable_trained_at_two_lanes_is_one_degraded_notification():
    sim, first, notified = _run({"kind": "fabric_degraded", "node": NODE, "port": PORT, "width": 2}, 5)
    assert {_named(a) for a in notified} == {("FabricLinkDegraded", *_cable(sim), NODE)}
    assert first["FabricLinkDegraded"] <= parse_duration(fabric_health.DEGRADED_FOR) + SWEEP + EVALUATIONS
    assert set(first) == {"FabricLinkDegraded"}


def test_a_leaf_switch_fault_is_one_switch_notification():
    sim, first, notified = _run({"kind": "fabric_leaf_fault", "node": NODE, "links": 4}, 8)
    leaf = sim.fleet.fabric.leaf_of[NODE].name
    assert [(a["alertname"], a["switch"]) for a in notified] == [("FabricSwitchLinksBad", leaf)]
    assert first["FabricSwitchLinksBad"] <= SWEEP + EVALUATIONS + 60.0  # flaps down at once; errors within a minute
    assert {"FabricLinkFlapping", "FabricLinkErrors"} & set(first), "its links' alerts fired, inhibited"
