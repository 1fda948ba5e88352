"""Recording rules: the query's vector renamed to the rule's metric, with the rule's labels."""
from __future__ import annotations

from alerts.evaluator.rulefile import Rule
from alerts.evaluator.vector import RuleEvalError, Sample, as_labels
from cwkernel.series import Labels


class RecordingRule:
    def __init__(self, rule: Rule) -> None:
        self.rule = rule

    def eval(self, vector: list[Sample], limit: int = 0) -> list[tuple[Labels, float]]:
        out: dict[Labels, float] = {}
        for labels, value in vector:
            # Like Prometheus: an empty rule label removes the label.
            merged = {**labels, **self.rule.labels, "__name__": self.rule.name}
            key = as_labels(merged)
            if key in out:
                raise RuleEvalError("vector contains metrics with the same labelset after applying rule labels")
            out[key] = value
        if limit and len(out) > limit:
            raise RuleEvalError(f"exceeded limit of {limit} with {len(out)} series")
        return list(out.items())
