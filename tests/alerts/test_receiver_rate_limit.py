"""A receiver that says "slow down" (HTTP 429, or 503 with Retry-After) is obeyed: on a storm,
Slack's incoming webhooks and most paging services answer 429 with a Retry-After. The deliverer
used to go on sending every other due group head to it in the same pass (each answered 429, which
can get a webhook disabled) and retried each after its own backoff, ignoring the time asked for.
Now the receiver's whole lane waits for what it asked (bounded by the backoff's cap), across a
restart too, nothing is lost, and no other receiver waits with it."""
from __future__ import annotations

import email.utils

import pytest

from alerts.notify.integrations.webhook import parse_retry_after
from alerts.notify.pipeline import Pipeline
from alerts.outbox import Backoff
from tests.alerts.notify_support import CaptureServer, Clock, alert, config

START = Clock().now
GROUPS = 20
CAP = 300.0


def two_receivers(limited_url: str, other_url: str) -> str:
    return f"""
global: {{resolve_timeout: 1d}}
route:
  receiver: slack
  group_by: [alertname]
  group_wait: 0s
  routes:
    - {{receiver: slack, continue: true}}
    - {{receiver: pager}}
receivers:
  - name: slack
    webhook_configs: [{{url: "{limited_url}"}}]
  - name: pager
    webhook_configs: [{{url: "{other_url}"}}]
"""


class Storm:
    """``GROUPS`` notifications due to ``limited`` (answering ``statuses`` in turn) and to a
    healthy receiver, on a fake clock, after the first delivery pass."""

    def __init__(self, statuses, db, clock: Clock | None = None) -> None:
        self.limited, self.other = CaptureServer(statuses), CaptureServer([200])
        self.clock, self.db = clock or Clock(), db
        self.pipeline = self.restart()
        self.pipeline.notify([alert(START, alertname=f"Storm{i:02d}", instance="n1") for i in range(GROUPS)])
        self.pipeline.flush()
        self.pipeline.deliver()

    def restart(self) -> Pipeline:
        return Pipeline(config(two_receivers(self.limited.url, self.other.url)), self.db, clock=self.clock,
                        rng=lambda: 0.5, backoff=Backoff(initial=1.0, cap=CAP))

    def after(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.pipeline.deliver()

    def close(self) -> None:
        self.pipeline.close()
        self.limited.close()
        self.other.close()


@pytest.fixture
def storm(tmp_path):
    made: list[Storm] = []

    def make(statuses, name: str = "a.db") -> Storm:
        made.append(Storm(statuses, tmp_path / name))
        return made[-1]

    yield make
    for each in made:
        each.close()


def test_a_429_with_retry_after_holds_the_receivers_lane_for_that_long(storm):
    s = storm([(429, {"Retry-After": "120"}), 200])
    # One request told us to wait: the other 19 heads were not sent into the same refusal.
    assert len(s.limited.requests) == 1
    # The other receiver was not held with it.
    assert len(s.other.delivered) == GROUPS
    pending = s.pipeline.outbox.list(state="pending", receiver="slack", limit=100)
    assert len(pending) == GROUPS
    assert min(row.next_attempt for row in pending) == pytest.approx(s.clock.now + 120)
    s.after(119)
    assert len(s.limited.requests) == 1
    s.after(1)
    assert len(s.limited.delivered) == GROUPS
    assert s.pipeline.outbox.pending_count() == 0
    held = {x.labels["receiver"]: x.value for m in s.pipeline.metrics.collect()
            if m.name == "clusterwatch_notifications_held" for x in m.samples if x.name.endswith("_total")}
    assert held == {"slack": 1}


def test_the_hold_survives_a_restart(storm):
    s = storm([(429, {"Retry-After": "120"}), 200])
    s.pipeline.close()
    s.pipeline = s.restart()
    s.after(60)
    assert len(s.limited.requests) == 1
    s.after(60)
    assert len(s.limited.delivered) == GROUPS


def test_a_429_without_retry_after_holds_the_lane_for_the_backoff(storm):
    s = storm([429, 200])
    assert len(s.limited.requests) == 1
    s.after(0.75)  # the first backoff, 1 s with the jitter fixed at the middle
    assert len(s.limited.delivered) == GROUPS


def test_a_503_with_retry_after_is_a_hold_and_without_one_an_ordinary_failure(storm):
    maintenance = storm([(503, {"Retry-After": "30"}), 200])
    assert len(maintenance.limited.requests) == 1
    maintenance.after(30)
    assert len(maintenance.limited.delivered) == GROUPS

    down = storm([503, 200], "b.db")
    # A plain 503 says nothing about the receiver's other messages: each head is tried once.
    assert len(down.limited.requests) == GROUPS
    assert len(down.limited.delivered) == GROUPS - 1


def test_a_receiver_cannot_hold_its_lane_past_the_backoff_cap(storm):
    s = storm([(429, {"Retry-After": "999999999999"}), 200])
    s.after(CAP)
    assert len(s.limited.delivered) == GROUPS


@pytest.mark.parametrize(("value", "seconds"), [
    ("120", 120.0), ("0", 0.0), (" 7 ", 7.0), ("99999999999999999999999", 1e23),
    (email.utils.formatdate(START + 90, usegmt=True), 90.0),
    (email.utils.formatdate(START - 90, usegmt=True), 0.0),
    ("", None), ("soon", None), ("-5", None), ("1.5", None), ("1e400", None), ("nan", None),
    ("Wed, 99 Foo 2026 99:99:99 GMT", None), ("x" * 10_000, None),
])
def test_retry_after_is_seconds_or_an_http_date_and_anything_else_is_ignored(value, seconds):
    assert parse_retry_after(value, START) == seconds
