"""``/api/v1/rules`` and ``/api/v1/alerts`` against the real Prometheus 2.42: the same rule file is
loaded by Prometheus and by ``clusterwatch serve``, both evaluate it, and the two answers must have
the same shape key for key and in order, and the same values but for the times each measured
(when it evaluated, how long it took). The rules use ``vector()`` so that neither needs data."""
from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.realcomponents import free_port, require_binary, until, wait_http

pytestmark = pytest.mark.real_component

RULES = {"groups": [
    {"name": "cluster", "interval": "1s", "rules": [
        {"record": "job:up:sum", "expr": "sum  by (job) (vector(1))", "labels": {"tier": "1"}},
        {"alert": "AlwaysOn", "expr": "vector(1)   >  0", "labels": {"severity": "page"},
         "annotations": {"summary": "value {{ $value }}", "runbook": "docs/alerts.md#alwayson"}},
        {"alert": "Pending", "expr": 'label_replace(vector(2.5), "gpu", "3", "", "")', "for": "1h",
         "keep_firing_for": "90s", "annotations": {"description": "GPU {{ $labels.gpu }}"}},
        {"alert": "Never", "expr": "vector(1) < 0", "for": "5m"},
        # Fails each time (many-to-many): health "err" and the engine's error text.
        {"record": "broken", "expr": 'vector(1) + on() (label_replace(vector(1), "b", "1", "", "") or '
                                     'label_replace(vector(2), "b", "2", "", ""))'},
    ]},
    {"name": "second", "interval": "2s", "limit": 3, "rules": [
        {"alert": "Big", "expr": "vector(1234567)", "labels": {"team": "ml"}},
        # Four alerts over the group's limit of three: the rule fails, as Prometheus words it.
        {"alert": "Many", "expr": " or ".join(f'label_replace(vector({i}), "n", "{i}", "", "")' for i in range(4))},
    ]},
]}
TIMES = ("lastEvaluation", "activeAt", "evaluationTime")


def _get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def _shape(value, key: str = ""):
    """The answer with measured times replaced by what they are, and object keys kept in order."""
    if isinstance(value, dict):
        return [(k, _shape(v, k)) for k, v in value.items()]
    if isinstance(value, list):
        return [_shape(v) for v in value]
    if key in TIMES:
        return f"<{type(value).__name__}{' zero' if value == '0001-01-01T00:00:00Z' else ''}>"
    return value


def _evaluated(base: str) -> bool:
    groups = _get(f"{base}/api/v1/rules")[1]["data"]["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    return all(rule["health"] != "unknown" for rule in rules) and \
        any(alert["state"] == "firing" for rule in rules if rule["type"] == "alerting" for alert in rule["alerts"])


def test_rules_and_alerts_answer_as_prometheus(tmp_path: Path, process_factory) -> None:
    prometheus = require_binary("prometheus")
    rules = tmp_path / "rules.yml"
    rules.write_text(yaml.safe_dump(RULES))
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump({"global": {"evaluation_interval": "1s"}, "rule_files": [str(rules)]}))
    prom_port, our_port = free_port(), free_port()
    prom = process_factory([prometheus, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
                            f"--web.listen-address=127.0.0.1:{prom_port}"])
    ours = process_factory([sys.executable, "-m", "clusterwatch", "serve", "--listen", f"127.0.0.1:{our_port}",
                            "--rules", str(rules)], name="clusterwatch-serve")
    theirs_base, ours_base = f"http://127.0.0.1:{prom_port}", f"http://127.0.0.1:{our_port}"
    wait_http(f"{theirs_base}/-/ready", proc=prom)
    wait_http(f"{ours_base}/-/ready", timeout=60, proc=ours)
    for base in (theirs_base, ours_base):
        until(lambda: _evaluated(base), 60, f"every rule evaluated at {base}")

    for path in ("/api/v1/rules", "/api/v1/alerts", "/api/v1/rules?type=alert", "/api/v1/rules?type=RECORD",
                 "/api/v1/rules?type=bogus"):
        theirs, mine = _get(theirs_base + path), _get(ours_base + path)
        assert mine[0] == theirs[0], path
        if path.endswith("/alerts"):  # Prometheus lists them in its map's order
            for answer in (theirs, mine):
                answer[1]["data"]["alerts"].sort(key=lambda a: a["labels"]["alertname"])
        assert _shape(mine[1]) == _shape(theirs[1]), f"{path}\nPrometheus: {theirs[1]}\nours: {mine[1]}"
