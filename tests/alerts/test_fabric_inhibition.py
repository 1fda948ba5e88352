"""One fabric fault, one notification (issue 19 item 4): the fabric-links rules evaluated over
alerts/tests/fabric_links_test.yml's data, their alerts through the embedded pipeline with the
shipped inhibit rules (alerts/notify/default.yml, and deploy/alertmanager/alertmanager.yml's,
which must say the same), to a capturing hook."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from alerts.evaluator import load_rule_files
from alerts.evaluator.manager import RuleEvaluator
from alerts.evaluator.rulefile import parse_duration
from alerts.model import Alert
from alerts.notify import config as alerting_config
from tests.alerts.notify_support import START, Harness
from tests.alerts.rule_support import SHIPPED, group_store, with_capture
from tsdb.client import LocalQueryClient
from tsdb.promql.engine import Engine

ROOT = Path(__file__).resolve().parents[2]
FABRIC_TESTS = ROOT / "alerts" / "tests" / "fabric_links_test.yml"
def _notified(test_name: str, shipped: str, until_s: float, extra: list[Alert] = (),
              extra_from_s: float = 0.0) -> list[dict[str, str]]:
    """Labels of every firing alert the hook received while the pack ran, every 30 s, over the
    named test group's series (plus ``extra`` alerts sent alongside from ``extra_from_s``, as
    another rule group would)."""
    test = next(t for t in yaml.safe_load(FABRIC_TESTS.read_text())["tests"] if t["name"] == test_name)
    store, _ = group_store(test, parse_duration(test["interval"]))
    harness = Harness(with_capture(shipped))
    evaluator = RuleEvaluator(load_rule_files([ROOT / "alerts" / "rules" / "fabric.yml"]),
                              LocalQueryClient(Engine(store)), writer=store.append_rule_output,
                              notify=harness.pipeline.notify, default_interval_s=30.0,
                              clock=lambda: harness.clock.now)
    for step in range(int(until_s // 30) + 1):
        harness.clock.now = START + step * 30.0
        evaluator.evaluate(step * 30.0)
        if extra and step * 30.0 >= extra_from_s:
            harness.pipeline.notify(list(extra))
        harness.at(step * 30.0)
    return [dict(a.labels) for n in harness.sent for a in n.alerts if a.status == "firing"]


def test_shipped_configs_have_the_same_fabric_inhibitions():
    def fabric_rules(text: str) -> list:
        return [r for r in yaml.safe_load(text)["inhibit_rules"] if "Fabric" in str(r["source_matchers"])]
    assert fabric_rules(SHIPPED["embedded"]) == fabric_rules(SHIPPED["alertmanager"])
    assert len(fabric_rules(SHIPPED["embedded"])) == 4
    for text in SHIPPED.values():
        alerting_config.parse(with_capture(text), "test.yml")


@pytest.mark.parametrize("shipped", sorted(SHIPPED))
def test_a_switch_fault_with_several_bad_links_notifies_once_per_switch(shipped):
    """leaf-r05: four host cables down; spine-02: three leaf uplinks down. The link alerts fire (a
    promtool test shows them) but only the two switch alerts are notified, even after the link
    alerts' `for` of 2 minutes."""
    notified = _notified("switch", SHIPPED[shipped], until_s=300)
    assert sorted({(a["alertname"], a["switch"]) for a in notified}) == [
        ("FabricSwitchLinksBad", "leaf-r05"), ("FabricSwitchLinksBad", "spine-02")]


def test_without_the_inhibitions_every_link_would_notify():
    """The same data with no inhibit rules: the test above can fail."""
    shipped = yaml.safe_load(SHIPPED["embedded"])
    shipped["inhibit_rules"] = []
    notified = _notified("switch", yaml.safe_dump(shipped), until_s=300)
    assert sum(1 for a in notified if a["alertname"] == "FabricLinkDown") == 7


