"""Every rule group the overview at scale reads, evaluated once over an embedded store, in the order
they feed each other: for the dashboard bench's large fleet and the overview's tests
(tests/dashboard/test_overview_nodes.py, test_overview_browser.py)."""
from __future__ import annotations

import time
from pathlib import Path

from alerts.evaluator.manager import RuleEvaluator
from alerts.evaluator.rulefile import load_rule_file
from tsdb.client import LocalQueryClient
from tsdb.promql.engine import Engine

RULES = Path(__file__).resolve().parents[1] / "alerts" / "rules"


def record_once(store, at: float) -> list[tuple[str, float | None, float]]:
    """recording.yml's job groups, the job rules (job_id:gpus_idle:count), then
    clusterwatch-dashboard, each evaluated once at ``at`` into ``store``. Returns (group, interval
    in seconds, seconds its evaluation took) for each."""
    recording = load_rule_file(RULES / "recording.yml")
    dashboard = [g for g in recording if g.name == "clusterwatch-dashboard"]
    timings = []
    for group in [g for g in recording if g not in dashboard] + load_rule_file(RULES / "jobs.yml") + dashboard:
        began = time.perf_counter()
        RuleEvaluator([group], LocalQueryClient(Engine(store)), writer=store.append_rule_output).evaluate(at)
        timings.append((group.name, group.interval_s, time.perf_counter() - began))
    return timings
