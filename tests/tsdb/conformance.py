"""Comparison of two query results the way the conformance test judges them: same result type,
same series (label sets), same timestamps, values equal within 1e-9 relative (NaN == NaN)."""
from __future__ import annotations

import math

from tsdb.client import QueryClient, QueryError
from tsdb.results import QueryResult

REL_TOL = 1e-9
# Below this, two values are "both zero" (e.g. 1e-17 from a regression of a constant): a
# relative tolerance alone would call 0 and 1e-17 different.
ABS_TOL = 1e-12


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
