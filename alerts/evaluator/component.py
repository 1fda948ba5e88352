"""``clusterwatch serve``'s alerting component: the shipped pack (or --rules) over the embedded store.

Over the embedded store the evaluator writes recording-rule series and ALERTS back into it;
over a remote Prometheus (``client`` an HTTPQueryClient) it only reads, because writing is that
server's job. ``evaluator.notify`` is the hook the notification pipeline sets.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Collection, Mapping, Sequence

from alerts.evaluator.api import build_router
from alerts.evaluator.manager import RuleEvaluator, Writer
from alerts.evaluator.rulefile import Group, RuleFileError, load_rule_files
from alerts.evaluator.selfmetrics import EvaluatorCollector
from alerts.evaluator.state import AlertStateStore
from alerts.evaluator.templates import template_problems
from cwkernel.errors import ConfigError
from cwkernel.reload import ReloadHook
from tsdb.client import QueryClient

if TYPE_CHECKING:
    from cwkernel.server import Component, Deps

log = logging.getLogger(__name__)

SHIPPED_RULES = Path(__file__).resolve().parent.parent / "rules"
# Where the GPU series come from -> the bridge of recording rules that writes the gpu_* contract
# from them (None: ClusterWatch's own exporters write it). docs/migration.md.
BRIDGES: dict[str, Path | None] = {"clusterwatch": None, "dcgm": SHIPPED_RULES / "bridges" / "dcgm.yml"}


def template_problems_of(groups: Sequence[Group]) -> list[str]:
    """Each template of ``groups`` that fails whatever the alert (``template_problems``): loaded,
    as Prometheus loads it, but every alert of that rule would carry the error."""
    return [problem for group in groups for rule in group.rules
            for kind, templates in (("label", rule.labels), ("annotation", rule.annotations))
            for key, text in templates.items()
            for problem in template_problems(text, f"{group.file}: group {group.name}: rule {rule.name}: {kind} {key}")]


def warn_of_templates(groups: Sequence[Group]) -> None:
    for problem in template_problems_of(groups):
        log.warning("%s", problem)


def build_evaluator(rule_paths: Sequence[str | Path] | None, client: QueryClient, writer: Writer | None,
                    state_path: str | Path | None, interval_s: float = 30.0,
                    skip_groups: Collection[str] = ()) -> RuleEvaluator:
    """The evaluator of the rule files (the shipped pack by default), but for the groups named in
    ``skip_groups``."""
    groups = [group for group in load_rule_files(rule_paths or [SHIPPED_RULES]) if group.name not in skip_groups]
    warn_of_templates(groups)
    state = AlertStateStore(state_path) if state_path else None
    return RuleEvaluator(groups, client, writer=writer, state=state, default_interval_s=interval_s)


def rule_files_reload(paths: Sequence[str | Path], evaluator: RuleEvaluator,
                      config_file: str | None = None) -> ReloadHook:
    """The rules component's reload: the rule files read again; all of them valid, the evaluator
    runs the new rules (``RuleEvaluator.replace_groups``), else it keeps those it runs."""
    def apply() -> None:
        try:
            groups = load_rule_files(paths)
        except RuleFileError as exc:
            raise ConfigError("rules", str(exc), config_file) from None
        warn_of_templates(groups)
        evaluator.replace_groups(groups)
    return ReloadHook(apply, "the rule files")


def evaluator_component(evaluator: RuleEvaluator, reload: ReloadHook | None = None):
    """The evaluator in ``serve``; its health is its state file's (set aside, held in memory) and
    its last reload's."""
    from cwkernel.server import Component

    def health() -> dict[str, str]:
        found = dict(evaluator.state.db.problems()) if evaluator.state is not None else {}
        if reload is not None:
            found.update(reload.problems())
        return found

    return Component("rules", routers=[build_router(evaluator)], start=evaluator.start, stop=evaluator.stop,
                     collectors=[EvaluatorCollector(evaluator)], health=health, stalled=evaluator.loops.stalled,
                     reload=reload)


def build(values: Mapping[str, Any], deps: Deps) -> Component | None:
    """The rule evaluator over the embedded store (writing ALERTS and recorded series back into
    it) or, with --prometheus-url, reading only. There it is None unless --rules names files: in
    production Prometheus or vmalert evaluates the pack and Alertmanager delivers it to the
    inbound receiver, and evaluating it here too would record every alert twice."""
    bridge = BRIDGES[values.get("gpu_source") or "clusterwatch"]
    if bridge is not None and deps.rule_writer is None:
        # Over a remote Prometheus this server writes nothing: the bridge's series would never exist.
        raise ConfigError("gpu_source", "with --prometheus-url the bridge runs where the pack runs: export both "
                          "with 'clusterwatch rules export --source dcgm' for Prometheus or vmalert to load",
                          deps.config_file)
    if deps.rule_writer is None and not values["rules"]:
        return None
    state = values["alert_state"] or (os.path.join(values["state_dir"], "alert-state.sqlite")
                                      if values.get("state_dir") else None)
    paths = [*(values["rules"] or [SHIPPED_RULES]), *([bridge] if bridge else [])]
    try:
        evaluator = build_evaluator(paths, deps.query, deps.rule_writer, state, values["evaluation_interval"])
    except RuleFileError as exc:
        raise ConfigError("rules", str(exc), deps.config_file) from None
    deps.evaluator = evaluator  # the pipeline, built next, sets its notify
    return evaluator_component(evaluator, rule_files_reload(paths, evaluator, deps.config_file))
