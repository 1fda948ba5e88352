"""``clusterwatch rules export --selector/--runbook-base`` (issue 18 part 3): the pack scoped to ClusterWatch's
targets in a shared Prometheus, and an absolute ``runbook_url`` on every alert (alerts/evaluator/scoping.py).

The reproduction: in a Prometheus that also scrapes an unrelated job (a database) and node_exporter on the
GPU nodes, the unscoped pack (the shipped rules, exported with ``--selector ''``) fires ExporterDown for the
database and NodeMemoryPressure twice per node; exported with the default selector it fires once, for the
GPU node. Checked with real promtool and the embedded runner alike.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from alerts.evaluator.promtest import run_test_file
from alerts.evaluator.scoping import (
    DEFAULT_SELECTOR,
    ScopeError,
    parse_scope,
    runbook_url,
    scope_expr,
)
from tests.realcomponents import require_binary

ROOT = Path(__file__).resolve().parents[2]
PACK = ROOT / "alerts" / "rules"
SCOPE = 'job=~"gpu-nodes|clusterwatch|clusterwatch-fabric"'


def _export(out: Path, *flags: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "clusterwatch", "rules", "export", "--out", str(out), *flags],
                          check=False, capture_output=True, text=True, timeout=120, cwd=ROOT)


def _rules(directory: Path) -> dict[str, dict]:
    return {rule.get("alert") or rule["record"]: rule for path in sorted(directory.glob("*.yml"))
            for group in yaml.safe_load(path.read_text())["groups"] for rule in group["rules"]}


# --- the rewrite -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("expr, scoped", [
    ("up == 0", f"up{{{SCOPE}}} == 0"),
    ('up{instance="a"}', f'up{{instance="a", {SCOPE}}}'),
    ('up{instance="a",}', f'up{{instance="a",{SCOPE}}}'),
    ("sum by (receiver) (increase(x_total[10m])) > 0", f"sum by (receiver) (increase(x_total{{{SCOPE}}}[10m])) > 0"),
    ("sum(x) without (instance)", f"sum(x{{{SCOPE}}}) without (instance)"),
    ("max by (instance) (y) == 1", f"max by (instance) (y{{{SCOPE}}}) == 1"),
    ("a / on (instance) group_left (model) b", f"a{{{SCOPE}}} / on (instance) group_left (model) b{{{SCOPE}}}"),
    ("rate(x[5m:1m] offset 1h30m) * 1e3 > bool inf", f"rate(x{{{SCOPE}}}[5m:1m] offset 1h30m) * 1e3 > bool inf"),
    ('{__name__="x"}', f'{{__name__="x", {SCOPE}}}'),
    ('label_replace(x, "by", "$1", "on", "(.*)")', f'label_replace(x{{{SCOPE}}}, "by", "$1", "on", "(.*)")'),
    ("time() - x > 120 # up == 0 in a comment", f"time() - x{{{SCOPE}}} > 120 # up == 0 in a comment"),
    # recorded series and their readers, ALERTS, and selectors that already say which job: untouched
    ("instance:gpu_up:sum < on (instance) gpu_up", f"instance:gpu_up:sum < on (instance) gpu_up{{{SCOPE}}}"),
    ('count(ALERTS{alertstate="firing"})', 'count(ALERTS{alertstate="firing"})'),
    ('up{job="slurm"} == 0', 'up{job="slurm"} == 0'),
    ("AND_x and on (instance) OR_y", f"AND_x{{{SCOPE}}} and on (instance) OR_y{{{SCOPE}}}"),
])
def test_scope_expr_adds_the_matcher_to_every_scraped_selector(expr, scoped):
    assert scope_expr(expr, SCOPE) == scoped


def test_names_recorded_by_the_exported_files_are_not_scoped():
    assert scope_expr("gpu_up == 0 and gpu_temp > 80", SCOPE, {"gpu_up"}) == f"gpu_up == 0 and gpu_temp{{{SCOPE}}} > 80"


@pytest.mark.parametrize("selector", ['job=~"a|b"', 'job="gpu-nodes", cluster="c1"'])
def test_parse_scope_accepts_matchers(selector):
    assert parse_scope(selector)


@pytest.mark.parametrize("selector", ["job", 'up{job="x"}', 'job="x"} or {a="b"', "job=~"])
def test_parse_scope_refuses_what_is_not_a_matcher_list(selector):
    with pytest.raises(ScopeError):
        parse_scope(selector)


def test_runbook_url():
    assert runbook_url("docs/alerts.md#exporterdown", "https://wiki.example/cw/docs/") == \
        "https://wiki.example/cw/docs/alerts.md#exporterdown"


# --- the export -------------------------------------------------------------------------------------------

def test_default_export_scopes_every_rule_and_keeps_recorded_series_and_readers(tmp_path):
    done = _export(tmp_path / "out")
    assert done.returncode == 0, done.stderr
    shipped, exported = _rules(PACK), _rules(tmp_path / "out")
    assert shipped.keys() == exported.keys()
    for name, rule in exported.items():
        assert rule["expr"] == scope_expr(shipped[name]["expr"], DEFAULT_SELECTOR, {r for r in shipped if "alert" not in shipped[r]})
        if "alert" in rule:
            anchor = shipped[name]["annotations"]["runbook"].split("/", 1)[1]
            assert rule["annotations"]["runbook_url"] == f"https://clusterwatch.example/docs/{anchor}"
            assert rule["annotations"]["runbook"] == shipped[name]["annotations"]["runbook"]
    assert 'up{job=~"gpu-nodes|clusterwatch|clusterwatch-fabric"} == 0' in exported["ExporterDown"]["expr"]
    # The fabric collector's target (job="clusterwatch-fabric") is in the default scope.
    assert 'fabric_link_state{job=~"gpu-nodes|clusterwatch|clusterwatch-fabric"} != bool 4' in \
        exported["fabric_link:health"]["expr"]
    readers = [r["expr"] for r in exported.values() if "instance:gpu_up:sum <" in r["expr"]]
    assert readers and all("instance:gpu_up:sum{" not in expr for expr in readers)  # recorded: read as recorded


@pytest.mark.real_component
def test_exported_pack_passes_promtool_check(tmp_path):
    promtool = require_binary("promtool")
    assert _export(tmp_path / "out", "--selector", 'job="gpu", cluster=~"c1|c2"',
                   "--runbook-base", "https://runbooks.example/cw").returncode == 0
    files = sorted((tmp_path / "out").glob("*.yml"))
    done = subprocess.run([promtool, "check", "rules", *map(str, files)], check=False, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    rule = _rules(tmp_path / "out")["ExporterDown"]
    assert 'up{job="gpu", cluster=~"c1|c2"} == 0' in rule["expr"]
    assert rule["annotations"]["runbook_url"] == "https://runbooks.example/cw/alerts.md#exporterdown"


def test_empty_selector_keeps_the_shipped_expressions(tmp_path):
    assert _export(tmp_path / "out", "--selector", "").returncode == 0
    shipped, exported = _rules(PACK), _rules(tmp_path / "out")
    assert {n: r["expr"] for n, r in exported.items()} == {n: r["expr"] for n, r in shipped.items()}


def test_bad_selector_is_refused(tmp_path):
    done = _export(tmp_path / "out", "--selector", "job")
    assert done.returncode != 0 and "--selector" in done.stderr


# --- the reproduction: a shared Prometheus -----------------------------------------------------------------

SHARED_PROMETHEUS_TEST = """\
rule_files: [node.yml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'up{job="gpu-nodes", instance="n1"}'
        values: '0x10'
      - series: 'up{job="postgres", instance="db-1:5432"}'
        values: '0x10'
      - series: 'up{job="node", instance="n2"}'
        values: '1x10'
      - series: 'node_memory_MemAvailable_bytes{job="gpu-nodes", instance="n2"}'
        values: '2x10'
      - series: 'node_memory_MemTotal_bytes{job="gpu-nodes", instance="n2"}'
        values: '100x10'
      - series: 'node_memory_MemAvailable_bytes{job="node", instance="n2"}'
        values: '2x10'
      - series: 'node_memory_MemTotal_bytes{job="node", instance="n2"}'
        values: '100x10'
    alert_rule_test:
      - eval_time: 6m
        alertname: ExporterDown
        exp_alerts:
          - exp_labels: {job: gpu-nodes, instance: n1, severity: warning}
            exp_annotations:
              summary: 'Scrapes of n1 (gpu-nodes) fail'
              description: "Target n1 of job gpu-nodes has failed every scrape for 2 minutes while the node itself is not reported down: the exporter is stopped, hung or firewalled. None of the node's GPU alerts can fire meanwhile. Restart the exporter."
              runbook: docs/alerts.md#exporterdown
              runbook_url: https://clusterwatch.example/docs/alerts.md#exporterdown
      - eval_time: 6m
        alertname: NodeMemoryPressure
        exp_alerts:
          - exp_labels: {job: gpu-nodes, instance: n2, severity: warning}
            exp_annotations:
              summary: 'n2 has 2% of its memory available'
              description: 'n2 has had less than 5% of its memory available for 5 minutes (2% now). Data loaders and pinned buffers are next in line for the OOM killer.'
              runbook: docs/alerts.md#nodememorypressure
              runbook_url: https://clusterwatch.example/docs/alerts.md#nodememorypressure
"""


@pytest.mark.real_component
@pytest.mark.parametrize("flags, passes", [((), True), (("--selector", ""), False)], ids=["default-selector", "unscoped"])
def test_shared_prometheus_unrelated_job_and_node_exporter(tmp_path, flags, passes):
    """Unscoped (the shipped expressions) ExporterDown fires for db-1 and NodeMemoryPressure twice; scoped, once."""
    promtool = require_binary("promtool")
    out = tmp_path / "out"
    assert _export(out, *flags).returncode == 0
    test_file = out / "shared_prometheus_test.yml"
    test_file.write_text(SHARED_PROMETHEUS_TEST)
    reference = subprocess.run([promtool, "test", "rules", str(test_file)], check=False, capture_output=True, text=True)
    embedded = run_test_file(test_file)
    assert (reference.returncode == 0) == passes, reference.stdout + reference.stderr
    assert embedded.passed == passes, "\n".join(embedded.failures)
    if not passes:
        assert "db-1:5432" in reference.stdout + reference.stderr and 'job="node"' in reference.stdout + reference.stderr
