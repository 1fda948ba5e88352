"""The automation API and metrics: reads open, approve/reject need an operator."""
from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, generate_latest

from remediation import api
from remediation.metrics import RemediationCollector
from cwkernel.auth import OperatorAuth, install

from tests.alerts.remediation_helpers import Harness, alert


def _client(h: Harness) -> TestClient:
    app = FastAPI()
    app.include_router(api.build_router(h.engine))
    install(app, OperatorAuth({"carol": "s3cret"}))
    return TestClient(app)


def test_cases_audit_and_approval_through_the_api():
    h = Harness()
    h.policy.classes[0].__dict__["mode"] = "approve"
    h.receive(alert())
    client = _client(h)
    body = client.get("/api/automation/cases").json()
    assert body["mode"] == "auto" and body["cases"][0]["state"] == "pending_approval"
    assert client.post("/api/automation/cases/1/approve").status_code == 401
    answer = client.post("/api/automation/cases/1/approve", headers={"Authorization": "Bearer s3cret"})
    assert answer.status_code == 200 and answer.json()["approved_by"] == "carol"
    assert client.post("/api/automation/cases/1/reject", headers={"Authorization": "Bearer s3cret"}).status_code == 409
    assert client.post("/api/automation/cases/99/approve", headers={"Authorization": "Bearer s3cret"}).status_code == 404
    audit = client.get("/api/automation/audit").json()
    assert {"time", "alert", "node", "job_id", "action", "mode", "actor", "result"} <= set(audit[0])
    assert any(e["action"] == "drain" and e["actor"] == "operator:carol" for e in audit)


def test_metrics():
    h = Harness(max_drained_nodes=3, max_drained_percent=100)
    h.receive(alert("GpuRowRemapFailed"))
    h.step()  # metrics show the scheduler as the last evaluation read it
    registry = CollectorRegistry()
    registry.register(RemediationCollector(h.engine))
    text = generate_latest(registry).decode()
    assert 'clusterwatch_remediation_actions_total{action="drain",result="done"} 1.0' in text
    assert "clusterwatch_remediation_nodes_drained 1.0" in text
    assert "clusterwatch_remediation_budget_remaining 2.0" in text
    assert "clusterwatch_remediation_pending_approvals 0.0" in text
