"""Inbound Alertmanager webhook: the three 0.25 fixtures accepted (and with the fields newer
versions add), bearer token and HMAC, 401 on a bad token, 400 with the reason on bad bodies;
accepted alerts are in GET /api/alerts."""
from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from alerts.notify import config as alerting_config
from alerts.notify.component import component, install_operator_token
from alerts.notify.integrations.webhook import sign
from alerts.notify.pipeline import Pipeline
from clusterwatch.server import build_app
from tests.conftest import FIXTURES

FIXTURE_FILES = sorted((FIXTURES / "alertmanager-0.25").glob("*.json"))
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
