"""The evaluator's own metrics for the server's /metrics (a collector that yields a snapshot)."""
from __future__ import annotations

from typing import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from alerts.evaluator.alerting import FIRING, PENDING
from alerts.evaluator.manager import RuleEvaluator
from alerts.statedb import StateCollector


class EvaluatorCollector:
    def __init__(self, evaluator: RuleEvaluator) -> None:
        self.evaluator = evaluator

    def collect(self) -> Iterator:
        ev = self.evaluator
        duration = GaugeMetricFamily("clusterwatch_rule_group_last_duration_seconds",
                                     "Wall time of the group's last evaluation.", labels=["rule_group"])
        last = GaugeMetricFamily("clusterwatch_rule_group_last_evaluation_timestamp_seconds",
                                 "Evaluation time of the group's last evaluation (Unix time).", labels=["rule_group"])
        interval = GaugeMetricFamily("clusterwatch_rule_group_interval_seconds", "The group's interval.",
                                     labels=["rule_group"])
        rules = GaugeMetricFamily("clusterwatch_rule_group_rules", "Rules in the group.", labels=["rule_group"])
        evaluations = CounterMetricFamily("clusterwatch_rule_evaluations_total", "Rules evaluated.",
                                          labels=["rule_group"])
        failures = CounterMetricFamily("clusterwatch_rule_evaluation_failures_total",
                                       "Rule evaluations that failed (query error, duplicate labels, write).",
                                       labels=["rule_group"])
        missed = CounterMetricFamily("clusterwatch_rule_group_iterations_missed_total",
                                     "Group evaluations skipped because the previous one ran too long.",
                                     labels=["rule_group"])
        for g in ev.groups:
            name = g.group.name
            duration.add_metric([name], g.last_duration_s)
            last.add_metric([name], g.last_eval or 0.0)
            interval.add_metric([name], g.interval_s)
            rules.add_metric([name], len(g.rules))
            evaluations.add_metric([name], sum(h.evaluations for h in g.health.values()))
            failures.add_metric([name], sum(h.failures for h in g.health.values()))
            missed.add_metric([name], g.missed)
        alerts = GaugeMetricFamily("clusterwatch_alerts", "Active alerts by state.", labels=["state"])
        states = [a.state for _, a in ev.active_alerts()]
        for state in (PENDING, FIRING):
            alerts.add_metric([state], states.count(state))
        sent = CounterMetricFamily("clusterwatch_alerts_sent_total", "Alerts handed to the notify hook.")
        sent.add_metric([], ev.alerts_sent)
        errors = CounterMetricFamily("clusterwatch_alerts_notify_errors_total", "Calls of the notify hook that raised.")
        errors.add_metric([], ev.notify_errors)
        yield from (duration, last, interval, rules, evaluations, failures, missed, alerts, sent, errors)
        # alert-state.sqlite: writes that failed (disk full...) are counted where they happen.
        yield from StateCollector(ev.state.db if ev.state is not None else None, "clusterwatch_rule").collect()
