"""Grouping and Alertmanager's timers (group_wait, group_interval, repeat_interval), dedup by the
notification log and resolution, driven by a fake clock: no sleeping."""
from __future__ import annotations

import pytest

from alerts.notify.dedup import needs_update
from alerts.notify.nflog import Entry
from alerts.notify.pipeline import Pipeline
from tests.alerts.notify_support import CONFIG, START, Clock, Harness, alert, config


@pytest.fixture
def harness():
    return Harness()


def test_group_wait_collects_alerts_then_group_interval(harness):
    h = harness
    h.pipeline.notify([alert(START, alertname="GpuHot", instance="n1")])
    assert h.at(10) == []
    h.pipeline.notify([alert(START + 10, alertname="GpuHot", instance="n2")])
    assert h.at(29) == []
    assert h.at(30) == [("firing", ["n1", "n2"])]
    # A new alert in a flushed group waits for group_interval, not group_wait.
    h.pipeline.notify([alert(START + 40, alertname="GpuHot", instance="n3")])
    assert h.at(100) == []
    assert h.at(330) == [("firing", ["n1", "n2", "n3"])]
    # Nothing changed: no notification until repeat_interval has passed.
    assert h.at(630) == []
    assert h.at(330 + 4 * 3600 - 1) == []
    assert h.at(330 + 4 * 3600 + 300) == [("firing", ["n1", "n2", "n3"])]


def test_old_alert_flushes_a_new_group_at_once(harness):
    harness.pipeline.notify([alert(START - 60, alertname="Old", instance="n1")])
    assert harness.at(0) == [("firing", ["n1"])]


def test_resolved_is_sent_and_leaves_the_group(harness):
    h = harness
    h.pipeline.notify([alert(START, alertname="A", instance="n1"), alert(START, alertname="A", instance="n2")])
    assert h.at(30) == [("firing", ["n1", "n2"])]
    h.pipeline.notify([alert(START, START + 100, alertname="A", instance="n1")])
    assert h.at(330) == [("firing", ["n1", "n2"])]  # n1 resolved, n2 firing: one notification with both
    assert [a.ends_at is not None for a in h.sent[-1].alerts] == [True, False]
    h.pipeline.notify([alert(START, START + 400, alertname="A", instance="n2")])
    assert h.at(630) == [("resolved", ["n2"])]
    assert h.pipeline.dispatcher.groups == {}


def test_firing_and_resolved_within_group_wait_sends_nothing(harness):
    h = harness
    h.pipeline.notify([alert(START, alertname="Blip", instance="n1")])
    h.pipeline.notify([alert(START, START + 5, alertname="Blip", instance="n1")])
    assert h.at(30) == []


def test_resolve_timeout_resolves_an_alert_the_evaluator_stopped_sending():
    h = Harness(CONFIG.replace("resolve_timeout: 1d", "resolve_timeout: 5m"))
    h.pipeline.notify([alert(START, alertname="A", instance="n1")])
    assert h.at(30) == [("firing", ["n1"])]
    assert h.at(290) == []
    h.pipeline.notify([alert(START, alertname="A", instance="n1")])  # the evaluator re-sends at 290 s
    assert h.at(330) == []
    assert h.at(630) == [("resolved", ["n1"])]  # not re-sent since 290 s: resolved at 590 s
    assert h.sent[-1].alerts[0].ends_at == START + 590


def test_send_resolved_false_sends_only_firing():
    h = Harness(CONFIG.replace("{name: capture}", "{name: capture, send_resolved: false}"))
    h.pipeline.notify([alert(START, alertname="A", instance="n1"), alert(START, alertname="A", instance="n2")])
    assert h.at(30) == [("firing", ["n1", "n2"])]
    h.pipeline.notify([alert(START, START + 60, alertname="A", instance="n1")])
    assert h.at(330) == []  # the firing set only shrank
    h.pipeline.notify([alert(START, START + 400, alertname="A", instance="n2")])
    assert h.at(630) == []  # all resolved: the log is cleared but nothing resolved is sent


