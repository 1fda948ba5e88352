"""``clusterwatch serve``'s alerting component: the shipped pack (or --rules) over the embedded store.

Over the embedded store the evaluator writes recording-rule series and ALERTS back into it;
over a remote Prometheus (``client`` an HTTPQueryClient) it only reads, because writing is that
server's job. ``evaluator.notify`` is the hook the notification pipeline sets.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from alerts.evaluator.manager import RuleEvaluator, Writer
from alerts.evaluator.rulefile import load_rule_files
from alerts.evaluator.selfmetrics import EvaluatorCollector
from alerts.evaluator.state import AlertStateStore
from tsdb.client import QueryClient

SHIPPED_RULES = Path(__file__).resolve().parent.parent / "rules"


def build_evaluator(rule_paths: Sequence[str | Path] | None, client: QueryClient, writer: Writer | None,
                    state_path: str | Path | None, interval_s: float = 30.0) -> RuleEvaluator:
    groups = load_rule_files(rule_paths or [SHIPPED_RULES])
    state = AlertStateStore(state_path) if state_path else None
    return RuleEvaluator(groups, client, writer=writer, state=state, default_interval_s=interval_s)


def evaluator_component(evaluator: RuleEvaluator):
    """The evaluator in ``serve``; its health is its state file's (set aside, held in memory)."""
    from cwkernel.server import Component

    return Component("rules", start=evaluator.start, stop=evaluator.stop,
                     collectors=[EvaluatorCollector(evaluator)],
                     health=evaluator.state.db.problems if evaluator.state is not None else None)
