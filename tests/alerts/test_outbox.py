"""Durable delivery: a receiver answering 503 gets everything once it recovers, with capped
exponential backoff and jitter; a restart in the middle loses nothing and sends nothing twice;
4xx is not retried; old rows expire (counted); metrics and the outbox list tell the state."""
from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from alerts.outbox import Backoff
from alerts.notify.pipeline import Pipeline
from tests.alerts.notify_support import CaptureServer, Clock, alert, config

START = Clock().now


def webhook_config(url: str, extra: str = "") -> str:
    return f"""
global: {{resolve_timeout: 1d}}
route: {{receiver: hook, group_by: [alertname], group_wait: 0s, group_interval: 1m}}
receivers:
  - name: hook
    webhook_configs:
      - url: {url}
        hmac_secret: s3cret
        headers: {{X-Team: gpu}}
        http_config: {{authorization: {{credentials: tok}}}}
        {extra}
"""


@pytest.fixture
def server():
    capture = CaptureServer(statuses=[503, 503, 503, 200])
    yield capture
    capture.close()


def pipeline(url: str, db=":memory:", clock=None, extra: str = "") -> Pipeline:
    return Pipeline(config(webhook_config(url, extra)), db, clock=clock or Clock(), rng=lambda: 0.5,
                    backoff=Backoff(initial=1.0, cap=8.0))


def test_backoff_is_exponential_capped_and_jittered():
    b = Backoff(initial=1.0, factor=2.0, cap=60.0)
    assert [b.delay(n, lambda: 1.0) for n in (1, 2, 3, 4, 10)] == [1.0, 2.0, 4.0, 8.0, 60.0]
    assert b.delay(3, lambda: 0.0) == 2.0  # half fixed, half random


def test_down_receiver_gets_everything_once_it_recovers(server, tmp_path):
    clock = Clock()
    p = pipeline(server.url, tmp_path / "a.db", clock)
    p.notify([alert(START, alertname="Xid79", instance="n1")])
    p.flush()
    delays = []
    for _ in range(4):
        p.deliver()
        row = p.outbox.list()[0]
        delays.append(round(row.next_attempt - clock.now, 3))
        clock.advance(row.next_attempt - clock.now)
    assert [r["status"] for r in server.requests] == [503, 503, 503, 200]
    assert delays[:3] == [0.75, 1.5, 3.0]  # 1, 2, 4 s with the jitter fixed at the middle
    (row,) = p.outbox.list()
    assert row.state == "delivered" and row.attempts == 4
    metrics = {m.name: m for m in p.metrics.collect()}
    failed = {s.labels["receiver"]: s.value for s in metrics["clusterwatch_notifications_failed"].samples}
    assert failed == {"hook": 3}
    assert metrics["clusterwatch_notification_outbox_pending"].samples[0].value == 0
    # The four attempts carried the same idempotency key.
    assert len({r["headers"]["Idempotency-Key"] for r in server.requests}) == 1


def test_restart_while_receiver_is_down_loses_and_duplicates_nothing(server, tmp_path):
    clock = Clock()
    db = tmp_path / "a.db"
    first = pipeline(server.url, db, clock)
    first.notify([alert(START, alertname="A", instance="n1")])
    first.flush()
    first.deliver()  # 503
    first.close()
    clock.advance(3600)  # down for an hour, and the server restarted
    server.statuses = [200]
    second = pipeline(server.url, db, clock)
    second.flush()
    second.deliver()
    second.flush()
    second.deliver()
    assert len(server.delivered) == 1 and server.delivered[0]["alerts"][0]["labels"]["instance"] == "n1"
    assert second.outbox.pending_count() == 0


def test_4xx_is_not_retried(tmp_path):
    server = CaptureServer(statuses=[400, 200])
    try:
        clock = Clock()
        p = pipeline(server.url, clock=clock)
        p.notify([alert(START, alertname="A", instance="n1")])
        p.flush()
        p.deliver()
        (row,) = p.outbox.list()
        assert row.state == "failed" and row.last_error.startswith("HTTP 400")
    finally:
        server.close()


def test_expired_after_max_age_and_counted(server):
    clock = Clock()
    p = Pipeline(config(webhook_config(server.url)), clock=clock, max_age=600, rng=lambda: 0.5)
    server.statuses = [503]
    p.notify([alert(START, alertname="A", instance="n1")])
    p.flush()
    p.deliver()
    clock.advance(601)
    p.deliver()
    assert p.outbox.list()[0].state == "expired"
    expired = next(m for m in p.metrics.collect() if m.name == "clusterwatch_notification_outbox_expired")
    assert expired.samples[0].value == 1