# needs_update as a table: (entry firing, entry resolved, age) , firing, resolved, send_resolved -> sends?
NEEDS_UPDATE = [
    (None, {"a"}, set(), True, True),
    (None, set(), {"a"}, True, False),
    (({"a"}, set(), 10), {"a", "b"}, set(), True, True),
    (({"a", "b"}, set(), 10), {"a"}, {"b"}, True, True),
    (({"a", "b"}, set(), 10), {"a"}, {"b"}, False, False),
    (({"a"}, set(), 10), set(), {"a"}, False, True),
    ((set(), {"a"}, 10), set(), {"a"}, True, False),
    (({"a"}, set(), 10), {"a"}, set(), True, False),
    (({"a"}, set(), 4 * 3600), {"a"}, set(), True, True),
]


@pytest.mark.parametrize("entry,firing,resolved,send_resolved,expected", NEEDS_UPDATE)
def test_needs_update(entry, firing, resolved, send_resolved, expected):
    now = 100_000.0
    logged = Entry(frozenset(entry[0]), frozenset(entry[1]), now - entry[2]) if entry else None
    assert needs_update(logged, frozenset(firing), frozenset(resolved), send_resolved, 4 * 3600, now) is expected


def test_restart_sends_nothing_twice(tmp_path):
    db = tmp_path / "alerting.db"
    clock = Clock()
    first = Harness(db=str(db), clock=clock)
    first.pipeline.notify([alert(START, alertname="A", instance="n1")])
    assert first.at(30) == [("firing", ["n1"])]
    first.pipeline.close()
    # A new pipeline over the same database: the alert is back in its group, the log says sent.
    second = Harness(db=str(db), clock=clock)
    assert second.at(31) == []
    assert second.at(400) == []
    second.pipeline.notify([alert(START, START + 500, alertname="A", instance="n1")])
    assert second.at(700) == [("resolved", ["n1"])]


def test_restart_between_outbox_and_log_does_not_duplicate(tmp_path):
    """A crash after the outbox write and before the notification-log write: the rebuilt
    notification has the same idempotency key, so the outbox holds it once."""
    db = str(tmp_path / "alerting.db")
    clock = Clock()
    first = Harness(db=db, clock=clock)
    first.pipeline.notify([alert(START, alertname="A", instance="n1")])
    clock.now = START + 30
    first.pipeline.flush()
    first.pipeline.db.execute("DELETE FROM nflog")  # as if the crash came before this write
    first.pipeline.close()
    second = Harness(db=db, clock=clock)
    assert second.at(31) == [("firing", ["n1"])]
    assert len(second.pipeline.outbox.list()) == 1 and len(second.sent) == 1


# The usual way to send every alert to two places: sibling routes without matchers, the first
# with continue. Their route keys are equal ("{}/{}"), as in Alertmanager, whose dispatcher keeps
# each route's groups apart; keyed by group key alone, the second route's alerts joined the first
# route's group and the second receiver was never notified.
TWO_PLACES = """
global: {resolve_timeout: 1d}
route:
  receiver: chat
  group_by: [alertname]
  group_wait: 0s
  routes:
    - {receiver: chat, continue: true}
    - {receiver: pager, matchers: []}
receivers:
  - {name: chat, hook_configs: [{name: chat}]}
  - {name: pager, hook_configs: [{name: pager}]}
"""


def test_sibling_routes_with_the_same_matchers_each_notify_their_receiver():
    clock = Clock()
    pipeline = Pipeline(config(TWO_PLACES), clock=clock)
    sent: dict[str, list] = {"chat": [], "pager": []}
    for name, got in sent.items():
        pipeline.register_hook(name, got.append)
    pipeline.notify([alert(START, alertname="Xid79", instance="n1")])
    pipeline.flush()
    pipeline.deliver()
    assert {name: [a.labels["instance"] for n in got for a in n.alerts] for name, got in sent.items()} == \
        {"chat": ["n1"], "pager": ["n1"]}
    # Both groups carry Alertmanager's group key, equal for the two routes.
    assert sent["chat"][0].group_key == sent["pager"][0].group_key == '{}/{}:{alertname="Xid79"}'
