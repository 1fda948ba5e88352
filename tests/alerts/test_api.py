"""The alerting JSON API: states (firing/silenced/inhibited/acknowledged), filters, silences
created and expired through the API, operator token on every state change, notifications list."""
from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from alerts.notify.component import component, install_operator_token
from alerts.notify.pipeline import Pipeline
from cwkernel.server import build_app
from tests.alerts.notify_support import Clock, alert, config

OP = {"Authorization": "Bearer optoken"}
CONFIG = """
global: {resolve_timeout: 1d}
route: {receiver: log, group_by: [instance], group_wait: 0s}
receivers: [{name: log, log_configs: [{}]}]
inhibit_rules:
  - {source_matchers: [alertname="NodeDown"], target_matchers: ['alertname!="NodeDown"'], equal: [instance]}
"""


@pytest.fixture
def setup():
    clock = Clock()
    pipeline = Pipeline(config(CONFIG), clock=clock)
    app = build_app([component(pipeline)])
    install_operator_token(app, "optoken")
    pipeline.notify([alert(clock.now, alertname="NodeDown", instance="n1"),
                     alert(clock.now, alertname="GpuHot", instance="n1", severity="warning"),
                     alert(clock.now, alertname="GpuHot", instance="n2", severity="warning"),
                     alert(clock.now, alertname="Xid79", instance="n3", severity="critical")])
    with TestClient(app) as client:
        yield client, pipeline


def states(client, **params):
    return {(a["labels"]["alertname"], a["labels"]["instance"]): a["state"]
            for a in client.get("/api/alerts", params=params).json()}


def test_states_silence_ack_and_expire(setup):
    client, pipeline = setup
    assert states(client)[("GpuHot", "n1")] == "inhibited"
    created = client.post("/api/silences", headers=OP, json={
        "matchers": [{"name": "instance", "value": "n[23]", "isRegex": True}], "duration": "2h",
        "createdBy": "alice", "comment": "maintenance"})
    assert created.status_code == 201, created.text
    silence = created.json()
    assert silence["state"] == "active" and silence["matchers"][0]["isRegex"] is True
    ack = client.post(f"/api/alerts/{alert(alertname='NodeDown', instance='n1').fingerprint}/ack", headers=OP,
                      json={"comment": "on it"})
    assert ack.status_code == 200 and ack.json()["acknowledged"]["by"] == "operator"
    assert states(client) == {("NodeDown", "n1"): "acknowledged", ("GpuHot", "n1"): "inhibited",
                              ("GpuHot", "n2"): "silenced", ("Xid79", "n3"): "silenced"}
    assert set(states(client, state="silenced")) == {("GpuHot", "n2"), ("Xid79", "n3")}
    assert set(states(client, filter='severity="critical"')) == {("Xid79", "n3")}
    assert [s["id"] for s in client.get("/api/silences", params={"state": "active"}).json()] == [silence["id"]]
    expired = client.delete(f"/api/silences/{silence['id']}", headers=OP)
    assert expired.status_code == 200 and expired.json()["state"] == "expired"
    assert states(client)[("GpuHot", "n2")] == "firing"
    assert client.delete(f"/api/silences/{silence['id']}", headers=OP).status_code == 409
    assert client.delete("/api/silences/nope", headers=OP).status_code == 404


@pytest.mark.parametrize("method,path,body", [
    ("post", "/api/silences", {"matchers": ['a="b"'], "duration": "1h", "createdBy": "x", "comment": "y"}),
    ("post", "/api/alerts/0000/ack", {"comment": "x"}),
    ("delete", "/api/silences/x", None),
])
@pytest.mark.parametrize("headers,code", [({}, 401), ({"Authorization": "Bearer nope"}, 403)])
def test_state_changes_need_the_operator_token(setup, method, path, body, headers, code):
    client, pipeline = setup
    kwargs = {"json": body} if body else {}
    assert getattr(client, method)(path, headers=headers, **kwargs).status_code == code
    assert pipeline.silences.list() == []


