"""Reloading the rule files without a restart (SIGHUP, POST /-/reload): what a rule still there
keeps (a pending alert's ``for`` clock, a firing alert's last send), what a bad file does (nothing:
the running rules stay, and the server says so), in process and in a real ``serve``, which reloads
its alerting.yml alike (tests/alerts/test_notify_reload.py)."""
from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
import yaml

from alerts.evaluator.component import rule_files_reload
from alerts.evaluator.manager import RuleEvaluator
from alerts.evaluator.rulefile import Group, Rule, load_rule_files
from alerts.evaluator.state import AlertStateStore
from cwkernel.errors import ConfigError
from tests.realcomponents import free_port, until, wait_http
from tsdb.client import LocalQueryClient
from tsdb.promql.engine import Engine
from tsdb.store import Store


def _hot(annotation: str = "hot", for_s: float = 120) -> Rule:
    return Rule("alert", "Hot", "temp > 90", {"severity": "warning"}, {"summary": annotation}, for_s=for_s,
                file="gpu.yml", group="gpu")


def _evaluator(rules: list[Rule], state: AlertStateStore | None = None) -> tuple[RuleEvaluator, list]:
    store = Store(retention_s=1e9)
    store.append_series((("__name__", "temp"), ("instance", "n1")), [i * 60_000 for i in range(10)], [95.0] * 10)
    sent: list = []
    evaluator = RuleEvaluator([Group("gpu", "gpu.yml", rules, interval_s=60)], LocalQueryClient(Engine(store)),
                              writer=store.append_scrape, notify=sent.extend, state=state, clock=lambda: 0.0)
    return evaluator, sent


def _alert(evaluator: RuleEvaluator, name: str = "Hot"):
    return next(alert for rule, alert in evaluator.active_alerts() if rule.rule.name == name)


def test_a_pending_alert_keeps_its_for_clock_across_a_reload() -> None:
    evaluator, sent = _evaluator([_hot()])
    evaluator.evaluate(60)
    assert _alert(evaluator).state == "pending"
    # Edited: an annotation changed and a rule added before it; Hot is the same rule.
    cool = Rule("alert", "Cool", "temp < 10", file="gpu.yml", group="gpu")
    evaluator.replace_groups([Group("gpu", "gpu.yml", [cool, _hot("very hot")], interval_s=60)])
    evaluator.evaluate(180)  # 120 s after it went pending, as without the reload
    hot = _alert(evaluator)
    assert (hot.state, hot.active_at, hot.annotations) == ("firing", 60, {"summary": "very hot"})
    assert [a.labels["alertname"] for a in sent] == ["Hot"]


def test_a_firing_alert_is_not_sent_again_early_after_a_reload() -> None:
    evaluator, sent = _evaluator([_hot(for_s=0)])
    evaluator.evaluate(60)
    assert len(sent) == 1
    evaluator.replace_groups([Group("gpu", "gpu.yml", [_hot(for_s=0)], interval_s=60)])
    evaluator.evaluate(90)  # within the 60 s resend delay
    assert len(sent) == 1
    evaluator.evaluate(180)
    assert len(sent) == 2


def test_a_removed_rule_is_gone_and_a_new_one_starts_unevaluated(tmp_path: Path) -> None:
    state = AlertStateStore(tmp_path / "state.sqlite")
    evaluator, _ = _evaluator([_hot(for_s=0)], state)
    evaluator.evaluate(60)
    cool = Rule("alert", "Cool", "temp < 10", file="gpu.yml", group="gpu")
    evaluator.replace_groups([Group("gpu", "gpu.yml", [cool], interval_s=60)])
    assert evaluator.active_alerts() == []
    assert [r.rule.name for g in evaluator.groups for r in g.rules] == ["Cool"]
    assert evaluator.groups[0].health == {}
    # Its saved state is forgotten, so a restart does not bring a removed rule's alert back.
    assert state.load(_hot().key, 60) == {}


def test_group_threads_are_replaced_and_a_retired_group_evaluates_no_more() -> None:
    evaluator, _ = _evaluator([_hot()])
    evaluator.start()
    try:
        old = evaluator.groups[0]
        old_threads = list(evaluator._threads)
        evaluator.replace_groups([Group("gpu", "gpu.yml", [_hot()], interval_s=30)])
        until(lambda: not any(t.is_alive() for t in old_threads), 30, "the old group thread to end")
        assert [t.is_alive() for t in evaluator._threads] == [True]
        old.last_eval = None
        evaluator.evaluate_group(old, 600)
        assert old.last_eval is None
    finally:
        evaluator.stop()


def test_a_bad_file_keeps_the_running_rules_and_says_so(tmp_path: Path) -> None:
    path = tmp_path / "site.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "site", "rules": [{"alert": "A", "expr": "up == 0"}]}]}))
    evaluator = RuleEvaluator(load_rule_files([path]), LocalQueryClient(Engine(Store())))
    reload = rule_files_reload([path], evaluator)
    path.write_text(yaml.safe_dump({"groups": [{"name": "site", "rules": [{"alert": "B", "expr": "up =="}]}]}))
    with pytest.raises(ConfigError, match="site.yml"):
        reload()
    assert [r.rule.name for g in evaluator.groups for r in g.rules] == ["A"]
    assert "reload_failed" in reload.problems()
    path.write_text(yaml.safe_dump({"groups": [{"name": "site", "rules": [{"alert": "B", "expr": "up == 0"}]}]}))
    reload()
    assert [r.rule.name for g in evaluator.groups for r in g.rules] == ["B"] and reload.problems() == {}


ALERTING = """
route:
  receiver: team
receivers:
  - name: team
"""


