"""The engine's metrics, built from the store and the last snapshot at each scrape."""
from __future__ import annotations

from typing import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from remediation import guards
from remediation.engine import RemediationEngine
from remediation.ladder import OPEN_STATES, PENDING_APPROVAL


class RemediationCollector:
    def __init__(self, engine: RemediationEngine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[Metric]:
        engine = self.engine
        actions = CounterMetricFamily("clusterwatch_remediation_actions", "Remediation decisions by action and result "
                                      "(done, failed, would, not done: <guard>, ...)", labels=["action", "result"])
        for action, result, count in engine.store.audit_counts():
            # "not done: budget exhausted: 3 of 40 ..." -> "not done: budget exhausted": bounded label values.
            actions.add_metric([action, ": ".join(result.split(": ")[:2])], count)
        yield actions
        snapshot = engine.last_snapshot
        drained = GaugeMetricFamily("clusterwatch_remediation_nodes_drained",
                                    "Nodes drained with ClusterWatch's reason prefix (scheduler's view)")
        if snapshot is not None:
            drained.add_metric([], sum(1 for n in snapshot.nodes if n.drain and
                                       guards.owns_drain(engine.policy.reason_prefix, n)))
        yield drained
        budget = engine.budget()
        remaining = GaugeMetricFamily("clusterwatch_remediation_budget_remaining",
                                      "Nodes that may still be drained before the disruption budget is used up")
        if budget is not None:
            remaining.add_metric([], budget.remaining)
        yield remaining
        yield GaugeMetricFamily("clusterwatch_remediation_pending_approvals", "Cases waiting for an operator",
                                value=engine.store.count_cases(PENDING_APPROVAL))
        cases = GaugeMetricFamily("clusterwatch_remediation_open_cases", "Open cases by state", labels=["state"])
        for state in sorted(OPEN_STATES):
            cases.add_metric([state], engine.store.count_cases(state))
        yield cases
        yield _mode(engine.mode)
        yield CounterMetricFamily("clusterwatch_remediation_evaluations", "Evaluations run",
                                  value=engine.evaluations)
        yield CounterMetricFamily("clusterwatch_remediation_evaluation_errors", "Evaluations that failed",
                                  value=engine.evaluation_errors)
        yield GaugeMetricFamily("clusterwatch_remediation_evaluation_duration_seconds",
                                "Duration of the last evaluation", value=engine.last_duration)
        last = GaugeMetricFamily("clusterwatch_remediation_last_success_timestamp_seconds",
                                 "When the last evaluation succeeded (absent: never)")
        if engine.last_success is not None:
            last.add_metric([], engine.last_success)
        yield last


def _mode(mode: str) -> GaugeMetricFamily:
    family = GaugeMetricFamily("clusterwatch_remediation_mode_info", "Automation mode, value 1", labels=["mode"])
    family.add_metric([mode], 1)
    return family
