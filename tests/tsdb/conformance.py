"""A real Prometheus 2.42 and ``clusterwatch serve`` on the same data set (tests/tsdb/dataset.py),
and the comparison of their answers the way the conformance tests judge them: same result type,
same series (label sets), same timestamps, values equal within 1e-9 relative (NaN == NaN)."""
from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Callable

import promql_parser as pp

from tests.realcomponents import free_port, require_binary, wait_http
from tests.tsdb import dataset
from tsdb.client import HTTPQueryClient, QueryClient, QueryError
from tsdb.results import QueryResult

INSTANTS = (dataset.START + 2700.0, dataset.START + 5432.1)
RANGE = (dataset.START + 3000.0, dataset.START + 4800.0, 300.0)

REL_TOL = 1e-9
# Below this, two values are "both zero" (e.g. 1e-17 from a regression of a constant): a
# relative tolerance alone would call 0 and 1e-17 different.
ABS_TOL = 1e-12


CORPUS = Path(__file__).with_name("conformance_queries.txt")


def corpus() -> list[str]:
    """The conformance corpus's queries, one per line, comments left out."""
    return [line.strip() for line in CORPUS.read_text().splitlines() if line.strip() and not line.startswith("#")]


def values_equal(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b or abs(a - b) <= max(REL_TOL * max(abs(a), abs(b)), ABS_TOL)


def _canonical(result: QueryResult) -> dict:
    if result.result_type in ("scalar", "string"):
        return {(): [(result.timestamp, result.scalar if result.result_type == "scalar" else result.string)]}
    out: dict = {}
    for s in result.series:
        out.setdefault(tuple(sorted(s.labels.items())), []).extend(zip(s.timestamps, s.values))
    return out


def difference(ours: QueryResult, theirs: QueryResult, ordered: bool = False) -> str | None:
    """None when equal, else a short description of the first difference."""
    if ours.result_type != theirs.result_type:
        return f"result type {ours.result_type} != {theirs.result_type}"
    a, b = _canonical(ours), _canonical(theirs)
    if set(a) != set(b):
        only_ours = [dict(k) for k in set(a) - set(b)][:2]
        only_theirs = [dict(k) for k in set(b) - set(a)][:2]
        return f"series differ: {len(a)} vs {len(b)}; only ours {only_ours}; only Prometheus {only_theirs}"
    for key in a:
        if len(a[key]) != len(b[key]):
            return f"{dict(key)}: {len(a[key])} points vs {len(b[key])}"
        for (ta, va), (tb, vb) in zip(a[key], b[key]):
            if ta != tb:
                return f"{dict(key)}: timestamp {ta} vs {tb}"
            same = va == vb if isinstance(va, str) else values_equal(va, vb)
            if not same:
                return f"{dict(key)} at {ta}: {va!r} vs {vb!r}"
    if ours.result_type == "vector" and ordered:
        # Ties may come in any order (Go's sort is not stable): compare the sequence of values.
        if not all(values_equal(x.value, y.value) for x, y in zip(ours.series, theirs.series)):
            return f"order differs: {[x.value for x in ours.series][:6]} vs {[y.value for y in theirs.series][:6]}"
    return None


def compare_query(ours: QueryClient, theirs: QueryClient, run, ordered: bool = False) -> str | None:
    """Run ``run(client)`` on both; None when they agree (both failing with one errorType too)."""
    results = []
    for client in (ours, theirs):
        try:
            results.append(run(client))
        except QueryError as exc:
            results.append(exc)
    a, b = results
    if isinstance(a, QueryError) or isinstance(b, QueryError):
        if isinstance(a, QueryError) and isinstance(b, QueryError):
            return None if a.error_type == b.error_type else f"error types {a.error_type} vs {b.error_type}"
        return f"ours: {a if isinstance(a, QueryError) else 'ok'}; Prometheus: {b if isinstance(b, QueryError) else 'ok'}"
    return difference(a, b, ordered)


def start_pair(tmp_path: Path, process_factory) -> tuple[HTTPQueryClient, HTTPQueryClient]:
    """(ours, Prometheus): the data set backfilled into Prometheus with ``promtool tsdb
    create-blocks-from openmetrics`` and loaded into ``serve --import-openmetrics``."""
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
    return HTTPQueryClient(f"http://127.0.0.1:{our_port}"), HTTPQueryClient(f"http://127.0.0.1:{prom_port}")


def returns_matrix(query: str) -> bool:
    """A query whose outermost expression is a range selector or subquery cannot run as a range query."""
    try:
        expr = pp.parse(query)
    except ValueError:
        return False
    while isinstance(expr, pp.ParenExpr):
        expr = expr.expr
    return isinstance(expr, (pp.MatrixSelector, pp.SubqueryExpr, pp.StringLiteral))


def compare_everywhere(ours: QueryClient, theirs: QueryClient, query: str) -> list[str]:
    """The query at every instant of INSTANTS and, when it can, as the RANGE query: each
    difference as "where: what"."""
    ordered = query.startswith("sort")
    checks: list[tuple[str, Callable]] = [(f"instant@{t}", lambda c, t=t: c.instant(query, t)) for t in INSTANTS]
    if not returns_matrix(query):
        checks.append(("range", lambda c: c.range(query, *RANGE)))
    return [f"{name}: {diff}" for name, run in checks
            if (diff := compare_query(ours, theirs, run, ordered)) is not None]
