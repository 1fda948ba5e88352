"""PromQL conformance against a real Prometheus 2.42 over both HTTP APIs.

One deterministic OpenMetrics file is backfilled into Prometheus with ``promtool tsdb
create-blocks-from openmetrics`` and loaded into ``clusterwatch serve --import-openmetrics``;
every query of the corpus runs at fixed instants, and every vector/scalar one also as a range
query, on both. Every query must agree except those listed in KNOWN_DIFFERENCES, each with its
reason (and in docs/promql.md); a listed query that agrees again fails too, so the list stays true.
"""
from __future__ import annotations

import sys
from pathlib import Path

import promql_parser as pp
import pytest

from tests.realcomponents import free_port, require_binary, wait_http
from tests.tsdb import dataset
from tests.tsdb.conformance import compare_query
from tsdb.client import HTTPQueryClient

CORPUS = Path(__file__).with_name("conformance_queries.txt")
# Corpus queries whose answer may differ from Prometheus 2.42: query -> why (empty: every query agrees).
KNOWN_DIFFERENCES: dict[str, str] = {}
INSTANTS = (dataset.START + 2700.0, dataset.START + 5432.1)
RANGE = (dataset.START + 3000.0, dataset.START + 4800.0, 300.0)


def corpus() -> list[str]:
    return [line.strip() for line in CORPUS.read_text().splitlines() if line.strip() and not line.startswith("#")]


def test_corpus_is_large_enough() -> None:
    queries = corpus()
    assert len(queries) >= 300
    assert len(set(queries)) == len(queries), "duplicate queries in the corpus"
    assert set(KNOWN_DIFFERENCES) <= set(queries), "known differences that are not in the corpus"
    assert all(reason.strip() for reason in KNOWN_DIFFERENCES.values()), "a known difference without its reason"


def _returns_matrix(query: str) -> bool:
    # A query whose outermost expression is a range selector or subquery cannot run as a range query.
    try:
        expr = pp.parse(query)
    except ValueError:
        return False
    while isinstance(expr, pp.ParenExpr):
        expr = expr.expr
    return isinstance(expr, (pp.MatrixSelector, pp.SubqueryExpr, pp.StringLiteral))


@pytest.mark.real_component
def test_conformance_with_prometheus(tmp_path: Path, process_factory) -> None:
    promtool = require_binary("promtool")
    prometheus = require_binary("prometheus")
    data = dataset.write(tmp_path / "data.om")
    blocks = tmp_path / "prometheus-data"
    created = process_factory([promtool, "tsdb", "create-blocks-from", "openmetrics", str(data), str(blocks)],
                              name="promtool")
    assert created.popen.wait(60) == 0, created.log_tail()
    config = tmp_path / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 1h\n")
    prom_port, our_port = free_port(), free_port()
    prom = process_factory([prometheus, f"--config.file={config}", f"--storage.tsdb.path={blocks}",
                            f"--web.listen-address=127.0.0.1:{prom_port}", "--storage.tsdb.retention.time=100y"])
    # Both keep the data set whatever today's date: serve applies its retention from now, at
    # import as in housekeeping, so with the default 6h it would keep nothing of a 2023 data set.
    ours = process_factory([sys.executable, "-m", "clusterwatch", "serve", "--listen", f"127.0.0.1:{our_port}",
                            "--retention", "100y", "--import-openmetrics", str(data)], name="clusterwatch-serve")
    wait_http(f"http://127.0.0.1:{prom_port}/-/ready", proc=prom)
    wait_http(f"http://127.0.0.1:{our_port}/-/ready", timeout=60, proc=ours)
    our_client = HTTPQueryClient(f"http://127.0.0.1:{our_port}")
    prom_client = HTTPQueryClient(f"http://127.0.0.1:{prom_port}")

    failures: dict[str, str] = {}
    total = 0
    for query in corpus():
        ordered = query.startswith("sort")
        checks = [(f"instant@{t}", lambda c, t=t: c.instant(query, t)) for t in INSTANTS]
        if not _returns_matrix(query):
            checks.append(("range", lambda c: c.range(query, *RANGE)))
        problems = [f"{name}: {diff}" for name, run in checks
                    if (diff := compare_query(our_client, prom_client, run, ordered)) is not None]
        total += 1
        if problems:
            failures[query] = f"{query}\n    " + "\n    ".join(problems)
    passed = total - len(failures)
    print(f"\nPromQL conformance: {passed}/{total} queries agree ({passed / total:.1%}), "
          f"{len(KNOWN_DIFFERENCES)} known differences")
    for query, failure in failures.items():
        print(f"{'KNOWN' if query in KNOWN_DIFFERENCES else 'FAIL'} {failure}")
    unexpected = [failure for query, failure in failures.items() if query not in KNOWN_DIFFERENCES]
    assert not unexpected, (f"{len(unexpected)} queries differ from Prometheus (fix them, or list them with the "
                            "reason in KNOWN_DIFFERENCES and docs/promql.md):\n" + "\n".join(unexpected))
    agree_now = sorted(set(KNOWN_DIFFERENCES) - set(failures))
    assert not agree_now, f"listed in KNOWN_DIFFERENCES but agreeing now (remove them): {agree_now}"
