"""One slow rule group must not hold up the others. The evaluator ran every group on one thread,
in file order, under one lock: a group whose query took its whole timeout (an operator's rule over
days of data, or a remote Prometheus that stopped answering) delayed every hardware alert behind
it by as long, every cycle. Prometheus runs each group on its own goroutine."""
from __future__ import annotations

import threading
import time

from alerts.evaluator.manager import RuleEvaluator
from alerts.evaluator.rulefile import Group, Rule
from tsdb.client import LocalQueryClient, QueryResult
from tsdb.promql.engine import Engine
from tsdb.store import Store

PATIENCE_S = 60.0  # generous: a busy machine may be slow, but a held group never gets there


class StuckQueries:
    """The real engine, except that queries naming ``stuck_metric`` wait until released: a query
    that takes its whole timeout."""

    def __init__(self, store: Store) -> None:
        self.inner = LocalQueryClient(Engine(store))
        self.release = threading.Event()
        self.stuck = threading.Event()

    def instant(self, query: str, at: float | None = None) -> QueryResult:
        if "stuck_metric" in query:
            self.stuck.set()
            self.release.wait(PATIENCE_S)
        return self.inner.instant(query, at)

    def range(self, query: str, start: float, end: float, step: float) -> QueryResult:
        return self.inner.range(query, start, end, step)


def group(name: str, expr: str) -> Group:
    rule = Rule("alert", f"{name.title()}Alert", expr, file="f.yml", group=name)
    return Group(name, "f.yml", [rule], interval_s=0.2)


def test_a_stuck_group_does_not_hold_up_the_others() -> None:
    store = Store()
    client = StuckQueries(store)
    sent: list = []
    evaluator = RuleEvaluator([group("slow", "sum(stuck_metric) > 0"), group("hardware", "vector(1) > 0")],
                              client, writer=store.append_rule_output, notify=sent.extend)
    hardware = evaluator.groups[1]
    evaluator.start()
    try:
        assert client.stuck.wait(PATIENCE_S)
        deadline = time.monotonic() + PATIENCE_S
        while hardware.evaluations < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert hardware.evaluations >= 5, "the hardware group waited for the stuck one"
        assert evaluator.groups[0].evaluations == 0  # still stuck
        # Reading the active alerts (the dashboard, the API) does not wait for the stuck group either.
        reader = threading.Thread(target=evaluator.active_alerts)
        reader.start()
        reader.join(PATIENCE_S / 2)
        assert not reader.is_alive()
        assert any(alert.labels["alertname"] == "HardwareAlert" for alert in sent)
    finally:
        client.release.set()
        evaluator.stop()
    assert evaluator.groups[0].evaluations >= 1
