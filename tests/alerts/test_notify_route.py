"""The routing tree and alerting.yml loading: which routes an alert takes, its group key, and
config errors that name the field and the file. Cases as data."""
from __future__ import annotations

import pytest

from alerts.notify import config as alerting_config
from alerts.notify.matchers import parse_matchers
from alerts.notify.route import group_key
from cwkernel.errors import ConfigError
from tests.alerts.notify_support import config

TREE = """
route:
  receiver: default
  group_by: [alertname]
  routes:
    - receiver: gpu-team
      matchers: ['component="gpu"']
      group_by: [instance, gpu]
      routes:
        - receiver: pager
          matchers: ['severity="critical"']
          continue: true
        - receiver: gpu-ticket
          match_re: {alertname: "Xid.*"}
    - receiver: fabric
      match: {component: infiniband}
      continue: true
    - receiver: audit
      matchers: ['severity=~"critical|warning"', 'team!="ops"']
      group_by: ['...']
    - receiver: never
      matchers: ['severity="critical"']
receivers:
  - {name: default}
  - {name: gpu-team}
  - {name: pager}
  - {name: gpu-ticket}
  - {name: fabric}
  - {name: audit}
  - {name: never}
"""

# labels -> receivers of the matching routes, in Alertmanager's order
CASES = [
    ({"alertname": "Foo"}, ["default"]),
    ({"alertname": "GpuHot", "component": "gpu"}, ["gpu-team"]),
    ({"alertname": "GpuHot", "component": "gpu", "severity": "critical"}, ["pager"]),
    ({"alertname": "Xid79", "component": "gpu", "severity": "critical"}, ["pager", "gpu-ticket"]),
    ({"alertname": "Xid13", "component": "gpu"}, ["gpu-ticket"]),
    ({"alertname": "IbDown", "component": "infiniband", "severity": "critical"}, ["fabric", "audit"]),
    ({"alertname": "IbDown", "component": "infiniband"}, ["fabric"]),
    ({"alertname": "Disk", "severity": "warning", "team": "ops"}, ["default"]),
    ({"alertname": "Disk", "severity": "critical", "team": "ops"}, ["never"]),
]


@pytest.mark.parametrize("labels,receivers", CASES)
def test_routes(labels, receivers):
    route = config(TREE).route
    assert [r.opts.receiver for r in route.match(labels)] == receivers


def test_children_inherit_and_group_by_all():
    route = config(TREE).route
    labels = {"alertname": "Disk", "severity": "warning", "instance": "n1"}
    (audit,) = route.match(labels)
    assert audit.group_labels(labels) == labels
    assert audit.opts.group_wait == 30 and audit.opts.repeat_interval == 4 * 3600
    gpu = route.match({"alertname": "X", "component": "gpu", "instance": "n1", "gpu": "3"})[0]
    assert gpu.group_labels({"alertname": "X", "instance": "n1", "gpu": "3"}) == {"instance": "n1", "gpu": "3"}


def test_an_empty_group_by_inherits_as_in_alertmanager():
    """Alertmanager parses ``group_by: []`` to no list at all, so the route takes its parent's
    grouping; it used to mean "one group for everything" here (found by the differential test)."""
    route = config("""
route:
  receiver: a
  group_by: [alertname, instance]
  routes:
    - {receiver: b, group_by: []}
receivers: [{name: a}, {name: b}]
""").route
    (child,) = route.match({"alertname": "X"})
    labels = {"alertname": "X", "instance": "n1", "gpu": "3"}
    assert child.group_labels(labels) == {"alertname": "X", "instance": "n1"}


def test_group_key_is_alertmanagers():
    route = config(TREE).route
    assert group_key(route, {"alertname": "GpuHot"}) == '{}:{alertname="GpuHot"}'
    pager = route.match({"component": "gpu", "severity": "critical"})[0]
    assert group_key(pager, {"instance": "n1", "gpu": "0"}) == \
        '{}/{component="gpu"}/{severity="critical"}:{gpu="0", instance="n1"}'
    # A legacy match_re is stored anchored, and Alertmanager's keys show it so.
    ticket = route.match({"component": "gpu", "alertname": "Xid13"})[0]
    assert ticket.key() == '{}/{component="gpu"}/{alertname=~"^(?:Xid.*)$"}'


