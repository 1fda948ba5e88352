"""Binary operators: arithmetic, comparison (filtering or ``bool``) and set operators, with
vector matching (on/ignoring, group_left/group_right) and Prometheus's matching errors."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import promql_parser as pp

from tsdb.promql.values import (
    Grid, PromQLError, Scalar, Value, Vector, VSeries, bad_data, drop_name, format_labels, labels_key,
    merge_same_labels, merge_same_rows, rows_kept, without_names,
)
from tsdb.labelset import MEMO
from tsdb.promql.limits import QueryGuard

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
            return _set_operation(op, lhs, rhs, on, names, grid.n)
        card = modifier.card if modifier else _CARD.OneToOne
        include = list(modifier.group_labels or []) if modifier else []
        return _vector_vector(op, lhs, rhs, card, on, names, include, return_bool, grid.n, ev.guard)
    raise bad_data("binary expression must contain only scalar and instant vector types")


def _vector_scalar(op: str, vector: Vector, scalar: np.ndarray, scalar_left: bool, return_bool: bool,
                   steps: int) -> Vector:
    """One numpy operation over the whole (series x steps) matrix; the scalar broadcasts per step."""
    labels, values, present, times = vector.columns(steps)
    left, right = (scalar, values) if scalar_left else (values, scalar)
    if op in ARITHMETIC:
        if op in _DROPS_NAME:
            labels = without_names(labels)
        result = rows_kept(labels, arithmetic(op, left, right), present, None, present.any(axis=1))
        return merge_same_rows(result, steps) if op in _DROPS_NAME else result
    keep = compare(op, left, right)
    if return_bool:
        result = rows_kept(without_names(labels), keep.astype(np.float64), present, None,
                           present.any(axis=1))
        return merge_same_rows(result, steps)
    # A comparison keeps the vector's own value even when the scalar is on the left.
    present = present & keep
    return rows_kept(labels, values, present, times, present.any(axis=1))


def signature(labels: dict[str, str], on: bool, names: list[str]) -> tuple:
    if on:
        return tuple((n, labels[n]) for n in names if n in labels)
    if not names:
        return labels_key(drop_name(labels))  # cached on the store's label sets
    return tuple(sorted((k, v) for k, v in labels.items() if k != "__name__" and k not in names))


def signatures(labels: list, on: bool, names: list[str]) -> list[tuple]:
    """Every member's matching signature (remembered for the same label sets: see ListMemo)."""
    return MEMO.get(labels, ("signatures", on, tuple(names)), lambda: [signature(item, on, names) for item in labels])


def _signature_groups(labels: list, on: bool, names: list[str]) -> tuple[dict[tuple, int], np.ndarray]:
    """Signatures numbered in order of appearance, and each member's number."""
    def compute() -> tuple[dict[tuple, int], np.ndarray]:
        index: dict[tuple, int] = {}
        group_of = [index.setdefault(sig, len(index)) for sig in signatures(labels, on, names)]
        return index, np.array(group_of, dtype=np.intp)
    return MEMO.get(labels, ("signature_groups", on, tuple(names)), compute)


def _presence_by_signature(labels: list, present: np.ndarray, on: bool, names: list[str]
                           ) -> tuple[dict[tuple, int], np.ndarray]:
    """Each signature's row in a (signatures x steps) matrix: where any series with it is present."""
    index, group_of = _signature_groups(labels, on, names)
    presence = np.zeros((len(index), present.shape[1]), dtype=np.int64)
    np.add.at(presence, group_of, present)
    return index, presence > 0


def _other_presence(labels: list, on: bool, names: list[str], index: dict[tuple, int],
                    presence: np.ndarray) -> np.ndarray:
    """Per row of ``labels``, the presence of its signature on the other side (none: False)."""
    rows = np.array([index.get(sig, -1) for sig in signatures(labels, on, names)], dtype=np.intp)
    other = np.zeros((len(rows), presence.shape[1]), dtype=bool)
    found = rows >= 0
    other[found] = presence[rows[found]]
    return other


def _set_operation(op: str, lhs: Vector, rhs: Vector, on: bool, names: list[str], steps: int) -> Vector:
    l_labels, l_values, l_present, l_times = lhs.columns(steps)
    r_labels, r_values, r_present, r_times = rhs.columns(steps)
    if op == "or":
        index, presence = _presence_by_signature(l_labels, l_present, on, names)
        mask = r_present & ~_other_presence(r_labels, on, names, index, presence)
        extra = np.flatnonzero(mask.any(axis=1))
        times = None
        if l_times is not None and r_times is not None:
            times = np.concatenate([l_times, r_times[extra]])
        # A right-hand series whose labels equal a left-hand one's (it fills the steps where the
        # left one is absent) is one series of the result, as in Prometheus's range results.
        return merge_same_rows(Vector.of_columns(l_labels + [r_labels[i] for i in extra.tolist()],
                                                 np.concatenate([l_values, r_values[extra]]),
                                                 np.concatenate([l_present, mask[extra]]), times), steps)
    index, presence = _presence_by_signature(r_labels, r_present, on, names)
    other = _other_presence(l_labels, on, names, index, presence)
    mask = l_present & (other if op == "and" else ~other)
    return rows_kept(l_labels, l_values, mask, l_times, mask.any(axis=1))


