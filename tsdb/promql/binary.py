"""Binary operators: arithmetic, comparison (filtering or ``bool``) and set operators, with
vector matching (on/ignoring, group_left/group_right) and Prometheus's matching errors."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import promql_parser as pp

from tsdb.promql.values import (
    Grid, PromQLError, Scalar, Value, Vector, VSeries, bad_data, drop_name, format_labels, labels_key,
    merge_same_labels, merge_same_rows, rows_kept,
)

if TYPE_CHECKING:
    from tsdb.promql.evaluator import Evaluator

ARITHMETIC = {"+", "-", "*", "/", "%", "^", "atan2"}
# Prometheus 2.42 keeps the metric name for atan2 (its shouldDropMetricName omits it).
_DROPS_NAME = ARITHMETIC - {"atan2"}
COMPARISON = {"==", "!=", ">", "<", ">=", "<="}
SET = {"and", "or", "unless"}
_CARD = pp.VectorMatchCardinality


def arithmetic(op: str, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        if op == "+":
            return left + right
        if op == "-":
            return left - right
        if op == "*":
            return left * right
        if op == "/":
            return np.true_divide(left, right)
        if op == "%":
            return np.fmod(left, right)
        if op == "^":
            return np.power(left, right)
        if op == "atan2":
            return np.arctan2(left, right)
    raise PromQLError(f"unknown operator {op}")


def compare(op: str, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        return {"==": np.equal, "!=": np.not_equal, ">": np.greater, "<": np.less,
                ">=": np.greater_equal, "<=": np.less_equal}[op](left, right)


def evaluate(ev: "Evaluator", expr: pp.BinaryExpr, grid: Grid) -> Value:
    op = str(expr.op)
    lhs = ev.eval(expr.lhs, grid)
    rhs = ev.eval(expr.rhs, grid)
    modifier = expr.modifier
    return_bool = bool(modifier and modifier.return_bool)
    if isinstance(lhs, Scalar) and isinstance(rhs, Scalar):
        if op in COMPARISON:
            return Scalar(compare(op, lhs.values, rhs.values).astype(np.float64))
        return Scalar(arithmetic(op, lhs.values, rhs.values))
    if isinstance(lhs, Vector) and isinstance(rhs, Scalar):
        return _vector_scalar(op, lhs, rhs.values, False, return_bool, grid.n)
    if isinstance(lhs, Scalar) and isinstance(rhs, Vector):
        return _vector_scalar(op, rhs, lhs.values, True, return_bool, grid.n)
    if isinstance(lhs, Vector) and isinstance(rhs, Vector):
        matching = modifier.matching if modifier else None
        on = bool(matching and matching.type == pp.LabelModifierType.Include)
        names = sorted(matching.labels) if matching else []
        if op in SET:
            return _set_operation(op, lhs, rhs, on, names)
        card = modifier.card if modifier else _CARD.OneToOne
        include = list(modifier.group_labels or []) if modifier else []
        return _vector_vector(op, lhs, rhs, card, on, names, include, return_bool)
    raise bad_data("binary expression must contain only scalar and instant vector types")


def _vector_scalar(op: str, vector: Vector, scalar: np.ndarray, scalar_left: bool, return_bool: bool,
                   steps: int) -> Vector:
    """One numpy operation over the whole (series x steps) matrix; the scalar broadcasts per step."""
    labels, values, present, times = vector.columns(steps)
    left, right = (scalar, values) if scalar_left else (values, scalar)
    if op in ARITHMETIC:
        if op in _DROPS_NAME:
            labels = [drop_name(item) for item in labels]
        result = rows_kept(labels, arithmetic(op, left, right), present, None, present.any(axis=1))
        return merge_same_rows(result, steps) if op in _DROPS_NAME else result
    keep = compare(op, left, right)
    if return_bool:
        result = rows_kept([drop_name(item) for item in labels], keep.astype(np.float64), present, None,
                           present.any(axis=1))
        return merge_same_rows(result, steps)
    # A comparison keeps the vector's own value even when the scalar is on the left.
    present = present & keep
    return rows_kept(labels, values, present, times, present.any(axis=1))


def signature(labels: dict[str, str], on: bool, names: list[str]) -> tuple:
    if on:
        return tuple((n, labels[n]) for n in names if n in labels)
    return tuple(sorted((k, v) for k, v in labels.items() if k != "__name__" and k not in names))


def _presence_by_signature(vector: Vector, on: bool, names: list[str], n: int) -> dict[tuple, np.ndarray]:
    presence: dict[tuple, np.ndarray] = {}
    for s in vector.series:
        sig = signature(s.labels, on, names)
        presence[sig] = presence.get(sig, np.zeros(n, dtype=bool)) | s.present
    return presence


def _set_operation(op: str, lhs: Vector, rhs: Vector, on: bool, names: list[str]) -> Vector:
    n = len(lhs.series[0].present) if lhs.series else (len(rhs.series[0].present) if rhs.series else 0)
    if op == "or":
        left = _presence_by_signature(lhs, on, names, n)
        out = list(lhs.series)
        for s in rhs.series:
            mask = s.present & ~left.get(signature(s.labels, on, names), np.zeros(n, dtype=bool))
            if mask.any():
                out.append(VSeries(s.labels, s.values, mask, s.sample_times))
        return Vector(out)
    right = _presence_by_signature(rhs, on, names, n)
    out = []
    for s in lhs.series:
        other = right.get(signature(s.labels, on, names), np.zeros(n, dtype=bool))
        mask = s.present & (other if op == "and" else ~other)
        if mask.any():
            out.append(VSeries(s.labels, s.values, mask, s.sample_times))
    return Vector(out)


def _vector_vector(op: str, lhs: Vector, rhs: Vector, card: "pp.VectorMatchCardinality", on: bool,
                   names: list[str], include: list[str], return_bool: bool) -> Vector:
    swapped = card == _CARD.OneToMany
    many, one = (rhs, lhs) if swapped else (lhs, rhs)
    one_side = "left" if swapped else "right"
    groups: dict[tuple, list[VSeries]] = {}
    for s in one.series:
        groups.setdefault(signature(s.labels, on, names), []).append(s)
    for sig, members in groups.items():
        if len(members) > 1:
            _check_unique_one_side(members, one_side, sig)
    results: list[tuple[tuple, VSeries]] = []
    for ms in many.series:
        sig = signature(ms.labels, on, names)
        for os in groups.get(sig, ()):
            both = ms.present & os.present
            if not both.any():
                continue
            left, right = (os.values, ms.values) if swapped else (ms.values, os.values)
            if op in ARITHMETIC:
                values, mask = arithmetic(op, left, right), both
            else:
                keep = compare(op, left, right)
                values, mask = (keep.astype(np.float64), both) if return_bool else (left, both & keep)
            if mask.any():
                labels = _result_labels(ms.labels, os.labels, op, card, on, names, include, return_bool)
                results.append((sig, VSeries(labels, values, mask)))
    _check_unique_matches(results, card)
    return Vector(merge_same_labels([s for _, s in results]))


def _check_unique_one_side(members: list[VSeries], side: str, sig: tuple) -> None:
    counts = np.sum([m.present for m in members], axis=0)
    if (counts > 1).any():
        step = int(np.argmax(counts > 1))
        a, b = [m for m in members if m.present[step]][:2]
        raise PromQLError(
            f"found duplicate series for the match group {format_labels(dict(sig))} on the {side} hand-side of "
            f"the operation: [{format_labels(a.labels)}, {format_labels(b.labels)}];many-to-many matching not "
            f"allowed: matching labels must be unique on one side")


def _check_unique_matches(results: list[tuple[tuple, VSeries]], card: "pp.VectorMatchCardinality") -> None:
    one_to_one = card == _CARD.OneToOne
    groups: dict[tuple, list[VSeries]] = {}
    for sig, s in results:
        key = sig if one_to_one else (sig, tuple(sorted(s.labels.items())))
        groups.setdefault(key, []).append(s)
    for members in groups.values():
        if len(members) > 1 and (np.sum([m.present for m in members], axis=0) > 1).any():
            if one_to_one:
                raise PromQLError("multiple matches for labels: many-to-one matching must be explicit "
                                  "(group_left/group_right)")
            raise PromQLError("multiple matches for matching labels grouping labels must ensure unique matches")


def _result_labels(many: dict[str, str], one: dict[str, str], op: str, card: "pp.VectorMatchCardinality",
                   on: bool, names: list[str], include: list[str], return_bool: bool) -> dict[str, str]:
    labels = dict(many)
    if op in _DROPS_NAME or return_bool:
        labels.pop("__name__", None)
    if card == _CARD.OneToOne:
        if on:
            labels = {k: v for k, v in labels.items() if k in names}
        else:
            for name in names:
                labels.pop(name, None)
    for name in include:
        if one.get(name):
            labels[name] = one[name]
        else:
            labels.pop(name, None)
    return labels
