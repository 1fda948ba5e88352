"""The failing-link policy (issue 19 item 6, remediation/default-policy.yml): a host cable that
keeps flapping is a proposal to drain the node behind it, waiting for an operator; a switch-side
fault or a switch alert is a ticket, never a drain; the drain budget holds; the ticket names the
cable by both ends, GUIDs, each end's counters and since when. The evidence is read with real
PromQL from an embedded store holding the fabric collector's series for the cable."""
from __future__ import annotations

from alerts.evaluator.vector import as_labels
from alerts.model import Alert
from remediation.ladder import PENDING_APPROVAL, REPAIR
from remediation.suppress import AUTHOR
from tests.alerts.remediation_helpers import T0, Harness
from tsdb.client import LocalQueryClient
from tsdb.promql.engine import Engine
from tsdb.store import Store

HOST_CABLE = {"switch": "leaf-r01", "switch_port": "12", "peer": "gpu-001 mlx5_0", "peer_port": "1"}
ISL_CABLE = {"switch": "leaf-r01", "switch_port": "33", "peer": "spine-02", "peer_port": "7"}
ACTIVE_SINCE = T0 - 240


def _fabric_store() -> Store:
    """The fabric collector's series for both cables (one sample at T0), and the flapping alert's
    ALERTS_FOR_STATE as the evaluator writes it."""
    store = Store(retention_s=86400.0)
    at = [round(T0 * 1000)]
    append = store.append_series
    store.append_series = lambda labels, ts, values: append(as_labels(labels), ts, values)  # type: ignore
    for cable, kind, node, guids in ((HOST_CABLE, "host", "gpu-001", ("0x98039b0300a1b2c3", "0x1070fd0300d4e5f6")),
                                     (ISL_CABLE, "isl", "", ("0x98039b0300a1b2c3", "0xb8cef60300112233"))):
        store.append_series({"__name__": "fabric_link_info", "job": "clusterwatch-fabric", **cable, "link_type": kind,
                             "node": node, "switch_guid": guids[0], "peer_guid": guids[1]}, at, [1.0])
        for end, downed in (("switch", 7.0), ("peer", 6.0)):
            store.append_series({"__name__": "fabric_link_downed_total", **cable, "end": end}, at, [downed])
            store.append_series({"__name__": "fabric_link_symbol_errors_total", **cable, "end": end}, at,
                                [120.0 if end == "peer" else 0.0])
            store.append_series({"__name__": "fabric_link_state", **cable, "end": end}, at, [4.0])
    store.append_series({"__name__": "fabric_switch_info", "switch": "leaf-r01", "switch_guid": "0x98039b0300a1b2c3",
                         "tier": "leaf", "rack": "r01"}, at, [1.0])
    store.append_series({"__name__": "ALERTS_FOR_STATE", "alertname": "FabricLinkFlapping", **HOST_CABLE,
                         "instance": "gpu-001"}, at, [ACTIVE_SINCE])
    return store


def _harness(**guards: object) -> Harness:
    h = Harness(**guards)
    h.query = LocalQueryClient(Engine(_fabric_store()))
    h.engine = h.build()
    return h


def _alert(name: str, cable: dict[str, str], **labels: str) -> Alert:
    return Alert({"alertname": name, **cable, "severity": "warning", **labels}, starts_at=ACTIVE_SINCE)


def host_flapping() -> Alert:
    return _alert("FabricLinkFlapping", HOST_CABLE, link_type="host", instance="gpu-001", device="mlx5_0",
                  action="drain")


def test_a_flapping_host_cable_is_a_drain_proposal_that_waits_for_approval():
    h = _harness()
    h.receive(host_flapping())
    for _ in range(4):
        h.step()
    assert h.case().state == PENDING_APPROVAL and h.case().alert_class == "fabric-cable-host"
    assert h.cluster.executed == [] and h.sent == []
    h.engine.approve(1, "alice")
    assert [(a.kind, a.target) for a in h.cluster.executed] == [("drain", "gpu-001")]
    assert "DRAIN" in h.cluster.nodes["gpu-001"].flags
    assert h.case().state == REPAIR  # drained until the cable is replaced
    url, body, _ = h.sent[0]
    assert url == "http://fabric.test/hook" and body["kind"] == "repair_ticket"


