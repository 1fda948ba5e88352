"""Small helpers to turn query results into per-GPU and per-node lookups, and to ask several
scalar aggregations in one round trip (one query, not ten, whichever engine answers)."""
from __future__ import annotations

import math
from typing import Mapping

from tsdb.client import QueryClient, QueryResult

GpuKey = tuple[str, int]


def gpu_key(labels: Mapping[str, str]) -> GpuKey | None:
    try:
        return labels["instance"], int(labels["gpu"])
    except (KeyError, ValueError):
        return None


def by_gpu(result: QueryResult) -> dict[GpuKey, float]:
    out: dict[GpuKey, float] = {}
    for series in result.series:
        key = gpu_key(series.labels)
        if key is not None and series.values:
            out[key] = series.value
    return out


def by_node_gpu(result: QueryResult) -> dict[str, dict[int, float]]:
    """node -> GPU index -> value: the heatmap's rows, built in one pass over a per-GPU answer
    (131,072 series at 16,384 nodes) with no key tuple per cell."""
    out: dict[str, dict[int, float]] = {}
    for series in result.series:
        labels = series.labels
        try:
            node, gpu = labels["instance"], int(labels["gpu"])
        except (KeyError, ValueError):
            continue
        if series.values:
            row = out.get(node)
            if row is None:
                row = out[node] = {}
            row[gpu] = series.values[-1]
    return out


def by_label(result: QueryResult, label: str) -> dict[str, float]:
    return {s.labels.get(label, ""): s.value for s in result.series if s.values}


def split_by_name(result: QueryResult) -> dict[str, QueryResult]:
    """One ``{__name__=~"a|b"}`` answer split into one result per metric name."""
    parts: dict[str, QueryResult] = {}
    for series in result.series:
        parts.setdefault(series.labels.get("__name__", ""), QueryResult(result.result_type)).series.append(series)
    return parts


def scalars(client: QueryClient, queries: Mapping[str, str], at: float) -> dict[str, float | None]:
    """Each aggregation tagged with ``label_replace`` and joined with ``or``: one query, and an
    empty aggregation (no series) reads as None instead of failing the others."""
    tagged = " or ".join(f'label_replace({expr}, "__kpi", "{name}", "", "")' for name, expr in queries.items())
    found = by_label(client.instant(tagged, at), "__kpi")
    return {name: finite(found.get(name)) for name in queries}


def finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None
