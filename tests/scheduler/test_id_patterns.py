"""A trailing newline never passes an id check (issue 14, finding 11): ``re.match`` with ``$``
accepted ``gpu-001\\n`` and ``1234\\n``. Checked everywhere an id reaches a scheduler command:
the action API itself, the remediation engine's alert labels and the dashboard's routes."""
from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from remediation import validate as remediation
from cwkernel.auth import OperatorAuth, install
from dashboard import params
from scheduler.actions import Actions
from scheduler.errors import ActionRefused
from tests.scheduler.fakes import FakeBackend

NODE = "gpu-001"
JOB = "1234"


@pytest.fixture
def actions():
    backend = FakeBackend()
    return Actions(backend, lambda: backend.snapshot, audit=lambda record: None), backend


@pytest.mark.parametrize("suffix", ["\n", "\r\n", "\n\n"])
def test_the_action_api_refuses_ids_with_a_line_end(actions, suffix: str) -> None:
    api, backend = actions
    node = backend.snapshot.nodes[0].name
    with pytest.raises(ActionRefused, match="not a job id"):
        api.requeue(JOB + suffix, "ops")
    for act in (lambda: api.drain(node + suffix, "maintenance", "ops"),
                lambda: api.reboot(node + suffix, "maintenance", "RESUME", "ops")):
        with pytest.raises(ActionRefused, match="not a single node name"):
            act()
    assert backend.executed == []
    assert api.requeue(JOB, "ops").ok is True  # the same ids without the line end go through
    assert [a.target for a in backend.executed] == [JOB]


@pytest.mark.parametrize("labels, field", [
    ({"alertname": "GpuXid79\n", "instance": NODE}, "alertname"),
    ({"alertname": "GpuXid79", "instance": NODE, "gpu": "3\n"}, "gpu"),
    ({"alertname": "GpuXid79", "instance": NODE, "job_id": JOB + "\n"}, "job_id"),
    ({"alertname": "GpuXid79", "instance": NODE + "\n"}, "instance"),
])
def test_remediation_refuses_alert_labels_with_a_line_end(actions, labels: dict, field: str) -> None:
    _, backend = actions
    snapshot = backend.snapshot
    labels = {**labels, "instance": labels["instance"].replace(NODE, snapshot.nodes[0].name)}
    with pytest.raises(remediation.LabelError, match=field):
        remediation.target(labels, snapshot, needs_node=True)


def test_dashboard_id_checks_refuse_a_line_end() -> None:
    for check, good in ((params.check_node, NODE), (params.check_job_id, JOB)):
        assert check(good) == good
        with pytest.raises(Exception) as refused:
            check(good + "\n")
        assert getattr(refused.value, "status_code", None) == 400
    with pytest.raises(ValueError):
        params.regex_of([NODE + "\n"])


def test_dashboard_routes_refuse_ids_with_a_line_end() -> None:
    from dashboard.routes import actions as action_routes
    from dashboard.routes import jobs, nodes

    backend = FakeBackend()
    adapter = type("Adapter", (), {"actions": Actions(backend, lambda: backend.snapshot, audit=lambda r: None)})()
    ctx = type("Ctx", (), {"scheduler": adapter, "clock": staticmethod(lambda: 1000.0)})()
    app = FastAPI()
    for router in (action_routes.build_router(ctx), jobs.build_router(ctx), nodes.build_router(ctx)):
        app.include_router(router)
    install(app, OperatorAuth({"alice": "s3cret"}))
    client = TestClient(app)
    node = backend.snapshot.nodes[0].name
    drained = client.post(f"/api/nodes/{node}%0A/drain", json={"reason": "maintenance"},
                          headers={"Authorization": "Bearer s3cret"})
    assert drained.status_code == 400 and "not a node name" in drained.json()["detail"]
    assert client.get(f"/api/nodes/{node}%0A").status_code == 400
    assert client.get(f"/api/jobs/{JOB}%0A").status_code == 400
    assert backend.executed == []
