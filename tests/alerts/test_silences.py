"""Silences: matching (incl. regex), pending/active/expired by time, expiry, persistence, and
their effect in the pipeline; inhibition with equal labels."""
from __future__ import annotations

import pytest

from alerts.notify.matchers import parse_matchers
from alerts.notify.sqlite import Database
from alerts.silences import ACTIVE, EXPIRED, PENDING, SilenceError, SilenceStore
from tests.alerts.notify_support import START, Clock, Harness, alert


def test_regex_silence_and_states(tmp_path):
    clock = Clock(START)
    store = SilenceStore(Database(tmp_path / "s.db"), clock)
    silence = store.create(parse_matchers('instance=~"node0[1-3]", alertname="GpuHot"'), START + 3600, "ops",
                           "maintenance", starts_at=START + 60)
    hot = alert(alertname="GpuHot", instance="node02")
    assert silence.state(clock()) == PENDING and store.muted_by(hot, clock()) == []
    clock.now = START + 61
    assert store.muted_by(hot, clock()) == [silence.id]
    assert store.muted_by(alert(alertname="GpuHot", instance="node04"), clock()) == []
    assert store.muted_by(alert(alertname="Other", instance="node02"), clock()) == []
    # Persisted: a new store over the same file sees it.
    again = SilenceStore(Database(tmp_path / "s.db"), clock)
    assert again.get(silence.id).state(clock()) == ACTIVE
    expired = again.expire(silence.id)
    assert expired.state(clock()) == EXPIRED and again.muted_by(hot, clock()) == []
    with pytest.raises(SilenceError):
        again.expire(silence.id)
    assert [s.id for s in again.list(EXPIRED)] == [silence.id]


@pytest.mark.parametrize("matchers,ends,message", [
    ([], 10, "at least one matcher"),
    (['alertname=~".*"'], 10, "must not match the empty string"),
    (['alertname="A"'], -10, "endsAt must be after"),
])
def test_invalid_silences(matchers, ends, message):
    store = SilenceStore(Database(), Clock(START))
    with pytest.raises(SilenceError, match=message):
        store.create([m for text in matchers for m in parse_matchers(text)], START + ends, "ops", "why")


def test_silenced_alerts_are_not_notified_until_the_silence_ends():
    h = Harness()
    h.pipeline.silences.create(parse_matchers('instance="n1"'), START + 100, "ops", "reboot")
    h.pipeline.notify([alert(START, alertname="A", instance="n1"), alert(START, alertname="A", instance="n2")])
    assert h.at(30) == [("firing", ["n2"])]
    assert h.at(330) == [("firing", ["n1", "n2"])]  # silence over: n1 is news


INHIBIT = """
global: {resolve_timeout: 1d}
route:
  receiver: hook
  group_by: [alertname, instance]
  group_wait: 30s
receivers:
  - name: hook
    hook_configs: [{name: capture}]
inhibit_rules:
  - source_matchers: [alertname="NodeDown"]
    target_matchers: ['alertname!="NodeDown"']
    equal: [instance]
  - source_matchers: [severity="critical"]
    target_matchers: [severity="warning"]
    equal: [instance]
"""


def test_node_down_inhibits_that_nodes_gpu_alerts_only():
    h = Harness(INHIBIT)
    h.pipeline.notify([alert(START, alertname="NodeDown", instance="n1"),
                       alert(START, alertname="GpuLost", instance="n1", gpu="3"),
                       alert(START, alertname="GpuLost", instance="n2", gpu="0")])
    sent = h.at(30)
    assert sorted(sent) == [("firing", ["n1"]), ("firing", ["n2"])]
    assert sorted(a.name for n in h.sent for a in n.alerts) == ["GpuLost", "NodeDown"]
    gpu_alert = next(a for a in h.pipeline.store.current() if a.labels.get("gpu") == "3")
    assert h.pipeline.inhibitor.muted_by(gpu_alert, START + 30) != []
    # The node is back: its GPU alert is no longer inhibited and goes out.
    h.pipeline.notify([alert(START, START + 40, alertname="NodeDown", instance="n1")])
    assert h.at(60) == []  # each group's next flush is one group_interval after its first
    assert sorted(h.at(330)) == [("firing", ["n1"]), ("resolved", ["n1"])]
    assert sorted(a.name for a in h.sent[-2].alerts + h.sent[-1].alerts) == ["GpuLost", "NodeDown"]



def test_alert_matching_both_sides_is_not_inhibited_by_its_peer():
    h = Harness(INHIBIT)
    a = alert(START, alertname="X", instance="n1", severity="critical")
    b = alert(START, alertname="Y", instance="n1", severity="critical")
    h.pipeline.notify([a, b])
    assert h.pipeline.inhibitor.muted_by(a, START) == []
    # A warning on the same instance is inhibited; on another instance it is not.
    assert h.pipeline.inhibitor.muted_by(alert(alertname="Z", instance="n1", severity="warning"), START)
    assert not h.pipeline.inhibitor.muted_by(alert(alertname="Z", instance="n2", severity="warning"), START)


def test_a_stored_silence_that_cannot_be_shown_breaks_nothing(tmp_path, caplog):
    """Rows written by an older version (a 99999999y silence, a regex RE2 refuses, garbage) are
    kept out of the views; the rest are listed; each is logged once."""
    import json

    from fastapi.testclient import TestClient

    from alerts.notify import config as alerting_config
    from alerts.notify.component import component
    from alerts.notify.pipeline import Pipeline
    from cwkernel.server import build_app

    db = Database(tmp_path / "s.db")
    store = SilenceStore(db, Clock(START))
    good = store.create(parse_matchers('instance="n1"'), START + 3600, "ops", "fine")
    forever = json.dumps([{"name": "instance", "op": "=", "value": "n2"}])
    for row_id, matchers, ends in (("forever", forever, START + 99999999 * 31536000.0),
                                   ("lookahead", json.dumps([{"name": "a", "op": "=~", "value": "(?=x)"}]),
                                    START + 60),
                                   ("garbage", "{not json", START + 60)):
        db.execute("INSERT INTO silences VALUES (?, ?, ?, ?, ?, ?, ?)", (row_id, matchers, START, ends, "old",
                                                                         "older version", START))
    db.close()
    pipeline = Pipeline(alerting_config.load(), tmp_path / "s.db", clock=Clock(START + 10))
    with TestClient(build_app([component(pipeline)])) as client:
        for _ in range(2):
            listed = client.get("/api/silences")
            assert listed.status_code == 200
            assert client.get("/api/alerts").status_code == 200
    ids = {s["id"] for s in listed.json()}
    assert good.id in ids and not {"lookahead", "garbage"} & ids
    # A silence that ends too far out to be shown is kept (it still mutes) with its end clamped to
    # the last time that can be written, so that it can be seen and expired.
    forever_view = next(s for s in listed.json() if s["id"] == "forever")
    assert forever_view["endsAt"].startswith("9999-12-31") and forever_view["state"] == "active"
    assert pipeline.silences.muted_by(alert(alertname="X", instance="n2"), START + 10) == ["forever"]
    logged = [r.getMessage() for r in caplog.records if "silence" in r.getMessage()]
    for row_id in ("forever", "lookahead", "garbage"):
        assert sum(row_id in m for m in logged) == 1, logged
    assert set(pipeline.silences.unreadable) == {"lookahead", "garbage"}
    assert "2 stored silence(s) cannot be read" in pipeline.health()["silences_unreadable"]
