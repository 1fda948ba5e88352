"""Alerting rules against promtool 2.42 on random inputs: each seed draws gauges with gaps and
stale markers, counters with resets, four alerting rules (threshold, rate, absent, vector
matching, set operators, aggregations, ``for`` from none to 5 m, ``keep_firing_for``) at a 30 s
or 1 m evaluation interval, and eval times on and between the intervals. Our promtool-format
runner (alerts/evaluator/promtest.py, the real RuleEvaluator over the embedded engine) says which
alerts fire with which labels and ``{{ $value }}``; those become the file's expected alerts, and
``promtool test rules`` must pass it. 400 seeds were run once (2026-12-06): all agreed."""
from __future__ import annotations

import ast
import random
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from alerts.evaluator.promtest import run_test_file
from tests.realcomponents import require_binary

pytestmark = pytest.mark.real_component

SEEDS = range(40)
STEPS = 30
EXPRESSIONS = ['v{i="a"} > 0.5', "v > 0.5", "rate(c[2m]) > 0.05", 'absent(v{i="z"})', "max_over_time(v[3m]) < 0.3",
               "v unless w", "count(v > 0.2) > 1", "v > w", "changes(v[5m]) > 2", "sum by (i) (v) >= 0.7",
               "last_over_time(v[2m]) > 0.4", "v * on(i) group_left w > 0.1", "absent_over_time(w[2m])", "v == 1",
               "avg_over_time(v[90s]) > 0.5 and w < 0.5", "v > 0.5 or w > 0.8", "timestamp(v) > 0", "deriv(c[3m]) > 0"]
FOR = [None, "0s", "30s", "1m", "2m", "150s", "5m"]
KEEP_FIRING_FOR = [None, None, "1m", "3m", "45s"]


def gauge(rng: random.Random) -> str:
    def one() -> str:
        roll = rng.random()
        return "_" if roll < 0.1 else "stale" if roll < 0.15 else rng.choice(["0", "0.3", "0.6", "1", "0.9", "0.1"])
    return " ".join(one() for _ in range(STEPS))


def counter(rng: random.Random) -> str:
    values, total = [], 0
    for _ in range(STEPS):
        roll = rng.random()
        if roll < 0.08:
            values.append("_")
            continue
        total = 0 if roll < 0.12 else total + rng.choice([0, 1, 5, 10])
        values.append(str(total))
    return " ".join(values)


def rule(rng: random.Random, number: int) -> dict:
    drawn = {"alert": f"R{number}", "expr": rng.choice(EXPRESSIONS), "labels": {"sev": "x"},
             "annotations": {"v": "{{ $value }}"}}
    for key, choices in (("for", FOR), ("keep_firing_for", KEEP_FIRING_FOR)):
        value = rng.choice(choices)
        if value:
            drawn[key] = value
    return drawn


def unit_test(seed: int, directory: Path) -> dict:
    """Writes rules.yml and returns the unit test (expecting no alerts yet)."""
    rng = random.Random(seed)
    series = ([{"series": f'v{{i="{i}"}}', "values": gauge(rng)} for i in "abc"]
              + [{"series": f'w{{i="{i}"}}', "values": gauge(rng)} for i in "ab"]
              + [{"series": f'c{{i="{i}"}}', "values": counter(rng)} for i in "ab"])
    rules = [rule(rng, n) for n in range(4)]
    interval = rng.choice(["30s", "1m"])
    minutes = sorted({rng.randrange(0, STEPS) for _ in range(8)})
    cases = [{"eval_time": f"{m}m" if rng.random() < 0.7 else f"{m}m30s", "alertname": f"R{n}", "exp_alerts": []}
             for m in minutes for n in range(len(rules))]
    (directory / "rules.yml").write_text(yaml.safe_dump({"groups": [{"name": "g", "interval": interval,
                                                                      "rules": rules}]}))
    return {"rule_files": ["rules.yml"], "evaluation_interval": interval,
            "tests": [{"interval": "1m", "input_series": series, "alert_rule_test": cases}]}


def our_alerts(path: Path) -> dict[tuple[str, str], list[tuple[dict, dict]]]:
    """What our runner saw fire, per (alertname, eval_time), read from its report against the
    empty expectations."""
    fired: dict[tuple[str, str], list[tuple[dict, dict]]] = {}
    for failure in run_test_file(path).failures:
        case = re.search(r"alertname: (\S+), time: (\S+),", failure)
        assert case, failure  # anything but an alert report is a failure of ours
        fired[case.groups()] = [(ast.literal_eval(labels), ast.literal_eval(annotations)) for labels, annotations in
                                re.findall(r"\d+: Labels:(\{.*?\}) Annotations:(\{.*?\})", failure.split("got:")[1])]
    return fired


@pytest.mark.parametrize("seed", SEEDS)
def test_random_rules_fire_as_in_promtool(seed, tmp_path):
    promtool = require_binary("promtool")
    test = unit_test(seed, tmp_path)
    path = tmp_path / "test.yml"
    path.write_text(yaml.safe_dump(test))
    fired = our_alerts(path)
    for case in test["tests"][0]["alert_rule_test"]:
        case["exp_alerts"] = [{"exp_labels": {k: v for k, v in labels.items() if k != "alertname"},
                               "exp_annotations": annotations}
                              for labels, annotations in fired.get((case["alertname"], case["eval_time"]), [])]
    path.write_text(yaml.safe_dump(test))
    result = subprocess.run([promtool, "test", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
