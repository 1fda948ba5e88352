"""The rule pack: valid for promtool, and its unit tests pass in promtool and the embedded runner alike."""
from __future__ import annotations

import re
import subprocess
from collections import defaultdict
from pathlib import Path

import pytest
import yaml

from alerts.evaluator import load_rule_files
from alerts.evaluator.manager import RuleEvaluator
from alerts.evaluator.promtest import run_test_file
from alerts.evaluator.rulefile import parse_duration
from tests.alerts.rule_support import group_store
from tests.realcomponents import require_binary
from tsdb.client import LocalQueryClient
from tsdb.promql.engine import Engine

ROOT = Path(__file__).resolve().parents[2] / "alerts"
RULE_FILES = sorted((ROOT / "rules").glob("*.yml"))
TEST_FILES = sorted((ROOT / "tests").glob("*.yml"))


@pytest.mark.real_component
def test_promtool_check_rules_accepts_the_pack():
    promtool = require_binary("promtool")
    result = subprocess.run([promtool, "check", "rules", *map(str, RULE_FILES)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.real_component
@pytest.mark.parametrize("test_file", TEST_FILES, ids=lambda p: p.name)
def test_promtool_and_embedded_runner_agree_and_pass(test_file):
    promtool = require_binary("promtool")
    reference = subprocess.run([promtool, "test", "rules", str(test_file)], capture_output=True, text=True)
    embedded = run_test_file(test_file)
    assert (reference.returncode == 0) == embedded.passed, (reference.stdout, embedded.failures)
    assert reference.returncode == 0, reference.stdout
    assert embedded.passed, "\n".join(embedded.failures)


@pytest.mark.real_component
def test_embedded_runner_fails_where_promtool_fails(tmp_path):
    """Agreement on a failing verdict too: a wrong expectation fails in both."""
    promtool = require_binary("promtool")
    broken = (ROOT / "tests" / "hardware_test.yml").read_text().replace(
        "      - eval_time: 9m\n        alertname: GpuXidRebootRequired\n        exp_alerts: []",
        "      - eval_time: 9m\n        alertname: GpuXidRebootRequired\n"
        "        exp_alerts:\n          - exp_labels: {instance: n1}")
    assert broken != (ROOT / "tests" / "hardware_test.yml").read_text()
    (tmp_path / "rules").symlink_to(ROOT / "rules")
    (tmp_path / "tests").mkdir()
    path = tmp_path / "tests" / "broken_test.yml"
    path.write_text(broken)
    reference = subprocess.run([promtool, "test", "rules", str(path)], capture_output=True, text=True)
    assert reference.returncode != 0
    assert not run_test_file(path).passed


def test_every_alert_has_severity_runbook_and_templated_text_and_tests():
    tested = "\n".join(p.read_text() for p in TEST_FILES if p.name != "healthy_fleet_test.yml")
    everything = "\n".join(p.read_text() for p in TEST_FILES)
    docs = (ROOT.parent / "docs" / "alerts.md").read_text()
    for group in load_rule_files(RULE_FILES):
        for rule in group.rules:
            if rule.kind != "alert":
                continue
            assert rule.labels.get("severity") in ("critical", "warning", "info"), rule.name
            assert {"summary", "description", "runbook"} <= set(rule.annotations), rule.name
            assert rule.annotations["runbook"] == f"docs/alerts.md#{rule.name.lower()}"
            assert f"### {rule.name}" in docs, f"{rule.name} has no section in docs/alerts.md"
            assert "$labels" in rule.annotations["description"] or "$value" in rule.annotations["description"], rule.name
            # A firing case (exp_labels under the name) and a not-firing case (exp_alerts: []).
            assert f"alertname: {rule.name}\n        exp_alerts:\n          - exp_labels" in tested, rule.name
            assert f"alertname: {rule.name}\n        exp_alerts: []" in everything, rule.name


@pytest.mark.slow
def test_rules_cli_check_and_test(capsys):
    from clusterwatch.cli import main

    assert main(["rules", "check"]) == 0
    assert main(["rules", "test", "--no-promtool"]) == 0
    assert main(["rules", "check", str(ROOT / "tests" / "jobs_test.yml")]) == 1
    assert "WARNING" not in capsys.readouterr().err  # no template of the pack fails whatever the alert


def test_rules_check_warns_of_a_template_that_fails_whatever_the_alert(tmp_path, capsys):
    """Prometheus loads it and writes the error into every alert's annotation when it fires."""
    from clusterwatch.cli import main

    path = tmp_path / "site.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "site", "rules": [{
        "alert": "Hot", "expr": "up == 0", "labels": {"team": "{{ 1 | title }}"},
        "annotations": {"summary": "{{ $value | toUpper }}", "fine": "{{ $labels.instance | title }}",
                        "data": "{{ humanizeTimestamp $labels.instance }}"}}]}]}))
    assert main(["rules", "check", str(path)]) == 0  # loads, as in Prometheus
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("WARNING")]
    assert warnings == [
        f"WARNING: {path}: group site: rule Hot: label team: wrong type for value; expected string; got int",
        f"WARNING: {path}: group site: rule Hot: annotation summary: wrong type for value; expected string; "
        "got float64"]


