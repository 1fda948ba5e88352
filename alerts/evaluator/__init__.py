"""The embedded rule evaluator: Prometheus rule files evaluated through the one query interface.

- ``rulefile``: load and validate rule files (errors name file, group and rule).
- ``templates`` + ``gofmt``: the Go-template subset alert annotations use, printed as Go prints.
- ``alerting`` / ``recording``: the two rule kinds; ``alerting`` is Prometheus's state machine.
- ``manager``: ``RuleEvaluator``, groups on their intervals, writer and notify hooks.
- ``state``: alert state persisted in SQLite across restarts.
- ``notation`` + ``promtest``: promtool's unit-test files run on the embedded engine.
- ``selfmetrics`` and ``component``: /metrics and the ``clusterwatch serve`` wiring.
"""
from alerts.evaluator.manager import RuleEvaluator
from alerts.evaluator.rulefile import Group, Rule, RuleFileError, load_rule_files

__all__ = ["RuleEvaluator", "Group", "Rule", "RuleFileError", "load_rule_files"]