@pytest.mark.parametrize("text,expected", [
    ('a="b"', [("a", "=", "b")]),
    ('{a="b", c=~"d|e"}', [("a", "=", "b"), ("c", "=~", "d|e")]),
    ("a!=b,c!~x.*", [("a", "!=", "b"), ("c", "!~", "x.*")]),
    ('msg="say \\"hi\\""', [("msg", "=", 'say "hi"')]),
])
def test_matcher_parsing(text, expected):
    assert [(m.name, m.op, m.value) for m in parse_matchers(text)] == expected


def test_regex_is_anchored():
    (m,) = parse_matchers('instance=~"node0[1-3]"')
    assert m.matches({"instance": "node02"}) and not m.matches({"instance": "node023"})
    (absent,) = parse_matchers('gpu=""')
    assert absent.matches({}) and not absent.matches({"gpu": "0"})


@pytest.mark.parametrize("text,field", [
    ("route: {receiver: x}\nreceivers: [{name: y}]", "route"),
    ("route: {receiver: x, group_wait: soon}\nreceivers: [{name: x}]", "route.group_wait"),
    ("route: {receiver: x, routes: [{matchers: ['a=~\"(\"']}]}\nreceivers: [{name: x}]", "route.routes[0].matchers"),
    ("route: {receiver: x, colour: red}\nreceivers: [{name: x}]", "route.colour"),
    ("route: {receiver: x}\nreceivers: [{name: x, webhook_configs: [{send_resolved: true}]}]",
     "receivers[0].webhook_configs[0].url"),
    ("route: {receiver: x}\nreceivers: [{name: x, webhook_configs: [{url: 'ftp://a'}]}]",
     "receivers[0].webhook_configs[0].url"),
    ("route: {receiver: x}\nreceivers: [{name: x}]\ninhibit_rules: [{equal: instance}]", "inhibit_rules[0].equal"),
    ("receivers: [{name: x}]", "route"),
])
def test_config_errors_name_field_and_file(text, field):
    with pytest.raises(ConfigError) as caught:
        config(text)
    assert caught.value.field == field and caught.value.source == "test.yml"


def test_missing_file_names_it(tmp_path):
    with pytest.raises(ConfigError, match="alerting_config: cannot read"):
        alerting_config.load(tmp_path / "nope.yml")


def test_default_config_ships_log_receiver_and_node_down_inhibition():
    shipped = alerting_config.load()
    assert shipped.route.opts.receiver == "log"
    assert [c.kind for c in shipped.receivers["log"].integrations] == ["log"]
    node_down = shipped.inhibit_rules[0]
    assert node_down.equal == ("instance",)


@pytest.mark.parametrize("text,field", [
    ("route: {receiver: x, routes: [{match_re: {instance: '(?=gpu)node.*'}}]}\nreceivers: [{name: x}]",
     "route.routes[0].matchers"),
    ("route: {receiver: x, routes: [{matchers: ['job=~\"(a)\\\\1\"']}]}\nreceivers: [{name: x}]",
     "route.routes[0].matchers"),
    ("route: {receiver: x}\nreceivers: [{name: x}]\n"
     "inhibit_rules: [{source_match_re: {a: 'x{1001}'}, target_match: {b: c}}]", "inhibit_rules[0]"),
])
def test_regexes_re2_refuses_are_config_errors(text, field):
    """Routing regexes run on RE2, as in Alertmanager: what it refuses (lookaround,
    backreferences, a repeat over 1000) is refused at load, naming the field."""
    with pytest.raises(ConfigError) as caught:
        config(text)
    assert caught.value.field == field and "invalid regex" in str(caught.value)


def test_regex_runs_in_linear_time():
    """The backtracking bomb of issue 14 on a routing regex: RE2 answers at once (Python's re
    took ~2^n steps)."""
    (m,) = parse_matchers('instance=~"(a+)+b"')
    assert not m.matches({"instance": "a" * 5000 + "!"})