def test_the_ticket_names_the_cable_both_ends_guids_counters_and_since_when():
    h = _harness()
    h.receive(host_flapping())
    h.engine.approve(1, "alice")
    evidence = h.sent[0][1]["evidence"]
    assert evidence["cable"] == HOST_CABLE
    assert (evidence["switch_guid"], evidence["peer_guid"]) == ("0x98039b0300a1b2c3", "0x1070fd0300d4e5f6")
    assert evidence["node"] == "gpu-001" and evidence["link_type"] == "host"
    assert evidence["by_end"]["peer"]["symbol_errors_total"] == 120.0
    assert evidence["by_end"]["switch"]["downed_total"] == 7.0
    assert evidence["since_timestamp"] == ACTIVE_SINCE
    evidence_step = next(s for s in h.store.steps(1) if s.name == "evidence")
    assert "leaf-r01 port 12 <-> gpu-001 mlx5_0 port 1" in evidence_step.detail
    assert "0x98039b0300a1b2c3 <-> 0x1070fd0300d4e5f6" in evidence_step.detail


def test_a_switch_side_fault_or_a_switch_alert_is_a_ticket_never_a_drain():
    h = _harness()
    h.receive(_alert("FabricLinkFlapping", ISL_CABLE, link_type="isl", action="ticket"),
              _alert("FabricSwitchLinksBad", {"switch": "leaf-r01", "peer": "leaf-r01"}, action="ticket"))
    for _ in range(6):
        h.step()
    assert h.cluster.executed == []
    tickets = {body["alertname"]: body for _, body, _ in h.sent}
    assert set(tickets) == {"FabricLinkFlapping", "FabricSwitchLinksBad"}
    assert tickets["FabricLinkFlapping"]["evidence"]["cable"] == ISL_CABLE
    assert tickets["FabricLinkFlapping"]["evidence"]["peer_guid"] == "0xb8cef60300112233"
    switch = tickets["FabricSwitchLinksBad"]["evidence"]
    assert switch["cable"] == {"switch": "leaf-r01"}
    assert (switch["switch_guid"], switch["tier"], switch["rack"]) == ("0x98039b0300a1b2c3", "leaf", "r01")


def test_an_approved_drain_waits_for_the_disruption_budget():
    h = _harness(max_drained_nodes=1)
    h.cluster.operator_drain("gpu-005")
    h.receive(host_flapping())
    h.engine.approve(1, "alice")
    h.step()
    assert h.cluster.executed == [] and "DRAIN" not in h.cluster.nodes["gpu-001"].flags
    assert any(r.startswith("not done: budget exhausted") for r in h.results("drain"))
    h.cluster.nodes["gpu-005"].flags.discard("DRAIN")
    h.step()
    assert [(a.kind, a.target) for a in h.cluster.executed] == [("drain", "gpu-001")]


def test_a_malformed_cable_label_is_refused_not_queried():
    h = _harness()
    h.receive(_alert("FabricLinkFlapping", {**ISL_CABLE, "peer": 'spine"} or vector(1) #'}, link_type="isl"))
    h.step()
    assert h.cluster.executed == [] and h.sent == []
    evidence_step = next(s for s in h.store.steps(1) if s.name == "evidence")
    assert evidence_step.status == "failed" and "peer: not a fabric switch, HCA or port name" in evidence_step.detail


def test_a_reboot_by_clusterwatch_holds_its_node_cable_down_alert():
    """The node's cable goes down with it, seen from the leaf: FabricLinkDown (instance = the node)
    is one of the alerts a reboot causes on its own (expected_alerts.reboot), held until it is back."""
    h = Harness(return_timeout="15m")
    h.receive(Alert({"alertname": "GpuXidRebootRequired", "instance": "gpu-001", "gpu": "3", "severity": "critical"},
                    starts_at=T0))
    h.step()  # drained, idle: rebooted
    (silence,) = [s for s in h.silences.list() if s.created_by == AUTHOR]
    cable_down = _alert("FabricLinkDown", HOST_CABLE, link_type="host", instance="gpu-001", device="mlx5_0")
    elsewhere = _alert("FabricLinkDown", {**HOST_CABLE, "peer": "gpu-002 mlx5_0"}, link_type="host",
                       instance="gpu-002", device="mlx5_0")
    assert h.silences.muted_by(cable_down, h.clock.now) == [silence.id]
    assert not h.silences.muted_by(elsewhere, h.clock.now)
