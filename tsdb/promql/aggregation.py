"""Aggregation operators (sum, avg, min, max, count, group, stddev, stdvar, topk, bottomk,
quantile, count_values) with by/without grouping, evaluated per group over all steps at once."""
from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING

import numpy as np
import promql_parser as pp

from tsdb.labelset import MEMO
from tsdb.promql.limits import QueryGuard
from tsdb.promql.values import Grid, PromQLError, Vector, VSeries, bad_data, labels_key

if TYPE_CHECKING:
    from tsdb.promql.evaluator import Evaluator

_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")  # fullmatch: "$" would let a final newline in


def format_value(value: float) -> str:
    """Go's strconv.FormatFloat(v, 'f', -1, 64), the spelling Prometheus uses in labels and JSON."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    text = repr(value)  # shortest round-trip digits, like Go; only the spelling may differ
    if "e" in text:
        return np.format_float_positional(value, trim="-", unique=True)
    return text[:-2] if text.endswith(".0") else text


def quantile(q: float, values: np.ndarray) -> float:
    """Prometheus's quantile(): linear interpolation between closest ranks; NaN sorts first."""
    if len(values) == 0 or math.isnan(q):
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    nans = values[np.isnan(values)]
    ordered = np.concatenate([nans, np.sort(values[~np.isnan(values)])])
    rank = q * (len(ordered) - 1)
    lower = max(0, math.floor(rank))
    upper = min(len(ordered) - 1, lower + 1)
    weight = rank - math.floor(rank)
    return float(ordered[lower] * (1 - weight) + ordered[upper] * weight)


def _group_labels(labels: dict[str, str], names: list[str], without: bool) -> dict[str, str]:
    if without:
        return {k: v for k, v in labels.items() if k not in names and k != "__name__"}
    return {k: labels[k] for k in names if k in labels}


def evaluate(ev: "Evaluator", expr: pp.AggregateExpr, grid: Grid) -> Vector:
    op = str(expr.op)
    vector = ev.eval(expr.expr, grid)
    if not isinstance(vector, Vector):
        raise bad_data(f"expected type instant vector in aggregation expression, got {type(vector).__name__.lower()}")
    modifier = expr.modifier
    without = bool(modifier and modifier.type == pp.AggModifierType.Without)
    names = list(modifier.labels) if modifier else []
    labels, values, present, _ = vector.columns(grid.n)
    group_of, group_labels = MEMO.get(labels, ("grouping", tuple(names), without),
                                      lambda: _grouping(labels, names, without))
    if op in _VECTORISED:
        return _vectorised(op, group_of, group_labels, values, present, grid.n)
    groups: dict[int, tuple[dict[str, str], list[VSeries]]] = {}
    for s, group in zip(vector.series, group_of.tolist()):
        groups.setdefault(group, (group_labels[group], []))[1].append(s)
    if op in ("topk", "bottomk"):
        return _top(ev.scalar_arg(expr.param, grid), groups, op == "topk", ev.guard)
    if op == "quantile":
        return _quantile(ev.scalar_arg(expr.param, grid), groups, ev.guard)
    if op == "count_values":
        return _count_values(ev.eval(expr.param, grid), groups, grid.n, ev.guard)
    out = []
    with np.errstate(all="ignore"):
        for labels, members in groups.values():
            values = np.array([m.values for m in members])
            present = np.array([m.present for m in members])
            count = present.sum(axis=0)
            out.append(VSeries(labels, _simple(op, values, present, count), count > 0))
    return Vector(out)


_VECTORISED = frozenset({"sum", "avg", "count", "group", "min", "max"})


def _grouping(labels: list[dict[str, str]], names: list[str], without: bool) -> tuple[np.ndarray, list[dict]]:
    """Each row's group index (groups numbered in order of first appearance) and each group's
    output labels, built once per group."""
    index: dict[tuple, int] = {}
    group_of = []
    group_labels: list[dict[str, str]] = []
    for item in labels:
        if without:
            grouped = _group_labels(item, names, True)
            key = labels_key(grouped)
        else:
            # by(): the listed labels' values are the key
            grouped, key = None, tuple(map(item.get, names))
        group = index.get(key)
        if group is None:
            group = index[key] = len(group_labels)
            group_labels.append(grouped if without else _group_labels(item, names, False))
        group_of.append(group)
    return np.array(group_of, dtype=np.intp), group_labels


