"""A runner for promtool's rule unit-test files (``promtool test rules``), on the embedded engine.

The same alerts/tests/*.yml files run here and in promtool and must reach the same verdicts.
What promtool 2.42 does, and this runner with it: each test group loads its input series into a
fresh store (values at ``i * interval`` from time 0), loads the rule files (groups without an
``interval`` get the test group's), then evaluates every group at 0, ``evaluation_interval``,
2 x ``evaluation_interval``... up to the latest ``eval_time``. An ``alert_rule_test`` at time t is
checked after the evaluation at the last step <= t and compares, as sets, the *firing* alerts of
the first rule named ``alertname`` with ``exp_alerts`` (labels plus ``alertname``, annotations
exactly). ``promql_expr_test`` queries run after all evaluations, so rule outputs are visible.
"""
from __future__ import annotations

import glob
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


from alerts.evaluator.manager import RuleEvaluator
from cwkernel import configfile
from alerts.evaluator.notation import NotationError, expand_values, parse_series
from alerts.evaluator.rulefile import Group, RuleFileError, load_rule_files, parse_duration
from alerts.evaluator.vector import RuleEvalError, as_labels, query_vector
from tsdb.client import InMemoryEngine, QueryClient, in_memory_engine

__all__ = ["run_test_file", "TestFileResult"]


@dataclass
class TestFileResult:
    path: str
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures


def run_test_file(path: str | Path) -> TestFileResult:
    """Run every test group of one promtool test file; failures are promtool-like messages."""
    path = Path(path)
    result = TestFileResult(str(path))
    try:
        document = configfile.load_yaml(path) or {}
        rule_files = _rule_files(path, document.get("rule_files") or [])
        eval_interval = parse_duration(document.get("evaluation_interval") or "1m")
        order = {name: i for i, name in enumerate(document.get("group_eval_order") or [])}
        for index, test in enumerate(document.get("tests") or []):
            name = test.get("name") or f"#{index}"
            for failure in _run_group(test, rule_files, eval_interval, order):
                result.failures.append(f"test {name}: {failure}")
    except (ValueError, RuleFileError) as exc:
        result.failures.append(str(exc))
    return result


def _rule_files(test_file: Path, patterns: list[str]) -> list[Path]:
    files: list[Path] = []
    for pattern in patterns:
        full = pattern if Path(pattern).is_absolute() else str(test_file.parent / pattern)
        matches = sorted(glob.glob(full))
        if not matches:
            raise ValueError(f"rule file {pattern}: no such file")
        files.extend(Path(m) for m in matches)
    return files


def _load_series(engine: InMemoryEngine, test: dict[str, Any], interval_ms: int) -> None:
    for item in test.get("input_series") or []:
        try:
            labels = parse_series(str(item.get("series", "")))
            values = expand_values(str(item.get("values", "")))
        except NotationError as exc:
            raise ValueError(str(exc)) from None
        points = [(i * interval_ms, v) for i, v in enumerate(values) if v is not None]
        try:
            engine.load(as_labels(labels), [t for t, _ in points], [v for _, v in points])
        except ValueError as exc:
            raise ValueError(f"input series: {exc}") from None


def _run_group(test: dict[str, Any], rule_files: list[Path], eval_interval: float,
               order: dict[str, int]) -> list[str]:
    interval = parse_duration(test.get("interval") or _duration_text(eval_interval))
    engine = in_memory_engine(retention_s=10 * 365 * 86400.0)
    _load_series(engine, test, int(round(interval * 1000)))
    client = engine.query
    groups: list[Group] = load_rule_files(rule_files)
    groups.sort(key=lambda g: order.get(g.name, 0))
    evaluator = RuleEvaluator(groups, client, writer=engine.write, default_interval_s=interval,
                              external_labels={str(k): str(v) for k, v in (test.get("external_labels") or {}).items()},
                              external_url=str(test.get("external_url") or ""))
    alert_tests = sorted(test.get("alert_rule_test") or [], key=lambda t: parse_duration(t["eval_time"]))
    expr_tests = test.get("promql_expr_test") or []
    times = [parse_duration(t["eval_time"]) for t in alert_tests] + \
            [parse_duration(t["eval_time"]) for t in expr_tests]
    max_time = max(times, default=0.0)
    failures: list[str] = []
    step = 0
    current = 0
    while step * eval_interval <= max_time + 1e-9:
        ts = step * eval_interval
        evaluator.evaluate(ts)
        errors = [f"rule: {key.split('|')[-1]}, time: {_duration_text(ts)}, err: {h.last_error}"
                  for g in evaluator.groups for key, h in g.health.items() if h.last_error]
        if errors:
            return failures + errors
        while current < len(alert_tests) and ts <= parse_duration(alert_tests[current]["eval_time"]) < ts + eval_interval:
            failures.extend(_check_alerts(evaluator, alert_tests[current]))
            current += 1
        step += 1
    for case in expr_tests:
        failures.extend(_check_expr(client, case))
    return failures


def _check_alerts(evaluator: RuleEvaluator, case: dict[str, Any]) -> list[str]:
    name = str(case["alertname"])
    rule = next((r for r in evaluator.alerting_rules() if r.rule.name == name), None)
    got = sorted((as_labels(a.labels), tuple(sorted(a.annotations.items())))
                 for a in (rule.firing() if rule else []))
    expected = sorted((as_labels({**{str(k): str(v) for k, v in (e.get("exp_labels") or {}).items()},
                                  "alertname": name}),
                       tuple(sorted((str(k), str(v)) for k, v in (e.get("exp_annotations") or {}).items())))
                      for e in case.get("exp_alerts") or [])
    if got == expected:
        return []
    return [f"alertname: {name}, time: {case['eval_time']},\n        exp:{_show(expected)},\n        got:{_show(got)}"]


def _check_expr(client: QueryClient, case: dict[str, Any]) -> list[str]:
    at = parse_duration(case["eval_time"])
    try:
        got = sorted((as_labels(labels), value) for labels, value in query_vector(client, case["expr"], at))
    except RuleEvalError as exc:
        return [f"expr: {case['expr']!r}, time: {case['eval_time']}, err: {exc}"]
    expected = sorted((as_labels(parse_series(str(s.get("labels") or ""))), float(s["value"]))
                      for s in case.get("exp_samples") or [])
    # promtool compares with ==, so NaN never equals NaN there either.
    same = len(got) == len(expected) and all(
        gl == el and gv == ev and not math.isnan(gv) for (gl, gv), (el, ev) in zip(got, expected))
    if same:
        return []
    return [f"expr: {case['expr']!r}, time: {case['eval_time']},\n        exp: {expected}\n        got: {got}"]


def _show(alerts: list) -> str:
    if not alerts:
        return "[]"
    return "".join(f"\n            {i}: Labels:{dict(l)} Annotations:{dict(a)}" for i, (l, a) in enumerate(alerts))


def _duration_text(seconds: float) -> str:
    from cwkernel.durations import format_duration

    return format_duration(seconds) if seconds else "0s"