def _rules_file(path: Path, *names: str, expr: str = "vector(1)") -> None:
    path.write_text(yaml.safe_dump({"groups": [{"name": "site", "interval": "1s", "rules": [
        {"alert": name, "expr": expr} for name in names]}]}))


def _rule_names(base: str) -> list[str]:
    groups = httpx.get(f"{base}/api/v1/rules", timeout=30).json()["data"]["groups"]
    return [rule["name"] for group in groups for rule in group["rules"]]


@pytest.mark.real_component
def test_serve_reloads_on_sighup_and_on_an_operators_post(tmp_path: Path, process_factory) -> None:
    rules = tmp_path / "site.yml"
    _rules_file(rules, "First")
    routing = tmp_path / "alerting.yml"
    routing.write_text(ALERTING)
    port = free_port()
    proc = process_factory([sys.executable, "-m", "clusterwatch", "serve", "--listen", f"127.0.0.1:{port}",
                            "--rules", str(rules), "--alerting-config", str(routing)], name="serve",
                           env={"CLUSTERWATCH_OPERATOR_TOKEN": "s3cret"})
    base = f"http://127.0.0.1:{port}"
    wait_http(f"{base}/-/ready", timeout=60, proc=proc)
    assert _rule_names(base) == ["First"]

    _rules_file(rules, "First", "Second")
    os.kill(proc.pid, signal.SIGHUP)
    until(lambda: _rule_names(base) == ["First", "Second"], 30, "the rules read again on SIGHUP")

    _rules_file(rules, "Broken", expr="vector(1) >")
    assert httpx.post(f"{base}/-/reload", timeout=30).status_code == 401  # an operator action
    answer = httpx.post(f"{base}/-/reload", headers={"Authorization": "Bearer s3cret"}, timeout=30)
    assert answer.status_code == 500 and answer.text.startswith("failed to reload config: rules: ")
    assert str(rules) in answer.text
    assert _rule_names(base) == ["First", "Second"]  # still running the rules it had
    metrics = httpx.get(f"{base}/metrics", timeout=30).text
    assert "clusterwatch_config_last_reload_successful 0.0" in metrics
    assert "reload_failed" in httpx.get(f"{base}/-/ready", timeout=30).text

    _rules_file(rules, "Third")
    routing.write_text(ALERTING.replace("receiver: team", "receiver: nobody", 1))
    answer = httpx.post(f"{base}/-/reload", headers={"Authorization": "Bearer s3cret"}, timeout=30)
    assert answer.status_code == 500 and "alerting: route: receiver 'nobody' is not defined" in answer.text
    assert "rules:" not in answer.text and _rule_names(base) == ["Third"]  # each component on its own

    routing.write_text(ALERTING)
    answer = httpx.put(f"{base}/-/reload", headers={"Authorization": "Bearer s3cret"}, timeout=30)
    assert answer.status_code == 200 and _rule_names(base) == ["Third"]
    assert "clusterwatch_config_last_reload_successful 1.0" in httpx.get(f"{base}/metrics", timeout=30).text
    assert "reload_failed" not in httpx.get(f"{base}/-/ready", timeout=30).text


def test_a_group_stuck_in_its_query_holds_up_no_other_group_during_a_reload() -> None:
    """The reload stopped every group's thread first, then waited for the group in the middle of
    a slow query: until that query ended (up to its timeout, 2 minutes) no rule of any group was
    evaluated."""
    release, stuck = threading.Event(), threading.Event()
    fast_evaluations = []

    class Client:
        concurrent_queries = False

        def __init__(self) -> None:
            self.inner = LocalQueryClient(Engine(Store()))

        def instant(self, expr, at=None):
            if "slow" in expr:
                stuck.set()
                release.wait(60)
            else:
                fast_evaluations.append(at)
            return self.inner.instant(expr, at)

    def groups() -> list[Group]:
        return [Group("slow", "f.yml", [Rule("record", "slow:x", "vector(1) + 0 * absent(slow)", file="f.yml",
                                             group="slow")], interval_s=0.2),
                Group("fast", "f.yml", [Rule("record", "fast:x", "vector(1)", file="f.yml", group="fast")],
                      interval_s=0.2)]

    evaluator = RuleEvaluator(groups(), Client(), clock=time.time)
    evaluator.start()
    reload = threading.Thread(target=evaluator.replace_groups, args=(groups(),), daemon=True)
    try:
        until(stuck.is_set, 30, "the slow group in its query")
        reload.start()
        before = len(fast_evaluations)
        until(lambda: len(fast_evaluations) >= before + 3, 30, "the fast group evaluating during the reload")
        assert reload.is_alive(), "the reload waits for the slow group's query"
    finally:
        release.set()
        reload.join(30)
        evaluator.stop()
    assert not reload.is_alive()


def test_reload_requests_that_come_while_one_runs_make_one_more_reload_not_a_thread_each() -> None:
    """SIGHUP started a thread per signal, each waiting for the reload before it: a signal sent in
    a loop piled up threads without bound."""
    from cwkernel.reload import Reloader
    from cwkernel.server import Component

    entered, release, reloads = threading.Event(), threading.Event(), []

    def slow_reload() -> None:
        reloads.append(1)
        entered.set()
        release.wait(30)

    reloader = Reloader([Component("rules", reload=slow_reload)])
    reloader.request()
    until(entered.is_set, 30, "the first reload under way")
    for _ in range(200):
        reloader.request()
    assert [t.name for t in threading.enumerate()].count("reload") == 1
    release.set()
    until(lambda: len(reloads) == 2 and not reloader._worker.is_alive(), 30, "one more reload, then none")
