"""The rule pack: valid for promtool, and its unit tests pass in promtool and the embedded runner alike."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from alerts.evaluator import load_rule_files
from alerts.evaluator.promtest import run_test_file
from tests.realcomponents import require_binary

ROOT = Path(__file__).resolve().parents[2] / "alerts"
RULE_FILES = sorted((ROOT / "rules").glob("*.yml"))
TEST_FILES = sorted((ROOT / "tests").glob("*.yml"))


def test_promtool_check_rules_accepts_the_pack():
    promtool = require_binary("promtool")
    result = subprocess.run([promtool, "check", "rules", *map(str, RULE_FILES)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("test_file", TEST_FILES, ids=lambda p: p.name)
def test_promtool_and_embedded_runner_agree_and_pass(test_file):
    promtool = require_binary("promtool")
    reference = subprocess.run([promtool, "test", "rules", str(test_file)], capture_output=True, text=True)
    embedded = run_test_file(test_file)
    assert (reference.returncode == 0) == embedded.passed, (reference.stdout, embedded.failures)
    assert reference.returncode == 0, reference.stdout
    assert embedded.passed, "\n".join(embedded.failures)


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


def test_rules_cli_check_and_test(capsys):
    from clusterwatch.cli import main

    assert main(["rules", "check"]) == 0
    assert main(["rules", "test", "--no-promtool"]) == 0
    assert main(["rules", "check", str(ROOT / "tests" / "jobs_test.yml")]) == 1