def _vector_vector(op: str, lhs: Vector, rhs: Vector, card: "pp.VectorMatchCardinality", on: bool,
                   names: list[str], include: list[str], return_bool: bool, steps: int,
                   guard: QueryGuard) -> Vector:
    """Vector matching on the columns: each many-side row finds its one-side partner by signature
    and the operator runs once over the paired matrices. A one side with two series of one
    signature (legal when they are never present at the same step) takes the per-series path."""
    swapped = card == _CARD.OneToMany
    many, one = (rhs, lhs) if swapped else (lhs, rhs)
    m_labels, m_values, m_present, _ = many.columns(steps)
    o_labels, o_values, o_present, _ = one.columns(steps)
    index, group_of = _signature_groups(o_labels, on, names)
    if len(index) != len(o_labels):
        return _vector_vector_series(op, lhs, rhs, card, on, names, include, return_bool, guard)
    sigs = signatures(m_labels, on, names)
    partners = [index.get(sig, -1) for sig in sigs]
    rows = np.array([i for i, j in enumerate(partners) if j >= 0], dtype=np.intp)
    partner = np.array([j for j in partners if j >= 0], dtype=np.intp)
    mv, ov = m_values[rows], o_values[partner]
    both = m_present[rows] & o_present[partner]
    left, right = (ov, mv) if swapped else (mv, ov)
    if op in ARITHMETIC:
        values, mask = arithmetic(op, left, right), both
    else:
        keep = compare(op, left, right)
        values, mask = (keep.astype(np.float64), both) if return_bool else (left, both & keep)
    kept = np.flatnonzero(mask.any(axis=1)).tolist()
    row_list, partner_list = rows.tolist(), partner.tolist()
    labels = [_result_labels(m_labels[row_list[k]], o_labels[partner_list[k]], op, card, on, names, include,
                             return_bool) for k in kept]
    result_sigs = [sigs[row_list[k]] for k in kept]
    values, mask = values[kept], mask[kept]
    _check_unique_rows(result_sigs, labels, mask, card)
    return merge_same_rows(Vector.of_columns(labels, values, mask), steps)


def _check_unique_rows(sigs: list[tuple], labels: list[dict], mask: np.ndarray,
                       card: "pp.VectorMatchCardinality") -> None:
    """``_check_unique_matches`` for the columnar path: only repeated keys need a closer look."""
    one_to_one = card == _CARD.OneToOne
    keys = sigs if one_to_one else [(sig, labels_key(item)) for sig, item in zip(sigs, labels)]
    if len(set(keys)) == len(keys):
        return
    _check_unique_matches([(sig, VSeries(item, mask[i], mask[i])) for i, (sig, item) in enumerate(zip(sigs, labels))],
                          card)


def _vector_vector_series(op: str, lhs: Vector, rhs: Vector, card: "pp.VectorMatchCardinality", on: bool,
                          names: list[str], include: list[str], return_bool: bool, guard: QueryGuard) -> Vector:
    swapped = card == _CARD.OneToMany
    many, one = (rhs, lhs) if swapped else (lhs, rhs)
    one_side = "left" if swapped else "right"
    groups: dict[tuple, list[VSeries]] = {}
    for s in one.series:
        groups.setdefault(signature(s.labels, on, names), []).append(s)
    # Prometheus returns nothing at a step where either side is empty, before it looks at the one
    # side's duplicates: only the steps with something on the many side can be many-to-many.
    many_present = np.logical_or.reduce([s.present for s in many.series]) if many.series else None
    for sig, members in groups.items():
        if len(members) > 1 and many_present is not None:
            _check_unique_one_side(members, one_side, sig, many_present)
    results: list[tuple[tuple, VSeries]] = []
    for ms in many.series:
        guard.check()
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
                guard.charge(len(values))  # a many-side series may pair with several one-side ones
                labels = _result_labels(ms.labels, os.labels, op, card, on, names, include, return_bool)
                results.append((sig, VSeries(labels, values, mask)))
    _check_unique_matches(results, card)
    return Vector(merge_same_labels([s for _, s in results]))


def _check_unique_one_side(members: list[VSeries], side: str, sig: tuple, many_present: np.ndarray) -> None:
    repeated = (np.sum([m.present for m in members], axis=0) > 1) & many_present
    if repeated.any():
        step = int(np.argmax(repeated))
        # Prometheus names the series it was adding, then the one already there.
        earlier, current = [m for m in members if m.present[step]][:2]
        raise PromQLError(
            f"found duplicate series for the match group {format_labels(dict(sig))} on the {side} hand-side of "
            f"the operation: [{format_labels(current.labels)}, {format_labels(earlier.labels)}];many-to-many matching not "
            f"allowed: matching labels must be unique on one side")


def _check_unique_matches(results: list[tuple[tuple, VSeries]], card: "pp.VectorMatchCardinality") -> None:
    one_to_one = card == _CARD.OneToOne
    groups: dict[tuple, list[VSeries]] = {}
    for sig, s in results:
        key = sig if one_to_one else (sig, labels_key(s.labels))
        groups.setdefault(key, []).append(s)
    for members in groups.values():
        if len(members) > 1 and (np.sum([m.present for m in members], axis=0) > 1).any():
            if one_to_one:
                raise PromQLError("multiple matches for labels: many-to-one matching must be explicit "
                                  "(group_left/group_right)")
            raise PromQLError("multiple matches for matching labels grouping labels must ensure unique matches")


def _result_labels(many: dict[str, str], one: dict[str, str], op: str, card: "pp.VectorMatchCardinality",
                   on: bool, names: list[str], include: list[str], return_bool: bool) -> dict[str, str]:
    if not include and (card != _CARD.OneToOne or (not on and not names)):
        # Only the name may go: the shared label set, or its cached copy without the name.
        return drop_name(many) if op in _DROPS_NAME or return_bool else many
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
