"""Many silences at once: a maintenance script that silences each node of a 16,384-node cluster
on its own, during an alert storm. An alert is checked only against the silences that could
match it, and the number of silences in force is bounded as Alertmanager's
``--silences.max-silences`` bounds it.

Observed before: every alert was checked against every silence, on every flush of its group
and every judgement of the alerts page: 10,000 alerts against 5,000 one-node silences took
3.4 s of the interpreter, which the scraper and the rule evaluator share (16,384 silences and a
storm's 50,000 alerts: about a minute per pass); and a script creating silences in a loop had no
bound at all.
"""
from __future__ import annotations

import random

import pytest
from fastapi.testclient import TestClient

from alerts import silences as silences_module
from alerts.notify.component import from_settings, install_operator_token
from alerts.notify.matchers import AlertMatcher, matches_all, parse_matchers
from alerts.notify.options import OPTIONS
from alerts.notify.sqlite import Database
from alerts.silences import SilenceError, SilenceStore
from cwkernel.server import build_app
from tests.alerts.notify_support import START, Clock, alert


@pytest.fixture
def checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The ids of the silences whose matchers were tried, in order."""
    tried: list[str] = []
    real = silences_module.Silence.matches

    def counting(silence: silences_module.Silence, checked_alert) -> bool:
        tried.append(silence.id)
        return real(silence, checked_alert)

    monkeypatch.setattr(silences_module.Silence, "matches", counting)
    return tried


def test_an_alert_is_checked_only_against_silences_that_could_match_it(checks: list[str]) -> None:
    store = SilenceStore(Database(), Clock(START))
    for node in range(5000):
        store.create(parse_matchers(f'instance="node-{node:05d}"'), START + 3600, "ops", "maintenance")
    broad = store.create(parse_matchers('alertname=~"Gpu.*"'), START + 3600, "ops", "regex only")
    hot = alert(alertname="GpuHot", instance="node-00042")
    muted = store.muted_by(hot, START + 1)
    assert broad.id in muted and len(muted) == 2
    assert len(checks) <= 3, f"{len(checks)} silences tried for one alert"
    checks.clear()
    assert store.muted_by(alert(alertname="NodeDown", instance="gpu-001"), START + 1) == []
    assert len(checks) <= 2
    for node in range(2000):  # the usual shape: one alert, node by node
        store.create(parse_matchers(f'alertname="GpuXid", instance="gpu-{node:04d}"'), START + 3600, "ops", "rma")
    checks.clear()
    assert len(store.muted_by(alert(alertname="GpuXid", instance="gpu-0007"), START + 1)) == 2
    assert len(checks) <= 4, f"{len(checks)} silences tried for one alert"


def test_the_index_mutes_exactly_what_checking_every_silence_mutes() -> None:
    clock = Clock(START)
    store = SilenceStore(Database(), clock)
    rng = random.Random(7)
    names, values = ["alertname", "instance", "gpu", "severity"], ["a", "b", "c", ""]
    for _ in range(300):
        matchers = [AlertMatcher(rng.choice(names), rng.choice(["=", "!=", "=~", "!~"]), rng.choice(values + ["a|b"]))
                    for _ in range(rng.randint(1, 3))]
        try:
            store.create(matchers, START + rng.choice([10, 3600]), "ops", "random",
                         starts_at=START + rng.choice([0, 0, 100]))
        except SilenceError:
            continue  # one that would silence everything
    silences = store.list()
    for when in (START + 1, START + 200, START + 5000):
        clock.now = when
        for _ in range(300):
            labels = {name: rng.choice(values) for name in names if rng.random() < 0.8}
            probe = alert(**{k: v for k, v in labels.items()})
            expected = sorted(s.id for s in silences if s.state(when) == "active" and matches_all(s.matchers,
                                                                                                   probe.labels))
            assert sorted(store.muted_by(probe, when)) == expected
    clock.now = START + 1
    active = next(s for s in silences if s.state(START + 1) == "active" and all(m.op == "=" for m in s.matchers))
    probe = alert(**{m.name: m.value for m in active.matchers})
    assert active.id in store.muted_by(probe, START + 1)
    store.expire(active.id)
    assert active.id not in store.muted_by(probe, START + 1)


def test_silences_in_force_are_bounded_and_expiring_one_makes_room() -> None:
    clock = Clock(START)
    store = SilenceStore(Database(), clock, max_silences=3)
    made = [store.create(parse_matchers(f'instance="n{i}"'), START + 3600, "ops", "x") for i in range(3)]
    with pytest.raises(SilenceError, match=r"exceeded maximum number of silences: 3 \(limit: 3\)"):
        store.create(parse_matchers('instance="n9"'), START + 3600, "ops", "x")
    store.expire(made[0].id)
    store.create(parse_matchers('instance="n9"'), START + 3600, "ops", "x")  # expired ones do not count
    store.end_at(made[1].id, START + 60)  # changing one in force is never refused


def test_serve_sets_the_bound_and_the_api_refuses_past_it_with_a_400() -> None:
    assert {o.name: o.default for o in OPTIONS}["silences_max"] == silences_module.DEFAULT_MAX_SILENCES
    built, pipeline = from_settings({"silences_max": 2})
    app = build_app([built])
    install_operator_token(app, "optoken")
    operator = {"Authorization": "Bearer optoken"}
    with TestClient(app) as client:
        made = [client.post("/api/silences", headers=operator, json={
            "matchers": [f'instance="n{i}"'], "duration": "1h", "comment": "rma"}) for i in range(3)]
        assert [answer.status_code for answer in made] == [201, 201, 400]
        assert "exceeded maximum number of silences: 2 (limit: 2)" in made[2].json()["detail"]
        assert client.delete(f"/api/silences/{made[0].json()['id']}", headers=operator).status_code == 200
        assert client.post("/api/silences", headers=operator, json={
            "matchers": ['instance="n9"'], "duration": "1h", "comment": "rma"}).status_code == 201
    pipeline.close()
