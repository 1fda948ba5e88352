"""Who watches the watcher: with ``--heartbeat-url`` the server pings a dead man's switch every
``--heartbeat-interval`` while its scrape, rule and notification loops come round, and withholds
the ping while any is wedged, so the outside service pages exactly when ClusterWatch has stopped
watching. A wedged loop is also said in ``/-/ready``.

Observed before: nothing outside the server learned that it had died or hung (no heartbeat, no
Watchdog alert in the pack), and a rule group wedged in a query that never returned left
``/-/ready`` saying OK while its alerts could no longer fire.
"""
from __future__ import annotations

import json
import sys
import threading
import time

import httpx
import pytest

from alerts.evaluator.manager import RuleEvaluator
from alerts.evaluator.rulefile import Group, Rule
from alerts.notify.heartbeat import Heartbeat
from cwkernel.health import problems_of
from cwkernel.loopwatch import LoopWatch
from cwkernel.server import Component
from scheduler.poller import Poller
from tests.alerts.notify_support import CaptureServer, Clock
from tests.realcomponents import free_port, wait_http
from tsdb.results import QueryResult

PATIENCE_S = 60.0


@pytest.fixture
def switch():
    capture = CaptureServer()
    yield capture
    capture.close()


def test_pinged_while_the_loops_come_round_and_withheld_once_one_is_wedged(switch: CaptureServer) -> None:
    clock = Clock()  # standing in for time.monotonic
    loops = LoopWatch(clock)
    component = Component("tsdb", stalled=loops.stalled)
    heartbeat = Heartbeat(switch.url, 60.0, [component])
    loops.tick("scrape", 45.0)
    assert heartbeat.beat()
    assert [body["status"] for body in switch.delivered] == ["ok"]
    clock.now += 40
    assert heartbeat.beat()
    clock.now += 10  # 50 s since the round began, 45 allowed
    assert not heartbeat.beat()
    assert len(switch.requests) == 2 and heartbeat.withheld == 1
    assert "scrape loop has not come round for 50 s" in problems_of([component])["tsdb"]["loop_stalled"]
    loops.tick("scrape", 45.0)
    assert heartbeat.beat() and len(switch.requests) == 3


def test_a_dead_man_switch_that_fails_is_counted_and_the_next_interval_tries_again() -> None:
    down = CaptureServer(statuses=[503, 200])
    try:
        heartbeat = Heartbeat(down.url, 60.0, [])
        assert not heartbeat.beat() and heartbeat.failed == 1
        assert heartbeat.beat() and heartbeat.sent == 1
    finally:
        down.close()
    metrics = {m.name: m.samples[0].value for m in heartbeat.collect()}
    assert metrics["clusterwatch_heartbeat_sent"] == 1 and metrics["clusterwatch_heartbeat_failed"] == 1
    assert metrics["clusterwatch_heartbeat_last_sent_timestamp_seconds"] > 0


class Stuck:
    """A query client whose query never returns until released (a remote engine that hung)."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def instant(self, query: str, at: float | None = None) -> QueryResult:
        self.entered.set()
        self.release.wait(60)
        return QueryResult("vector", [])

    def range(self, query: str, start: float, end: float, step: float) -> QueryResult:
        raise NotImplementedError


def test_a_rule_group_wedged_in_a_query_is_a_stalled_loop() -> None:
    clock = Clock()  # standing in for time.monotonic
    stuck = Stuck()
    evaluator = RuleEvaluator([Group("hardware", "f.yml", [Rule("alert", "GpuHot", "gpu_temp > 90", group="hardware")],
                                     interval_s=15)], stuck)
    evaluator.loops = LoopWatch(clock)
    component = Component("rules", stalled=evaluator.loops.stalled)
    evaluator.start()
    try:
        assert stuck.entered.wait(30)
        assert problems_of([component]) == {}
        clock.now += 3 * 15 + 300 + 1
        assert "rule group hardware loop has not come round" in problems_of([component])["rules"]["loop_stalled"]
    finally:
        stuck.release.set()
        evaluator.stop()
    assert problems_of([component]) == {}, "a loop stopped with the server is not stalled"


@pytest.mark.real_component
def test_serve_pings_the_dead_man_switch(switch: CaptureServer, process_factory) -> None:
    port = free_port()
    proc = process_factory([sys.executable, "-m", "clusterwatch", "serve", "--listen", f"127.0.0.1:{port}",
                            "--heartbeat-url", switch.url, "--heartbeat-interval", "1s"], name="serve")
    wait_http(f"http://127.0.0.1:{port}/-/ready", timeout=30, proc=proc)
    deadline = time.monotonic() + PATIENCE_S
    while len(switch.delivered) < 2 and time.monotonic() < deadline:
        switch.wait_for(len(switch.requests) + 1, timeout=1.0)
    assert len(switch.delivered) >= 2 and switch.delivered[0]["status"] == "ok"
    assert json.loads(switch.requests[0]["body"])["host"]
    metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=30).text
    assert "clusterwatch_heartbeat_sent_total" in metrics


def test_a_scheduler_poll_wedged_in_its_backend_is_a_stalled_loop() -> None:
    clock = Clock()  # standing in for time.monotonic
    stuck = Stuck()

    def fetch(timeout: float):
        stuck.instant("squeue")  # a backend call that never returns (its own timeout broken)
        raise RuntimeError("released")

    poller = Poller(fetch, min_interval=15, timeout=30)
    poller.loops = LoopWatch(clock)
    component = Component("scheduler", stalled=poller.loops.stalled)
    poller.start()
    try:
        assert stuck.entered.wait(30)
        clock.now += 3 * (15 + 30) + 61
        assert "scheduler poll loop has not come round" in problems_of([component])["scheduler"]["loop_stalled"]
    finally:
        stuck.release.set()
        poller.stop()
