"""One dead receiver silences nobody else (issue 14, finding 5): every receiver's notifications
are picked from its own lane, a receiver that never answers holds only its own lane, the
remediation hook is never starved, and what waits for a dead receiver is bounded (its oldest
rows dropped and counted, never another receiver's)."""
from __future__ import annotations

import socket
import threading
import time

import pytest

from alerts.notify.pipeline import Pipeline
from tests.alerts.notify_support import CaptureServer, Clock, alert, config
from tests.realcomponents import free_port

START = Clock().now


def two_receivers(dead_url: str, alive: str) -> str:
    """Everything to ``dead``; alerts with an ``action`` also to ``alive`` (a hook or a webhook)."""
    return f"""
global: {{resolve_timeout: 1d}}
route:
  receiver: dead
  group_by: [instance]
  group_wait: 0s
  routes:
    - {{receiver: alive, matchers: ['action="reboot"'], continue: true}}
    - {{receiver: dead}}
receivers:
  - name: dead
    webhook_configs: [{{url: "{dead_url}", timeout: 60s}}]
  - name: alive
    {alive}
"""


def closed_port_url() -> str:
    return f"http://127.0.0.1:{free_port()}/hook"  # nothing listens there: refused at once


def test_hook_is_not_starved_by_500_pending_for_a_dead_receiver():
    clock = Clock()
    p = Pipeline(config(two_receivers(closed_port_url(), "hook_configs: [{name: remediation}]")), clock=clock,
                 rng=lambda: 0.5)
    handed = []
    p.register_hook("remediation", handed.append)
    p.notify([alert(START, alertname="GpuHot", instance=f"n{i:03d}") for i in range(500)])
    p.flush()
    p.deliver()  # 500 refused attempts, each retried later
    assert p.outbox.pending_count() == 500
    p.notify([alert(START, alertname="Xid79", instance="n999", action="reboot")])
    p.flush()
    p.deliver()
    assert [n.alerts[0].labels["instance"] for n in handed] == ["n999"]


class BlackHole:
    """Accepts connections and never answers until released (a receiver that hangs)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/hook"
        self.accepted: list[socket.socket] = []
        self.released = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        self.sock.settimeout(0.2)
        while not self.released.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted.append(conn)

    def close(self) -> None:
        self.released.set()
        self.thread.join(5)
        for conn in self.accepted:
            conn.close()
        self.sock.close()


def wait_until(condition, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def test_a_hanging_receiver_does_not_hold_up_the_next_notifications_to_others():
    hole, capture = BlackHole(), CaptureServer()
    p = Pipeline(config(two_receivers(hole.url, f'webhook_configs: [{{url: "{capture.url}"}}]')))
    p.start()
    try:
        p.notify([alert(time.time(), alertname="Xid79", instance="n1", action="reboot")])
        assert wait_until(lambda: len(capture.requests) == 1 and hole.accepted)
        # The dead receiver's attempt is still hanging (its timeout is 60 s); a new alert for
        # both receivers must reach the live one meanwhile.
        p.notify([alert(time.time(), alertname="Xid79", instance="n2", action="reboot")])
        assert wait_until(lambda: len(capture.requests) == 2, timeout=20)
        assert [json_instance(r) for r in capture.requests] == ["n1", "n2"]
    finally:
        hole.close()
        p.stop()
        p.close()
        capture.close()


def json_instance(request: dict) -> str:
    import json

    return json.loads(request["body"])["alerts"][0]["labels"]["instance"]


def metric(p: Pipeline, name: str) -> dict[tuple, float]:
    family = next(m for m in p.metrics.collect() if m.name == name)
    return {tuple(sorted(s.labels.items())): s.value for s in family.samples if not s.name.endswith("_created")}


def test_pending_is_bounded_per_receiver_and_drops_are_counted():
    clock = Clock()
    alive = CaptureServer(statuses=[503])
    try:
        p = Pipeline(config(two_receivers(closed_port_url(), f'webhook_configs: [{{url: "{alive.url}"}}]')),
                     clock=clock, rng=lambda: 0.5, max_pending_per_receiver=10)
        p.notify([alert(START, alertname="Xid79", instance=f"n{i:02d}", action="reboot") for i in range(4)])
        p.notify([alert(START, alertname="GpuHot", instance=f"m{i:02d}") for i in range(11)])
        p.flush()
        p.deliver()
        pending = {e.receiver: 0 for e in p.outbox.list(state="pending", limit=1000)}
        for entry in p.outbox.list(state="pending", limit=1000):
            pending[entry.receiver] += 1
        assert pending == {"dead": 10, "alive": 4}
        # The oldest of the dead receiver's rows went; its newest are kept.
        kept = {e.body["alerts"][0]["labels"]["instance"] for e in p.outbox.list(state="pending", receiver="dead")}
        assert {"m09", "m10"} <= kept and not {"n00", "n01", "n02", "n03", "m00"} & kept
        dropped = metric(p, "clusterwatch_notifications_dropped")
        assert dropped == {(("integration", "webhook/0"), ("reason", "queue_full"), ("receiver", "dead")): 5}
        pending_metric = metric(p, "clusterwatch_notification_outbox_pending")
        assert pending_metric[(("integration", "webhook/0"), ("receiver", "dead"))] == 10
        assert pending_metric[(("integration", "webhook/0"), ("receiver", "alive"))] == 4
        assert p.outbox.pending_counts() == {("alive", "webhook/0"): 4, ("dead", "webhook/0"): 10}
    finally:
        alive.close()


def test_pending_counts_survive_a_restart(tmp_path):
    clock = Clock()
    url = closed_port_url()
    first = Pipeline(config(two_receivers(url, "hook_configs: [{name: remediation}]")), tmp_path / "a.db",
                     clock=clock, rng=lambda: 0.5, max_pending_per_receiver=3)
    first.notify([alert(START, alertname="GpuHot", instance=f"m{i}") for i in range(3)])
    first.flush()
    first.close()
    second = Pipeline(config(two_receivers(url, "hook_configs: [{name: remediation}]")), tmp_path / "a.db",
                      clock=clock, rng=lambda: 0.5, max_pending_per_receiver=3)
    assert second.outbox.pending_counts() == {("dead", "webhook/0"): 3}
    second.notify([alert(START, alertname="GpuHot", instance="m9")])
    second.flush()
    assert second.outbox.pending_counts() == {("dead", "webhook/0"): 3}
    kept = {e.body["alerts"][0]["labels"]["instance"] for e in second.outbox.list(state="pending")}
    assert kept == {"m1", "m2", "m9"}
    second.close()


@pytest.mark.parametrize("value", [0, -1])
def test_queue_cap_must_be_positive(value):
    with pytest.raises(ValueError, match="max_pending_per_receiver"):
        Pipeline(config(two_receivers(closed_port_url(), "hook_configs: [{name: r}]")),
                 max_pending_per_receiver=value)