def _alerts_fired_on_the_test_data() -> dict[str, list[dict[str, str]]]:
    """Rule name -> the labels of every alert it fired: the whole pack evaluated, every minute, over
    each test group's input series in alerts/tests (data made to fire every rule)."""
    fired: dict[str, list[dict[str, str]]] = defaultdict(list)
    for path in TEST_FILES:
        for test in yaml.safe_load(path.read_text())["tests"]:
            interval = parse_duration(test.get("interval") or "1m")
            store, last = group_store(test, interval)
            groups = sorted(load_rule_files(RULE_FILES), key=lambda g: not g.name.startswith("clusterwatch-"))
            evaluator = RuleEvaluator(groups, LocalQueryClient(Engine(store)), writer=store.append_rule_output,
                                      default_interval_s=interval)
            for step in range(int(last // 60) + 1):
                evaluator.evaluate(step * 60.0)
                for rule in evaluator.alerting_rules():
                    fired[rule.rule.name].extend(dict(alert.labels) for alert in rule.firing())
    return fired


@pytest.mark.slow
def test_every_gpu_alert_names_its_gpu_by_instance_gpu_and_uuid_and_its_job():
    """docs/alerts.md: an alert about a GPU carries instance, gpu and uuid (the uuid follows the
    board through re-indexing and RMA tickets); one about a GPU in a job (it reads the per-job
    series) carries job_id too. Checked on what the rules fire, not on what they say."""
    fired = _alerts_fired_on_the_test_data()
    rules = {rule.name: rule for group in load_rule_files(RULE_FILES) for rule in group.rules if rule.kind == "alert"}
    assert set(fired) == set(rules), f"never fired on the test data: {set(rules) - set(fired)}"
    gpu_rules = {name for name, alerts in fired.items() if any("gpu" in labels for labels in alerts)}
    assert {"GpuXidRebootRequired", "GpuLost", "GpuStragglerUtilization"} <= gpu_rules
    missing = {}
    for name in sorted(gpu_rules):
        wanted = {"instance", "gpu", "uuid"} | ({"job_id"} if "instance_gpu_job:" in rules[name].expr else set())
        for labels in fired[name]:
            if lacking := sorted(label for label in wanted if not labels.get(label)):
                missing[name] = lacking
    assert not missing, f"GPU alerts without the labels that identify the GPU: {missing}"


# Families with several series per GPU (per error type, link or clock-event reason): 262,144 to
# 524,288 series at 16,384 nodes. The rules read the exporter's per-GPU totals instead, and look a
# link up only in an alert's description (docs/alerts.md#group-structure).
PER_GPU_DETAIL = ("gpu_nvlink_errors_total", "gpu_nvlink_link_errors_total", "gpu_clock_event_seconds_total")


def test_rules_read_per_gpu_totals_not_per_link_or_per_type_series():
    import promql_parser as pp

    readers = {}
    for group in load_rule_files(RULE_FILES):
        for rule in group.rules:
            names = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", str(pp.parse(rule.expr))))
            if found := names & set(PER_GPU_DETAIL):
                readers[rule.name] = sorted(found)
    assert readers == {}, f"rules reading per-link or per-type series: {readers}"


def test_every_window_and_for_fits_its_groups_interval():
    """A group evaluated every I: each range window is at least I (no counter increase falls
    between two evaluations unseen), and a ``for`` is 0 or at least I (else it means one
    interval, not what it says). The slow hardware groups (1 m, 2 m) rely on it."""
    misfits = []
    for group in load_rule_files(RULE_FILES):
        interval = group.interval_s or 60.0
        for rule in group.rules:
            windows = [parse_duration(w) for w in re.findall(r"\[(\d+[smhdwy])(?::[^\]]*)?\]", rule.expr)]
            if any(w < interval for w in windows) or 0 < rule.for_s < interval:
                misfits.append((group.name, rule.name, interval, windows, rule.for_s))
    assert misfits == []


# Each XID rule: the counters it reads and what it makes of their XIDs first seen in the hour.
XID_RULES = {
    "GpuXidRebootRequired": ('gpu_xid_errors_total{action="reboot"}', "{}"),
    "GpuXidResetRequired": ('gpu_xid_errors_total{action="reset_gpu"}', "{}"),
    "GpuXidHardwareFault": ('gpu_xid_errors_total{action=~"contact_support|check_hardware"}', "{}"),
    "GpuXidNeedsInvestigation": ('gpu_xid_errors_total{action=~"workflow|recovery"}', "max without (action) ({})"),
    "GpuXidApplicationErrorsRepeated": ('gpu_xid_errors_total{action="restart_app"}',
                                        "sum by (instance, gpu, uuid) ({}) >= 3"),
}


def test_xid_rules_count_xids_as_the_dashboard_does():
    """One definition of "XIDs first seen in the last W" (dashboard/definitions.py): every rule
    reading the XID counters holds its expression, so the cases alerts/tests/hardware_test.yml
    shows on XID 79 hold for every XID rule and for the dashboard's unhealthy GPUs."""
    import promql_parser as pp

    from dashboard.definitions import xid_errors_seen

    rules = {rule.name: rule.expr for group in load_rule_files(RULE_FILES) for rule in group.rules}
    readers = {name for name, expr in rules.items() if "gpu_xid_errors_total" in expr}
    assert readers == set(XID_RULES) | {"instance_gpu:gpu_unhealthy:count"}  # that one: test_overview_scale
    for name, (selector, wrapped) in XID_RULES.items():
        assert str(pp.parse(rules[name])) == str(pp.parse(wrapped.format(xid_errors_seen(selector, "1h")))), name


def test_job_rules_are_the_dashboards_definitions():
    """One definition of idle, hung, straggler, held-but-unused and low efficiency
    (docs/architecture.md#definitions): every rule of jobs.yml, and the recorded series they read,
    is the expression and ``for`` that dashboard/definitions.py writes from the thresholds its
    pages use, so a threshold changed on one side only is a red test. The same GPUs and jobs
    flagged on one data set: tests/dashboard/test_definitions.py."""
    import promql_parser as pp

    from dashboard.definitions import JOB_RULES

    rules = {rule.name: rule for group in load_rule_files(RULE_FILES) for rule in group.rules}
    jobs = {rule.name for rule in rules.values() if Path(rule.file).name == "jobs.yml"}
    assert jobs <= set(JOB_RULES), f"rules of jobs.yml without a definition: {jobs - set(JOB_RULES)}"
    for name, (expr, for_) in JOB_RULES.items():
        assert str(pp.parse(rules[name].expr)) == str(pp.parse(expr)), name
        assert rules[name].for_s == (parse_duration(for_) if for_ else 0.0), name


def test_job_alert_texts_name_each_measure_and_its_threshold():
    """The efficiency and straggler alerts say which measure they read (SM activity or utilisation,
    docs/architecture.md#definitions) and quote that measure's threshold: a threshold changed in
    dashboard/definitions.py without the text is a red test."""
    from dashboard.definitions import MEASURES

    rules = {rule.name: rule for group in load_rule_files(RULE_FILES) for rule in group.rules}
    for name, threshold in (("JobGpuEfficiencyLow", "efficiency_low_below"),
                            ("GpuStragglerUtilization", "straggler_busy_above")):
        text = rules[name].annotations["description"]
        for measure in MEASURES.values():
            assert f'eq $labels.measure "{measure.name}"' in text or measure.name == "utilization", name
            assert measure.title in text, (name, measure.title)
            assert f"{getattr(measure, threshold):.0%}" in text, (name, measure.name)