def test_webhook_headers_signature_and_v4_shape():
    server = CaptureServer()
    try:
        p = pipeline(server.url, extra="max_alerts: 1")
        p.notify([alert(START, alertname="GpuHot", instance="n1", job="gpu"),
                  alert(START, alertname="GpuHot", instance="n2", job="gpu")])
        p.flush()
        p.deliver()
        (request,) = server.requests
        headers = request["headers"]
        expected = "sha256=" + hmac.new(b"s3cret", request["body"], hashlib.sha256).hexdigest()
        assert headers["X-ClusterWatch-Signature"] == expected
        assert headers["Authorization"] == "Bearer tok" and headers["X-Team"] == "gpu"
        body = json.loads(request["body"])
        assert_v4_shape(body)
        assert body["truncatedAlerts"] == 1 and len(body["alerts"]) == 1
        assert body["groupKey"] == '{}:{alertname="GpuHot"}'
        assert body["commonLabels"] == {"alertname": "GpuHot", "job": "gpu"}
    finally:
        server.close()


def assert_v4_shape(body: dict) -> None:
    """The shape of the real Alertmanager 0.25 bodies in tests/fixtures/alertmanager-0.25."""
    from pathlib import Path

    fixture = json.loads((Path(__file__).parents[1] / "fixtures/alertmanager-0.25/"
                          "webhook-from-prometheus-2.42.json").read_text())
    assert set(body) == set(fixture)
    for key, value in fixture.items():
        assert type(body[key]) is type(value), key
    for item in body["alerts"]:
        assert set(item) == set(fixture["alerts"][0])
        assert all(isinstance(v, str) for v in item["labels"].values())
        assert item["startsAt"].endswith("Z") and item["endsAt"].endswith("Z")
    assert body["version"] == "4" and body["status"] in ("firing", "resolved")


def test_slack_format():
    server = CaptureServer()
    try:
        p = Pipeline(config(f"""
route: {{receiver: chat, group_by: [alertname], group_wait: 0s}}
receivers: [{{name: chat, slack_configs: [{{api_url: "{server.url}", channel: "#gpu"}}]}}]
"""), clock=Clock())
        p.notify([alert(START, alertname="GpuHot", instance="n1")])
        p.flush()
        p.deliver()
        body = server.delivered[0]
        assert body["channel"] == "#gpu" and body["text"].startswith("[FIRING:1] GpuHot")
        assert body["attachments"][0]["color"] == "danger" and "instance=n1" in body["attachments"][0]["text"]
    finally:
        server.close()


def test_hook_that_raises_is_retried():
    calls = []

    def flaky(notification):
        calls.append(notification)
        if len(calls) == 1:
            raise RuntimeError("remediation busy")

    clock = Clock()
    p = Pipeline(config("""
route: {receiver: fix, group_wait: 0s}
receivers: [{name: fix, hook_configs: [{name: remediation}]}]
"""), clock=clock, rng=lambda: 0.5)
    p.register_hook("remediation", flaky)
    p.notify([alert(START, alertname="Xid79", instance="n1", gpu="2")])
    p.flush()
    p.deliver()
    assert "remediation busy" in p.outbox.list()[0].last_error
    clock.advance(10)
    p.deliver()
    assert len(calls) == 2 and calls[1].alerts[0].labels["gpu"] == "2" and p.outbox.pending_count() == 0


def test_a_retry_set_by_a_clock_that_stepped_back_is_due_within_the_backoff_cap(server, tmp_path):
    """The clock an hour fast when a delivery failed put its retry an hour ahead of the corrected
    clock: the notification waited that hour. Now a retry further ahead than the backoff's cap is
    due at once (tests/tsdb/test_clock_step_back.py covers the rest of the server)."""
    clock = Clock()
    p = pipeline(server.url, tmp_path / "a.db", clock)
    clock.advance(3600)  # the clock an hour fast
    p.notify([alert(clock.now, alertname="Xid79", instance="n1")])
    p.flush()
    p.deliver()  # 503: a retry a second ahead of the fast clock
    clock.advance(-3600)  # corrected
    for _ in range(3):
        p.deliver()
        clock.advance(8.0)  # the backoff's cap
    assert [r["status"] for r in server.requests] == [503, 503, 503, 200]
    assert p.outbox.list()[0].state == "delivered"