@pytest.mark.parametrize("body,message", [
    ({"matchers": ['a=~"("'], "duration": "1h", "createdBy": "x", "comment": "y"}, "invalid regex"),
    ({"matchers": ['a=~".*"'], "duration": "1h", "createdBy": "x", "comment": "y"}, "empty string"),
    ({"matchers": ['a="b"'], "createdBy": "x", "comment": "y"}, "endsAt or duration"),
])
def test_bad_silence_is_400(setup, body, message):
    client, _ = setup
    response = client.post("/api/silences", headers=OP, json=body)
    assert response.status_code == 400 and message in response.json()["detail"]


def test_notifications_list_and_bad_filter(setup):
    client, pipeline = setup
    pipeline.flush()
    pipeline.deliver()
    rows = client.get("/api/notifications").json()
    assert {r["state"] for r in rows} == {"delivered"} and len(rows) == 3  # one group per instance
    assert client.get("/api/alerts", params={"filter": "bad matcher"}).status_code == 400


def test_silence_records_the_authenticated_operator_not_only_the_claimed_name(setup):
    client, _ = setup
    claimed = client.post("/api/silences", headers=OP, json={
        "matchers": ['instance="n2"'], "duration": "1h", "createdBy": "mallory", "comment": "x"}).json()
    assert claimed["createdBy"] == "mallory (via operator)"
    plain = client.post("/api/silences", headers=OP, json={
        "matchers": ['instance="n3"'], "duration": "1h", "comment": "x"}).json()
    assert plain["createdBy"] == "operator"


@pytest.mark.parametrize("body,message", [
    ({"matchers": ['a="b"'], "duration": "99999999y", "createdBy": "x", "comment": "y"}, "endsAt"),
    ({"matchers": ['a="b"'], "duration": "1e400s", "createdBy": "x", "comment": "y"}, "duration"),
    ({"matchers": ['a="b"'], "startsAt": "9999-12-31T23:00:00Z", "duration": "2h", "createdBy": "x",
      "comment": "y"}, "endsAt"),
])
def test_silence_ending_past_what_can_be_shown_is_refused_and_not_stored(setup, body, message):
    client, pipeline = setup
    response = client.post("/api/silences", headers=OP, json=body)
    assert response.status_code == 400 and message in response.json()["detail"], response.text
    assert pipeline.silences.list() == []
    assert client.get("/api/silences").status_code == 200
    assert client.get("/api/alerts").status_code == 200


@pytest.mark.parametrize("pattern", ["(?=x)y", "(a)\\1", "a{2000}"])
def test_regex_re2_refuses_is_a_400(setup, pattern):
    client, pipeline = setup
    response = client.post("/api/silences", headers=OP, json={
        "matchers": [{"name": "instance", "value": pattern, "isRegex": True}], "duration": "1h", "comment": "x"})
    assert response.status_code == 400 and "invalid regex" in response.json()["detail"], response.text
    assert pipeline.silences.list() == []
    bad_filter = client.get("/api/alerts", params={"filter": f'instance=~"{pattern}"'.replace("\\", "\\\\")})
    assert bad_filter.status_code == 400 and "invalid regex" in bad_filter.json()["detail"]


def test_regexes_are_anchored_like_alertmanager(setup):
    client, pipeline = setup
    pipeline.notify([alert(pipeline.clock(), alertname="Trail", instance="n4\n")])
    # Go's (RE2's) `$` is the end of the text: "n4\n" is not "n4".
    assert set(states(client, filter='instance=~"n4"')) == set()
    assert set(states(client, filter='instance=~"n"')) == set()
    assert set(states(client, filter='instance=~"n4\\n"')) == {("Trail", "n4\n")}
    assert set(states(client, filter='instance=~"n[12]"')) == {("NodeDown", "n1"), ("GpuHot", "n1"),
                                                                ("GpuHot", "n2")}


def test_alerts_come_in_pages_with_the_total(setup):
    client, pipeline = setup
    pipeline.notify([alert(pipeline.clock() - i, alertname="Many", instance=f"m{i:03d}") for i in range(30)])
    first = client.get("/api/alerts", params={"limit": 10})
    assert first.headers["X-Total-Count"] == "34" and len(first.json()) == 10
    rest = client.get("/api/alerts", params={"limit": 100, "offset": 10}).json()
    assert len(rest) == 24
    assert {a["fingerprint"] for a in first.json()}.isdisjoint(a["fingerprint"] for a in rest)
    assert client.get("/api/alerts", params={"limit": 0}).status_code == 422
    assert client.get("/api/alerts", params={"limit": 10**6}).status_code == 422