def test_a_flapping_host_cable_notifies_once_naming_both_ends_not_the_nodes_own_alert_too():
    """The node's exporter sees the same flaps on its HCA (InfinibandLinkFlapping on gpu-001
    mlx5_0, from the third flap like the cable's, in a group evaluated every 2 minutes, so never
    earlier): the cable's alert, which names both ends, is the one notified."""
    host_side = Alert(labels={"alertname": "InfinibandLinkFlapping", "instance": "gpu-001", "device": "mlx5_0",
                              "port": "1", "severity": "warning", "action": "drain"},
                      annotations={"summary": "flapping"}, starts_at=START)
    notified = _notified("flapping", SHIPPED["embedded"], until_s=19 * 60, extra=[host_side],
                         extra_from_s=17 * 60 + 30)
    assert [(a["alertname"], a["switch"], a["peer"], a["instance"]) for a in notified] == [
        ("FabricLinkFlapping", "leaf-r01", "gpu-001 mlx5_0", "gpu-001")]


# A leaf with three bad cables, a spine with bad uplinks, and a host cable elsewhere flapping with
# its node's own alert: what the rules raise for them (labels as in alerts/tests/fabric_links_test.yml).
FABRIC_FAULTS = [
    {"alertname": "FabricSwitchLinksBad", "switch": "leaf-r05", "peer": "leaf-r05", "severity": "critical"},
    *({"alertname": "FabricLinkDown", "switch": "leaf-r05", "switch_port": str(p), "peer": f"gpu-01{p} mlx5_0",
       "peer_port": "1", "link_type": "host", "instance": f"gpu-01{p}", "device": "mlx5_0", "severity": "critical"}
      for p in (1, 2, 3)),
    {"alertname": "FabricSwitchLinksBad", "switch": "spine-02", "peer": "spine-02", "severity": "critical"},
    {"alertname": "FabricLinkDown", "switch": "leaf-r06", "switch_port": "33", "peer": "spine-02", "peer_port": "7",
     "link_type": "isl", "severity": "critical"},
    {"alertname": "FabricLinkFlapping", "switch": "leaf-r01", "switch_port": "1", "peer": "gpu-001 mlx5_0",
     "peer_port": "1", "link_type": "host", "instance": "gpu-001", "device": "mlx5_0", "severity": "warning"},
    {"alertname": "InfinibandLinkFlapping", "instance": "gpu-001", "device": "mlx5_0", "port": "1",
     "severity": "warning"},
]


@pytest.mark.real_component
def test_the_shipped_alertmanager_config_inhibits_as_the_embedded_pipeline_does(process_factory, tmp_path):
    """deploy/alertmanager/alertmanager.yml's inhibit rules in a real Alertmanager 0.25 and in our
    pipeline, the same alerts in: the same notifications out, three alerts of seven."""
    from tests.alerts.notify_support import CaptureServer
    from tests.alerts.alertmanager_support import notify_both, summary

    def routed_to(url: str) -> str:
        shipped = yaml.safe_load(SHIPPED["alertmanager"])
        return yaml.safe_dump({"global": {"resolve_timeout": "1h"},
                               "route": {"receiver": "capture", "group_by": shipped["route"]["group_by"],
                                         "group_wait": "1s", "group_interval": "1m"},
                               "receivers": [{"name": "capture", "webhook_configs": [{"url": url}]}],
                               "inhibit_rules": shipped["inhibit_rules"]})

    am_capture, our_capture = CaptureServer(), CaptureServer()
    try:
        notify_both(process_factory, tmp_path, routed_to, FABRIC_FAULTS, am_capture, our_capture)
        assert summary(am_capture.delivered) == summary(our_capture.delivered)
        sent = sorted((a["labels"]["alertname"], a["labels"]["switch"]) for b in am_capture.delivered
                      for a in b["alerts"])
        assert sent == [("FabricLinkFlapping", "leaf-r01"), ("FabricSwitchLinksBad", "leaf-r05"),
                        ("FabricSwitchLinksBad", "spine-02")]
    finally:
        am_capture.close()
        our_capture.close()
