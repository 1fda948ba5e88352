"""The fabric-links rules are alerts/fabric_health.py's definitions (issue 19): one definition of a
link's health for the rule pack, the /fabric page and remediation. Their behaviour on data is
alerts/tests/fabric_links_test.yml (promtool and the embedded runner)."""
from __future__ import annotations

from pathlib import Path

import promql_parser as pp

from alerts import fabric_health
from alerts.evaluator import load_rule_files
from alerts.evaluator.rulefile import parse_duration

FABRIC_RULES_FILE = Path(__file__).resolve().parents[2] / "alerts" / "rules" / "fabric.yml"


def _fabric_links_group():
    return next(g for g in load_rule_files([FABRIC_RULES_FILE]) if g.name == "fabric-links")


def test_fabric_links_rules_are_the_definitions_module():
    """A threshold changed in the YAML only, or in the module only, is a red test."""
    group = _fabric_links_group()
    rules = {rule.name: rule for rule in group.rules}
    assert set(rules) == set(fabric_health.FABRIC_RULES)
    for name, (expr, for_) in fabric_health.FABRIC_RULES.items():
        assert str(pp.parse(rules[name].expr)) == str(pp.parse(expr)), name
        assert rules[name].for_s == (parse_duration(for_) if for_ else 0.0), name


def test_recorded_series_come_before_their_readers_in_one_30s_group():
    """The alerts and the page read health and counts recorded in the same evaluation."""
    group = _fabric_links_group()
    assert group.interval_s == 30.0
    order = [rule.name for rule in group.rules]
    for reader in fabric_health.LINK_ALERTS + (fabric_health.SWITCH_LINKS_BAD, fabric_health.SWITCH_BAD_LINKS):
        for recorded in (fabric_health.HEALTH, fabric_health.IDENTITY):
            assert order.index(recorded) < order.index(reader), (recorded, reader)


def test_every_link_alert_names_the_cable_and_the_reporting_end():
    for rule in _fabric_links_group().rules:
        if rule.kind != "alert":
            continue
        text = rule.annotations["summary"] + rule.annotations["description"]
        if rule.name == fabric_health.SWITCH_LINKS_BAD:
            assert "$labels.switch" in text and "impact" in rule.annotations
            continue
        for label in fabric_health.LINK:
            assert f"$labels.{label}" in text, (rule.name, label)
        assert {"reporting_end", "impact"} <= set(rule.annotations), rule.name


def test_thresholds_agree_with_each_other():
    assert fabric_health.ERRORS_PER_SECOND_ABOVE * fabric_health.ERRORS_WINDOW_SECONDS == \
        fabric_health.ERRORS_IN_WINDOW_ABOVE
    assert parse_duration(fabric_health.ERRORS_WINDOW) == fabric_health.ERRORS_WINDOW_SECONDS
    assert fabric_health.HEALTHY < fabric_health.ERRORS < fabric_health.DEGRADED < fabric_health.FLAPPING \
        < fabric_health.DOWN