def _vectorised(op: str, group_of: np.ndarray, group_labels: list[dict], values: np.ndarray,
                present: np.ndarray, steps: int) -> Vector:
    """sum/avg/count/group/min/max of every group at once: one pass over the series x step
    matrix with each series' group index, instead of building arrays per group (a fleet-wide
    ``avg by (instance)`` has one group per node)."""
    groups = group_labels
    count = np.zeros((len(groups), steps))
    np.add.at(count, group_of, present)
    with np.errstate(all="ignore"):
        if op in ("sum", "avg"):
            result = np.zeros((len(groups), steps))
            np.add.at(result, group_of, np.where(present, values, 0.0))
            if op == "avg":
                result = result / count
        elif op in ("min", "max"):
            result = np.full((len(groups), steps), np.nan)
            (np.fmin if op == "min" else np.fmax).at(result, group_of, np.where(present, values, np.nan))
        elif op == "count":
            result = count
        else:
            result = np.ones((len(groups), steps))
    return Vector.of_columns(group_labels, result, count > 0)


def _simple(op: str, values: np.ndarray, present: np.ndarray, count: np.ndarray) -> np.ndarray:
    """stddev/stdvar of one group (the others go through ``_vectorised``); callers hold
    ``np.errstate(all="ignore")``."""
    if op in ("stddev", "stdvar"):
        mean = np.where(present, values, 0.0).sum(axis=0) / count
        variance = np.where(present, (values - mean) ** 2, 0.0).sum(axis=0) / count
        # Prometheus's running variance adds nothing for a group's first sample: one sample
        # is 0 even when it is NaN or infinite.
        variance = np.where(count == 1, 0.0, variance)
        return np.sqrt(variance) if op == "stddev" else variance
    raise PromQLError(f"unsupported aggregation {op}")


def _top(k_values: np.ndarray, groups: dict, largest: bool, guard: QueryGuard) -> Vector:
    out = []
    for _, members in groups.values():
        selected = [np.zeros(len(k_values), dtype=bool) for _ in members]
        for step, k_float in enumerate(k_values):
            guard.check()
            if not -2**63 <= k_float < 2**63:
                raise PromQLError(f"Scalar value {format_value(k_float)} overflows int64")
            k = int(k_float)
            if k < 1:
                continue
            candidates = [i for i, m in enumerate(members) if m.present[step]]
            # NaN is the least wanted value for both topk and bottomk, as in Prometheus's heaps.
            if largest:
                candidates.sort(key=lambda i: (not math.isnan(members[i].values[step]),
                                               _finite(members[i].values[step])), reverse=True)
            else:
                candidates.sort(key=lambda i: (math.isnan(members[i].values[step]), _finite(members[i].values[step])))
            for i in candidates[:k]:
                selected[i][step] = True
        out.extend(VSeries(m.labels, m.values, sel) for m, sel in zip(members, selected) if sel.any())
    return Vector(out)


def _finite(value: float) -> float:
    return -math.inf if math.isnan(value) else value


def _quantile(q_values: np.ndarray, groups: dict, guard: QueryGuard) -> Vector:
    out = []
    for labels, members in groups.values():
        guard.check()
        values = np.array([m.values for m in members])
        present = np.array([m.present for m in members])
        result = np.full(len(q_values), np.nan)
        for step in range(len(q_values)):
            column = values[present[:, step], step]
            if len(column):
                result[step] = quantile(float(q_values[step]), column)
        out.append(VSeries(labels, result, present.any(axis=0)))
    return Vector(out)


def _count_values(param: object, groups: dict, n: int, guard: QueryGuard) -> Vector:
    label = getattr(param, "value", None)
    if not isinstance(label, str):
        raise bad_data("count_values needs a string parameter")
    if not _LABEL_NAME.fullmatch(label):
        raise PromQLError(f"invalid label name {label!r}")
    counts: dict[tuple, tuple[dict[str, str], np.ndarray]] = {}
    for labels, members in groups.values():
        for m in members:
            guard.check()
            for step in np.flatnonzero(m.present):
                text = format_value(float(m.values[step]))
                out_labels = {**labels, label: text}
                key = tuple(sorted(out_labels.items()))
                if key not in counts:
                    guard.charge(n)  # a new output series: up to one per input sample
                    counts[key] = (out_labels, np.zeros(n))
                counts[key][1][step] += 1
    return Vector([VSeries(labels, c, c > 0) for labels, c in counts.values()])
