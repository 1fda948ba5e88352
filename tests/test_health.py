"""A component that works around a problem says so: /-/ready's body and the server's metrics."""
from __future__ import annotations

from fastapi.testclient import TestClient

from cwkernel.server import Component, build_app


def _app(*components: Component):
    return TestClient(build_app(list(components)))


def test_a_healthy_server_is_ready_and_reports_zero_problems_per_component():
    with _app(Component("alerting", health=lambda: {})) as client:
        ready = client.get("/-/ready")
        assert ready.status_code == 200 and ready.text == "OK\n"
        assert 'clusterwatch_component_problems{component="alerting"} 0.0' in client.get("/metrics").text


def test_a_degraded_component_stays_ready_and_names_its_problem():
    problems = {"state_db_corrupt": "alerting.db was corrupt; moved aside to alerting.db.corrupt-1; started fresh"}
    with _app(Component("alerting", health=lambda: problems), Component("dashboard")) as client:
        ready = client.get("/-/ready")
        # Still serving: a failed readiness probe would take the watcher out of service.
        assert ready.status_code == 200
        assert ready.text.startswith("Degraded")
        assert "alerting: state_db_corrupt: alerting.db was corrupt" in ready.text
        metrics = client.get("/metrics").text
        assert 'clusterwatch_component_problems{component="alerting"} 1.0' in metrics
        assert 'clusterwatch_component_problem_info{component="alerting",reason="state_db_corrupt"} 1.0' in metrics
        assert 'component="dashboard"' not in metrics  # no hook, nothing claimed


def test_a_health_check_that_raises_is_reported_not_raised():
    def broken() -> dict[str, str]:
        raise RuntimeError("disk on fire")

    with _app(Component("rules", health=broken)) as client:
        ready = client.get("/-/ready")
        assert ready.status_code == 200 and "rules: health_check_failed: RuntimeError: disk on fire" in ready.text
