"""Rule queries as Prometheus 2.42 prints them (tsdb/promql/printer.py), compared with the real
Prometheus: every query of the conformance corpus, every expression of the shipped rule pack and
its bridges, hundreds of random draws and the printing cases below become recording rules that
Prometheus loads, and each rule's ``query`` in its ``/api/v1/rules`` must be ours byte for byte."""
from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import promql_parser as pp
import pytest
import yaml

from alerts.evaluator.component import SHIPPED_RULES
from tests.realcomponents import free_port, require_binary, wait_http
from tests.tsdb.conformance import corpus
from tests.tsdb.querydraw import Draw
from tsdb.promql.printer import query_text

RANDOM_SEEDS = range(400)  # 5,000 were run once
# Queries Prometheus prints differently, with why (and the printer's docstring says so).
KNOWN_DIFFERENCES = {"+gpu_utilization_ratio": "promql-parser folds a unary + away; Prometheus keeps it"}
# What printing must get right beyond the corpus: spacing, grouping, units, number forms, quoting.
PRINTING_CASES = [
    "sum  by (job) (up)", "sum(up) by (job)", "sum by () (up)", "sum without () (up)", "topk by (a, b) (3, up)",
    'count_values without (x) ("v", up)', "vector(1)   >  0", "1 / on() group_left foo", "time() + on() up",
    "a + ignoring() group_left(z) b", "a * on(x) group_right(y, z) b", "a and on(x) b", "a or ignoring(y) b",
    "a unless on() b", "a > bool on(x) b", "1 > bool 2", "(1) + (2)", "-(1)", "- -up", "-up offset 5m",
    "x offset 90m", "x offset -90m", "x offset 7d", "x offset 14d", "x offset 365d", "x offset 1500ms",
    "x[1d1h] offset 1w @ 1700000000.123", "x @ start() offset 1m", "x offset 1m @ end()", "x[5m:]", "x[5m:30s]",
    "rate(x[90s:15s] offset 1h)", "max_over_time((a + b)[1h:] @ 100)", "1000000 * x", "x / 0.0001", "x * 1e-5",
    "x + 123456", "x + 1234567", "x + 0x1F", "x + Inf", "x - -Inf", "x + NaN", "x * 1.5e300", "x * 0.1",
    'label_replace(up, "a", "$1", "b", "(.*)")', 'label_join(x, "d", "\\t\\n\\"\\\\", "a")',
    'x{a="\\u00e9\\x01\\u2028", b!~"q|\\\\d+"}', 'x{b="2", a="1", __name__="x"}', '{__name__="x", a="1"}',
    '{__name__=~"x|y"}', 'x{a=~""}', "histogram_quantile(0.9, sum by (le) (rate(x_bucket[5m])))",
    "absent(nonexistent{job=\"a\"})", "scalar(x) * on() y", "pi() + x", "(x)", "((x))", "x[1y]",
]


def _shipped_expressions() -> list[str]:
    found = []
    for path in sorted(SHIPPED_RULES.rglob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            found.extend(rule["expr"] for rule in group["rules"])
    return found


def _queries() -> list[str]:
    drawn = [Draw(seed).vector() for seed in RANDOM_SEEDS]
    unique = dict.fromkeys([*PRINTING_CASES, *_shipped_expressions(), *corpus(), *drawn])
    parsed = []
    for query in unique:
        try:
            pp.parse(query)
        except Exception:  # noqa: BLE001 - the corpus's refusals are tested elsewhere
            continue
        parsed.append(query)
    return parsed


def test_printing_cases_read_as_prometheus_printed_them() -> None:
    """Seen from Prometheus 2.42 (the differential test below checks all of them there)."""
    assert query_text("sum  by (job) (up)") == "sum by (job) (up)"
    assert query_text("sum(up) by (job)") == "sum by (job) (up)"
    assert query_text("1 / on() group_left foo") == "1 / foo"
    assert query_text("x[1d1h] offset 90m") == "x[1d1h] offset 1h30m"
    assert query_text('x{b="2", a="1"}') == 'x{a="1",b="2"}'
    assert query_text("1000000 * x") == "1e+06 * x"


@pytest.mark.real_component
def test_queries_print_as_prometheus_prints_them(tmp_path: Path, process_factory) -> None:
    prometheus = require_binary("prometheus")
    queries = _queries()
    assert len(queries) > 900
    rules = tmp_path / "rules.yml"
    rules.write_text(yaml.safe_dump({"groups": [{"name": "printed", "interval": "1h", "rules": [
        {"record": f"printed_{i}", "expr": query} for i, query in enumerate(queries)]}]}, allow_unicode=True))
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump({"global": {"evaluation_interval": "1h"}, "rule_files": [str(rules)]}))
    port = free_port()
    proc = process_factory([prometheus, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
                            f"--web.listen-address=127.0.0.1:{port}"])
    wait_http(f"http://127.0.0.1:{port}/-/ready", proc=proc)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/rules?type=record", timeout=30) as response:
        loaded = json.load(response)["data"]["groups"]
    assert loaded, f"Prometheus loaded no rules:\n{proc.log_tail()}"
    printed = {rule["name"]: rule["query"] for rule in loaded[0]["rules"]}
    differing = [f"{query!r}\n    Prometheus: {printed[f'printed_{i}']!r}\n    ours:       {query_text(query)!r}"
                 for i, query in enumerate(queries)
                 if (query_text(query) != printed[f"printed_{i}"]) != (query in KNOWN_DIFFERENCES)]
    assert not differing, f"{len(differing)} of {len(queries)} queries print differently (or a known difference agrees now):\n" + "\n".join(differing)
