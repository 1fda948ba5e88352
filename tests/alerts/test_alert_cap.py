"""A bound on the alerts the server holds from its inbound webhook (``--alerts-max``, Cortex's
``alertmanager_max_alerts_count``). Measured before it: 200,000 alerts from 20 webhooks took the
server to 547 MiB and its alerts page to 1.2-6 s (``bench/bench_alert_storm.py --active
200000``), about 2.7 KB an alert, and nothing stopped an upstream rule gone wild at millions.
Past the cap a new alert is refused with a 429 that counts what was stored and refused; an alert
already held is always updated or resolved (a resolution must never be lost), and the embedded
evaluator's alerts are bounded by their rule groups' ``limit`` instead, so that
ClusterWatchDegraded, which says the cap was reached, can always fire."""
from __future__ import annotations

from datetime import datetime, timezone

from fastapi.testclient import TestClient

from alerts.notify import config as alerting_config
from alerts.notify.component import component, from_settings
from alerts.notify.options import OPTIONS
from alerts.notify.pipeline import Pipeline
from alerts.model import Alert
from cwkernel.server import build_app
from tests.alerts.notify_support import Clock

TOKEN = {"Authorization": "Bearer hooktoken"}
NOW = datetime(2026, 12, 6, 0, 10, tzinfo=timezone.utc).timestamp()  # after the bodies' times
HOOK = "/api/v1/alertmanager/webhook"


def body(*names: str, status: str = "firing") -> dict:
    alerts = [{"status": status, "labels": {"alertname": name, "instance": "gpu-001", "severity": "critical"},
               "annotations": {}, "startsAt": "2026-12-06T00:00:00Z",
               "endsAt": "2026-12-06T00:05:00Z" if status == "resolved" else "0001-01-01T00:00:00Z",
               "generatorURL": "", "fingerprint": ""} for name in names]
    return {"version": "4", "groupKey": "{}:{}", "truncatedAlerts": 0, "status": status, "receiver": "am",
            "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {}, "externalURL": "", "alerts": alerts}


def serve(pipeline: Pipeline) -> TestClient:
    return TestClient(build_app([component(pipeline, "hooktoken")]))


def test_past_the_cap_new_alerts_are_refused_with_429_and_held_ones_still_change():
    clock = Clock(NOW)
    pipeline = Pipeline(alerting_config.load(), clock=clock, max_alerts=3)
    with serve(pipeline) as client:
        assert client.post(HOOK, json=body("A", "B"), headers=TOKEN).status_code == 200
        answer = client.post(HOOK, json=body("B", "C", "D", "E"), headers=TOKEN)
        assert answer.status_code == 429
        assert answer.json()["accepted"] == 2 and answer.json()["refused"] == 2
        assert "3 alerts" in answer.json()["error"] and "--alerts-max" in answer.json()["error"]
        assert sorted(a["labels"]["alertname"] for a in client.get("/api/alerts").json()) == ["A", "B", "C"]
        # Full: a held alert's resolution is taken all the same.
        assert client.post(HOOK, json=body("A", status="resolved"), headers=TOKEN).status_code == 200
        assert [a["state"] for a in client.get("/api/alerts", params={"state": "resolved"}).json()] == ["resolved"]
        problems = pipeline.health()
        assert "alerts_at_cap" in problems and "2 new alert" in problems["alerts_at_cap"]
        metrics = {m.name: m for m in pipeline.metrics.collect()}
        assert metrics["clusterwatch_alerts_refused"].samples[0].value == 2
        # Once the resolved one has gone, there is room again.
        clock.advance(3600)
        pipeline.store.gc(clock())
        assert client.post(HOOK, json=body("F"), headers=TOKEN).status_code == 200
        clock.advance(3600)
        assert "alerts_at_cap" not in pipeline.health()


def test_the_evaluators_alerts_are_not_held_to_the_cap():
    pipeline = Pipeline(alerting_config.load(), clock=Clock(NOW), max_alerts=1)
    pipeline.receive([Alert({"alertname": "Upstream", "severity": "critical"}, starts_at=1.0)])
    pipeline.notify([Alert({"alertname": "ClusterWatchDegraded", "severity": "warning"}, starts_at=1.0)])
    assert sorted(a.labels["alertname"] for a in pipeline.store.current()) == ["ClusterWatchDegraded", "Upstream"]


def test_the_cap_is_a_setting_with_a_default_and_zero_lifts_it():
    assert {o.name: o.default for o in OPTIONS}["alerts_max"] == 500_000
    _, pipeline = from_settings({"alerts_max": 2})
    assert len(pipeline.receive([Alert({"alertname": n}, starts_at=1.0) for n in "abc"])) == 2
    _, unbounded = from_settings({"alerts_max": 0})
    assert len(unbounded.receive([Alert({"alertname": n}, starts_at=1.0) for n in "abc"])) == 3
