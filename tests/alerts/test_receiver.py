"""Inbound Alertmanager webhook: the three 0.25 fixtures accepted (and with the fields newer
versions add), bearer token and HMAC, 401 on a bad token, 400 with the reason on bad bodies;
accepted alerts are in GET /api/alerts."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from alerts.notify import config as alerting_config
from alerts.notify.component import component, install_operator_token
from alerts.notify.integrations.webhook import sign
from alerts.notify.pipeline import Pipeline
from cwkernel.server import build_app
from tests import httpraw

FIXTURE_FILES = sorted((Path(__file__).resolve().parents[1] / "fixtures" / "alertmanager-0.25").glob("*.json"))
TOKEN = {"Authorization": "Bearer hooktoken"}


@pytest.fixture
def client():
    pipeline = Pipeline(alerting_config.load())
    app = build_app([component(pipeline, "hooktoken", "hmackey")])
    install_operator_token(app, "optoken")
    with TestClient(app) as test_client:
        yield test_client


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=lambda p: p.stem)
def test_fixtures_accepted_and_listed(client, path):
    body = json.loads(path.read_text())
    response = client.post("/api/v1/alertmanager/webhook", json=body, headers=TOKEN)
    assert response.status_code == 200, response.text
    assert response.json()["fingerprints"] == [a["fingerprint"] for a in body["alerts"]]
    (listed,) = client.get("/api/alerts").json()
    assert listed["labels"] == body["alerts"][0]["labels"] and listed["state"] == "firing"
    assert listed["source"] == "alertmanager:webhook"


def test_newer_fields_accepted(client):
    body = json.loads(FIXTURE_FILES[0].read_text())
    body.update(notification_reason="new_alerts", routeLabels={"team": "gpu"})
    assert client.post("/api/v1/alertmanager/webhook", json=body, headers=TOKEN).status_code == 200


def test_resolved_enters_history(client):
    body = json.loads(FIXTURE_FILES[0].read_text())
    client.post("/api/v1/alertmanager/webhook", json=body, headers=TOKEN)
    body["status"] = body["alerts"][0]["status"] = "resolved"
    body["alerts"][0]["endsAt"] = "2026-11-24T01:20:00.123456789Z"
    assert client.post("/api/v1/alertmanager/webhook", json=body, headers=TOKEN).status_code == 200
    history = client.get("/api/alerts/history").json()
    assert [h["status"] for h in history] == ["resolved", "firing"]
    assert client.get("/api/alerts", params={"state": "resolved"}).json()[0]["endsAt"] == "2026-11-24T01:20:00.123456Z"


def test_hmac_signature_accepted(client):
    raw = FIXTURE_FILES[1].read_bytes()
    response = client.post("/api/v1/alertmanager/webhook", content=raw,
                           headers={"X-ClusterWatch-Signature": sign("hmackey", raw)})
    assert response.status_code == 200
    bad = client.post("/api/v1/alertmanager/webhook", content=raw,
                      headers={"X-ClusterWatch-Signature": sign("other", raw)})
    assert bad.status_code == 401


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic aG9va3Rva2Vu"}])
def test_bad_token_401(client, headers):
    raw = FIXTURE_FILES[0].read_bytes()
    assert client.post("/api/v1/alertmanager/webhook", content=raw, headers=headers).status_code == 401
    assert client.get("/api/alerts").json() == []


@pytest.mark.parametrize("mutate,reason", [
    (lambda b: "{not json", "not JSON"),
    (lambda b: {**b, "version": "3"}, "version"),
    (lambda b: {k: v for k, v in b.items() if k != "alerts"}, "alerts"),
    (lambda b: {**b, "alerts": [{**b["alerts"][0], "labels": {"a": 1}}]}, "alerts.0.labels.a"),
    (lambda b: {**b, "alerts": [{**b["alerts"][0], "startsAt": "yesterday"}]}, "alerts.0.startsAt"),
    (lambda b: {**b, "alerts": [{**b["alerts"][0], "status": "resolved", "endsAt": "0001-01-01T00:00:00Z"}]},
     "resolved alert without endsAt"),
])
def test_malformed_body_400_with_reason(client, caplog, mutate, reason):
    body = mutate(json.loads(FIXTURE_FILES[0].read_text()))
    raw = body if isinstance(body, str) else json.dumps(body)
    response = client.post("/api/v1/alertmanager/webhook", content=raw, headers=TOKEN)
    assert response.status_code == 400 and reason in response.json()["detail"]
    assert any("rejected" in r.message for r in caplog.records)


def test_unconfigured_receiver_refuses():
    app = build_app([component(Pipeline(alerting_config.load()))])
    with TestClient(app) as test_client:
        response = test_client.post("/api/v1/alertmanager/webhook", content=FIXTURE_FILES[0].read_bytes())
        assert response.status_code == 403


def test_openapi_documents_the_webhook_body(client):
    schema = client.get("/openapi.json").json()
    body = schema["paths"]["/api/v1/alertmanager/webhook"]["post"]["requestBody"]["content"]["application/json"]
    assert "groupKey" in body["schema"]["properties"]
    assert "$ref" not in json.dumps(body)


@pytest.fixture
def served():
    from tests.alerts.notify_support import ServedApp

    pipeline = Pipeline(alerting_config.load())
    app = ServedApp(build_app([component(pipeline, "hooktoken", "hmackey")]))
    yield app, pipeline
    app.stop()


def raw_status(port: int, length: int, *auth: str) -> int:
    """The status answered to a webhook request that announces ``length`` bytes of body and sends
    one: the rest of the body is never sent."""
    headers = {"Content-Type": "application/json", "Content-Length": str(length)}
    headers.update(line.split(": ", 1) for line in auth)
    with httpraw.connect(port) as sock:
        sock.sendall(httpraw.request_head("POST", receiver_path(), headers) + b"{")
        return httpraw.read_response(sock).status


def receiver_path() -> str:
    from alerts.receiver import PATH

    return PATH


def test_token_is_checked_before_the_body_is_read(served):
    """A body announced without a valid token is refused from the headers: its bytes are never
    waited for (before: the whole body was read, and kept, first)."""
    app, pipeline = served
    for auth in ((), ("Authorization: Bearer wrong",), ("Authorization: Basic aG9va3Rva2Vu",)):
        assert raw_status(app.port, 1024 * 1024, *auth) == 401
    # Announced far over the limit: refused at once too, whichever check speaks first.
    assert raw_status(app.port, 400 * 1024 * 1024) in (401, 413)
    assert pipeline.store.current() == []


def test_body_over_the_limit_is_413_from_its_length(served):
    from alerts.receiver import MAX_BODY

    app, _ = served
    assert raw_status(app.port, MAX_BODY + 1, "Authorization: Bearer hooktoken") == 413


def test_body_over_the_limit_is_413_while_streaming(served):
    """Without a Content-Length (chunked) the limit is enforced on the bytes as they arrive;
    signed requests too (the signature is checked after the body, within the limit)."""
    import httpx

    from alerts.receiver import MAX_BODY

    app, pipeline = served
    def chunks():
        piece = b" " * 1024 * 1024
        for _ in range(MAX_BODY // len(piece) + 2):
            yield piece

    url = f"http://127.0.0.1:{app.port}{receiver_path()}"
    for headers in ({"Authorization": "Bearer hooktoken"}, {"X-ClusterWatch-Signature": "sha256=00"}):
        try:
            response = httpx.post(url, content=chunks(), headers=headers, timeout=60)
        except httpx.HTTPError:
            continue  # the server may close the connection while the client still sends
        assert response.status_code == 413, response.text
    assert pipeline.store.current() == []


def test_deeply_nested_body_is_400(client):
    for body in ("[" * 100_000 + "]" * 100_000, '{"alerts": ' + "[" * 100_000 + "]" * 100_000 + "}"):
        response = client.post("/api/v1/alertmanager/webhook", content=body, headers=TOKEN)
        assert response.status_code == 400 and "nested" in response.json()["detail"], response.text


def with_alert(body: dict, index: int = 0, **changes) -> dict:
    alerts = [dict(a) for a in body["alerts"]] * (index + 1)
    alerts[index] = {**alerts[index], **changes}
    return {**body, "alerts": alerts}


@pytest.mark.parametrize("changes,where,reason", [
    ({"labels": {}}, "alerts.2.labels", "at least one label"),
    ({"labels": {"alertname": "A", "bad-name": "x"}}, "alerts.2.labels", "invalid label name 'bad-name'"),
    ({"labels": {"alertname": "A", "0x": "x"}}, "alerts.2.labels", "invalid label name '0x'"),
    ({"labels": {"alertname": "A", "instance": "x" * 1024 * 1024}}, "alerts.2.labels.instance", "longer than"),
    ({"annotations": {"summary": "x" * 1024 * 1024}}, "alerts.2.annotations.summary", "longer than"),
    ({"annotations": {"not valid": "x"}}, "alerts.2.annotations", "invalid label name 'not valid'"),
])
def test_alerts_alertmanager_would_refuse_are_400_naming_the_field(client, changes, where, reason):
    body = with_alert(json.loads(FIXTURE_FILES[0].read_text()), 2, **changes)
    response = client.post("/api/v1/alertmanager/webhook", json=body, headers=TOKEN)
    assert response.status_code == 400, response.text
    detail = response.json()["detail"]
    assert detail.startswith(where) and reason in detail, detail
    assert client.get("/api/alerts").json() == []


def test_too_many_alerts_in_one_message_is_400(client):
    from alerts.receiver import MAX_ALERTS

    body = json.loads(FIXTURE_FILES[0].read_text())
    body["alerts"] = body["alerts"] * (MAX_ALERTS + 1)
    response = client.post("/api/v1/alertmanager/webhook", json=body, headers=TOKEN)
    assert response.status_code == 400 and f"at most {MAX_ALERTS}" in response.json()["detail"]


def test_a_busy_store_holds_webhooks_not_the_server(served):
    """While the alert store is busy (its lock held), webhooks wait off the event loop: the
    server still answers; at most MAX_IN_FLIGHT wait, the next is told to retry (503)."""
    import threading

    import httpx

    from alerts.receiver import MAX_IN_FLIGHT

    app, pipeline = served
    base = f"http://127.0.0.1:{app.port}"
    body = FIXTURE_FILES[0].read_bytes()
    statuses: list[int] = []

    def post() -> None:
        statuses.append(httpx.post(f"{base}{receiver_path()}", content=body, headers=TOKEN, timeout=120).status_code)

    with pipeline.store._lock:
        posts = [threading.Thread(target=post, daemon=True) for _ in range(MAX_IN_FLIGHT + 1)]
        for thread in posts:
            thread.start()
        deadline = time.monotonic() + 60
        while 503 not in statuses and time.monotonic() < deadline:
            assert httpx.get(f"{base}/-/healthy", timeout=10).status_code == 200
            time.sleep(0.05)
        assert statuses == [503]
    for thread in posts:
        thread.join(60)
    assert sorted(statuses) == [200] * MAX_IN_FLIGHT + [503]


def test_a_large_storm_within_the_limit_is_accepted_end_to_end(served):
    """The route declares its limit, so the server's body-size guard lets a storm of several
    megabytes through (Alertmanager sends one group's alerts in one message)."""
    import httpx

    from alerts.receiver import MAX_BODY

    app, pipeline = served
    body = json.loads(FIXTURE_FILES[0].read_text())
    template = body["alerts"][0]
    body["alerts"] = [{**template, "labels": {**template["labels"], "instance": f"node-{i:05d}"},
                       "annotations": {"description": "x" * 4000}} for i in range(2000)]
    raw = json.dumps(body).encode()
    assert 4 * 1024 * 1024 < len(raw) < MAX_BODY
    response = httpx.post(f"http://127.0.0.1:{app.port}{receiver_path()}", content=raw, headers=TOKEN, timeout=120)
    assert response.status_code == 200, response.text[:300]
    assert len(pipeline.store.current()) == 2000
