"""The evaluator's state machine, outputs, resend semantics and restart behaviour, in process."""
from __future__ import annotations

from alerts.evaluator.manager import RuleEvaluator
from alerts.evaluator.rulefile import Group, Rule
from alerts.evaluator.state import AlertStateStore
from tsdb.client import LocalQueryClient
from tsdb.promql.engine import Engine
from tsdb.store import Store


def _setup(values: list[float], rule: Rule, state: AlertStateStore | None = None, step: int = 60):
    store = Store(retention_s=1e9)
    store.append_series((("__name__", "temp"), ("instance", "n1")), [i * step * 1000 for i in range(len(values))],
                        values)
    sent: list = []
    evaluator = RuleEvaluator([Group("g", "f.yml", [rule])], LocalQueryClient(Engine(store)),
                              writer=store.append_scrape, notify=sent.extend, state=state,
                              clock=lambda: 0.0)
    return store, evaluator, sent


def _hot(**kwargs) -> Rule:
    return Rule("alert", "Hot", "temp > 90", {"severity": "warning"},
                {"summary": "{{ $labels.instance }} at {{ $value }}"}, file="f.yml", group="g", **kwargs)


def _states(evaluator: RuleEvaluator) -> list[str]:
    return [a.state for _, a in evaluator.active_alerts()]


def test_pending_then_firing_after_for_then_resolved_and_sent_as_resolved():
    _, evaluator, sent = _setup([50, 95, 95, 95, 95, 50, 50], _hot(for_s=120))
    evaluator.evaluate(0)
    assert _states(evaluator) == []
    evaluator.evaluate(60)
    assert _states(evaluator) == ["pending"] and sent == []
    evaluator.evaluate(120)
    assert _states(evaluator) == ["pending"]
    evaluator.evaluate(180)
    assert _states(evaluator) == ["firing"]
    assert sent[-1].labels == {"alertname": "Hot", "instance": "n1", "severity": "warning"}
    assert sent[-1].annotations == {"summary": "n1 at 95"} and sent[-1].ends_at is None
    assert sent[-1].starts_at == 180
    evaluator.evaluate(300)
    assert _states(evaluator) == ["inactive"]
    assert sent[-1].ends_at == 300 and sent[-1].status == "resolved"


def test_alerts_series_are_written_like_prometheus():
    store, evaluator, _ = _setup([95] * 5, _hot(for_s=60))
    client = LocalQueryClient(Engine(store))
    evaluator.evaluate(0)
    pending = client.instant('ALERTS{alertname="Hot"}', 0).series
    assert [s.labels["alertstate"] for s in pending] == ["pending"]
    evaluator.evaluate(60)
    firing = client.instant('ALERTS{alertname="Hot"}', 60).series
    assert [s.labels["alertstate"] for s in firing] == ["firing"]
    assert client.instant("ALERTS_FOR_STATE", 60).series[0].value == 0.0


def test_keep_firing_for_holds_a_firing_alert():
    _, evaluator, _ = _setup([95, 95, 50, 50, 50, 50], _hot(keep_firing_for_s=120))
    for ts in (0, 60, 120):
        evaluator.evaluate(ts)
    assert _states(evaluator) == ["firing"]
    evaluator.evaluate(180)
    assert _states(evaluator) == ["firing"]
    evaluator.evaluate(240)
    assert _states(evaluator) == ["inactive"]


def test_firing_alerts_are_resent_after_the_resend_delay_only():
    _, evaluator, sent = _setup([95] * 10, _hot(), step=15)
    for ts in range(0, 150, 15):
        evaluator.evaluate(ts)
    # Sent at 0, then once more than 60 s later (75), then 150 is not reached.
    assert len(sent) == 2


def test_restart_keeps_for_clocks_and_does_not_renotify(tmp_path):
    path = tmp_path / "alerts.sqlite"
    _, first, sent = _setup([95] * 20, _hot(for_s=600), AlertStateStore(path))
    first.evaluate(0)
    first.evaluate(300)
    first.state.close()
    _, second, sent2 = _setup([95] * 20, _hot(for_s=600), AlertStateStore(path))
    assert _states(second) == ["pending"]
    second.evaluate(600)  # 600 s after the first evaluation, not after the restart
    assert _states(second) == ["firing"] and len(sent2) == 1
    second.state.close()
    _, third, sent3 = _setup([95] * 20, _hot(for_s=600), AlertStateStore(path))
    third.evaluate(630)
    assert _states(third) == ["firing"] and sent3 == []  # sent at 600: not again within a minute


def test_a_template_that_fails_in_any_way_fails_only_its_own_annotation(monkeypatch) -> None:
    """``{{ $value | toUpper }}`` met Python's AttributeError, which escaped the renderer and failed
    the whole group's evaluation each time: every rule of the group stopped alerting."""
    from alerts.evaluator import templates

    store = Store(retention_s=1e9)
    store.append_series((("__name__", "temp"), ("instance", "n1")), [0], [95.0])
    bad = Rule("alert", "Bad", "temp > 90", annotations={"a": "{{ $value | toUpper }}", "b": "{{ humanize $value }}"},
               file="f.yml", group="g")
    odd = Rule("alert", "Odd", "temp > 90", annotations={"a": "{{ stripPort $labels.instance }}"}, file="f.yml",
               group="g", index=1)
    good = Rule("alert", "Good", "temp > 90", file="f.yml", group="g", index=2)
    monkeypatch.setitem(templates.FUNCTIONS, "stripPort", lambda text: 1 / 0)  # a function's own bug
    evaluator = RuleEvaluator([Group("g", "f.yml", [bad, odd, good])], LocalQueryClient(Engine(store)))
    evaluator.evaluate(0)
    alerts = {rule.rule.name: alert for rule, alert in evaluator.active_alerts()}
    assert set(alerts) == {"Bad", "Odd", "Good"}
    assert alerts["Bad"].annotations["a"].endswith(
        'at <toUpper>: wrong type for value; expected string; got float64>')
    assert alerts["Bad"].annotations["b"] == "95"
    assert alerts["Odd"].annotations["a"].endswith("error calling stripPort: division by zero>")


def test_a_rule_that_fails_with_a_bug_stops_only_itself(monkeypatch) -> None:
    """Only a RuleEvalError was contained to its rule: anything else ended the group's evaluation
    there, and the rules after it were not evaluated at all."""
    store = Store(retention_s=1e9)
    store.append_series((("__name__", "temp"), ("instance", "n1")), [0], [95.0])
    first = Rule("alert", "First", "temp > 90", file="f.yml", group="g")
    second = Rule("alert", "Second", "temp > 90", file="f.yml", group="g", index=1)
    evaluator = RuleEvaluator([Group("g", "f.yml", [first, second])], LocalQueryClient(Engine(store)))
    broken = evaluator.groups[0].rules[0]
    monkeypatch.setattr(broken, "eval", lambda *args, **kwargs: [][1])
    evaluator.evaluate(0)
    assert [rule.rule.name for rule, _ in evaluator.active_alerts()] == ["Second"]
    health = evaluator.groups[0].health[first.key]
    assert health.last_error == "internal error: IndexError: list index out of range" and health.failures == 1
