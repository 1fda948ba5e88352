"""Alert storm (issue 14, finding 4): with 50,000 alerts active, a 10,000-alert Alertmanager
webhook is answered while the server keeps answering everything else; inhibition costs linear,
not quadratic, time in the number of active alerts; a flush in progress never holds up new
alerts."""
from __future__ import annotations

import threading
import time

import httpx
import pytest

from alerts.model import Alert
from alerts.notify import config as alerting_config
from alerts.notify import payload
from alerts.notify.component import component
from alerts.notify.dispatch import Dispatcher
from alerts.notify.matchers import AlertMatcher
from alerts.notify.pipeline import Pipeline
from cwkernel.server import build_app
from tests.alerts.notify_support import Clock, ServedApp, alert, config

TOKEN = "stormtoken"


def storm_alerts(count: int, offset: int = 0, starts_at: float | None = None) -> list[Alert]:
    """GPU alerts over many nodes, with a NodeDown on every 12th node (a source for the shipped
    inhibit rules) and critical/warning pairs on the same GPU."""
    starts_at = time.time() - 600 if starts_at is None else starts_at
    found = []
    for i in range(offset, offset + count):
        node = f"node-{i // 8:05d}"
        if i % 100 == 0:
            labels = {"alertname": "NodeDown", "instance": node, "severity": "critical"}
        else:
            labels = {"alertname": "GpuHot", "instance": node, "gpu": str(i % 8),
                      "severity": "critical" if i % 3 == 0 else "warning", "job": "gpu"}
        found.append(Alert(labels, {"summary": f"alert {i}"}, starts_at=starts_at))
    return found


INHIBITING = """
global: {resolve_timeout: 1d}
route: {receiver: log, group_by: [alertname, instance], group_wait: 30s}
receivers: [{name: log, log_configs: [{}]}]
inhibit_rules:
  - source_matchers: ['alertname=~"NodeDown|NodeUnreachable"']
    target_matchers: ['alertname!~"NodeDown|NodeUnreachable"']
    equal: [instance]
  - source_matchers: [severity="critical"]
    target_matchers: [severity="warning"]
    equal: [instance, gpu, alertname]
"""


def evaluations_to_check_every_alert(count: int, monkeypatch) -> tuple[int, int]:
    """AlertMatcher evaluations (routing, inhibition) to take in ``count`` active alerts and ask the
    inhibitor about each of them; and how many of them it found inhibited."""
    calls = [0]
    real = AlertMatcher.matches

    def counted(self, labels) -> bool:
        calls[0] += 1
        return real(self, labels)

    monkeypatch.setattr(AlertMatcher, "matches", counted)
    clock = Clock()
    pipeline = Pipeline(config(INHIBITING), clock=clock)
    alerts = storm_alerts(count, starts_at=clock.now)
    pipeline.notify(alerts)
    inhibited = sum(1 for a in alerts if pipeline.inhibitor.muted_by(a, clock.now))
    monkeypatch.setattr(AlertMatcher, "matches", real)
    return calls[0], inhibited


def test_inhibition_cost_grows_linearly_with_active_alerts(monkeypatch):
    small, inhibited_small = evaluations_to_check_every_alert(300, monkeypatch)
    large, inhibited_large = evaluations_to_check_every_alert(1_200, monkeypatch)
    assert inhibited_small > 0 and inhibited_large > 3 * inhibited_small  # the rules really inhibit
    # Four times the alerts: four times the evaluations when linear, sixteen when quadratic.
    assert large <= 5 * small, (small, large)


def test_inhibition_ends_when_its_source_resolves():
    clock = Clock()
    pipeline = Pipeline(config(INHIBITING), clock=clock)
    alerts = storm_alerts(16, starts_at=clock.now)  # NodeDown on node-00000, GPU alerts on it
    source = alerts[0]
    target = next(a for a in alerts[1:] if a.labels["instance"] == source.labels["instance"])
    pipeline.notify(alerts)
    assert source.fingerprint in pipeline.inhibitor.muted_by(target, clock.now)
    pipeline.notify([Alert(source.labels, source.annotations, source.starts_at, ends_at=clock.now)])
    assert source.fingerprint not in pipeline.inhibitor.muted_by(target, clock.now)


def test_new_alerts_enter_while_a_flush_is_in_progress():
    """The dispatcher's lock is not held while a group is notified: a slow notification (a busy
    database, a large group) does not hold up the alerts arriving meanwhile."""
    notifying, release = threading.Event(), threading.Event()

    def slow_notify(group, alerts, now) -> bool:
        notifying.set()
        release.wait(30)
        return True

    route = config("route: {receiver: r, group_by: [alertname], group_wait: 0s}\n"
                   "receivers: [{name: r, log_configs: [{}]}]").route
    dispatcher = Dispatcher(route, slow_notify)
    dispatcher.put([alert(0.0, alertname="A")], 100.0)
    flushing = threading.Thread(target=dispatcher.tick, args=(100.0,), daemon=True)
    flushing.start()
    try:
        assert notifying.wait(30)
        put = threading.Thread(target=dispatcher.put, args=([alert(0.0, alertname="B")], 101.0), daemon=True)
        put.start()
        put.join(20)
        assert not put.is_alive(), "put waited for the flush to finish"
        assert {group.key for group in dispatcher.groups.values()} >= {'{}:{alertname="A"}', '{}:{alertname="B"}'}
    finally:
        release.set()
        flushing.join(30)


class HealthPoller:
    """Asks /-/healthy in a loop from its own thread and records when each answer came."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.answers: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with httpx.Client(base_url=self.base, timeout=120) as client:
            while not self._stop.is_set():
                if client.get("/-/healthy").status_code == 200:
                    self.answers.append(time.monotonic())
                time.sleep(0.01)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(130)

    def longest_gap(self, start: float, end: float) -> float:
        marks = [start] + [t for t in self.answers if start <= t <= end] + [end]
        return max(b - a for a, b in zip(marks, marks[1:]))


@pytest.mark.slow
def test_storm_webhook_is_answered_and_health_keeps_answering(tmp_path):
    pipeline = Pipeline(alerting_config.load(), tmp_path / "alerting.db")
    pipeline.receive(storm_alerts(50_000), source="alertmanager:earlier")
    served = ServedApp(build_app([component(pipeline, webhook_token=TOKEN)]))
    base = f"http://127.0.0.1:{served.port}"
    storm = storm_alerts(10_000, offset=50_000)
    body = payload.build("storm", '{}:{alertname="GpuHot"}', {"alertname": "GpuHot"}, storm)
    poller = HealthPoller(base)
    try:
        deadline = time.monotonic() + 30
        while not poller.answers and time.monotonic() < deadline:
            time.sleep(0.05)
        started = time.monotonic()
        response = httpx.post(f"{base}/api/v1/alertmanager/webhook", json=body, timeout=120,
                              headers={"Authorization": f"Bearer {TOKEN}"})
        finished = time.monotonic()
        time.sleep(0.2)
    finally:
        poller.stop()
        served.stop()
    assert response.status_code == 200, response.text[:300]
    assert response.json()["accepted"] == 10_000
    post_seconds = finished - started
    gap = poller.longest_gap(started, finished)
    # Blocked, the longest gap is the whole post; the margins allow for a busy machine.
    assert gap < max(0.5 * post_seconds, 2.0), (gap, post_seconds)
    assert len(pipeline.store.current()) == 60_000
