"""PromQL function calls: dispatch to the range-vector functions, and the instant-vector ones
(math, clamping, time, labels, sorting, absent, histogram_quantile, scalar/vector/time)."""
from __future__ import annotations

import calendar
import math
import re
from typing import TYPE_CHECKING, Callable

import numpy as np
import promql_parser as pp

from tsdb.promql import range_functions
from tsdb.regex import Groups, RegexError, compile_anchored
from tsdb.promql.values import (
    Grid, PromQLError, RangeVector, Scalar, String, Value, Vector, VSeries, bad_data, drop_name, merge_same_labels,
)

if TYPE_CHECKING:
    from tsdb.promql.evaluator import Evaluator

_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")  # fullmatch: "$" would let a final newline in
_GROUP_NAME = re.compile(r"[A-Za-z0-9_]+")

_MATH: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "abs": np.abs, "ceil": np.ceil, "floor": np.floor, "exp": np.exp, "ln": np.log, "log2": np.log2,
    "log10": np.log10, "sqrt": np.sqrt, "sgn": np.sign, "acos": np.arccos, "acosh": np.arccosh,
    "asin": np.arcsin, "asinh": np.arcsinh, "atan": np.arctan, "atanh": np.arctanh, "cos": np.cos,
    "cosh": np.cosh, "sin": np.sin, "sinh": np.sinh, "tan": np.tan, "tanh": np.tanh, "deg": np.degrees,
    "rad": np.radians,
}

def _civil(days: int) -> tuple[int, int, int]:
    """(year, month, day) of a day counted from 1970-01-01, proleptic Gregorian, for any day:
    Go's time (and so Prometheus) has no year 9999 limit, Python's datetime has."""
    days += 719_468  # from 0000-03-01, so that the leap day ends each 400-year era
    era, day_of_era = divmod(days, 146_097)
    year_of_era = (day_of_era - day_of_era // 1460 + day_of_era // 36_524 - day_of_era // 146_096) // 365
    day_of_year = day_of_era - (365 * year_of_era + year_of_era // 4 - year_of_era // 100)
    shifted_month = (5 * day_of_year + 2) // 153
    day = day_of_year - (153 * shifted_month + 2) // 5 + 1
    month = shifted_month + 3 if shifted_month < 10 else shifted_month - 9
    return year_of_era + era * 400 + (month <= 2), month, day


def _day_of_year(days: int) -> int:
    year, month, day = _civil(days)
    before = sum(calendar.mdays[1:month]) + (month > 2 and calendar.isleap(year))
    return before + day


def _days_in_month(days: int) -> int:
    year, month, _ = _civil(days)
    return 29 if month == 2 and calendar.isleap(year) else calendar.mdays[month]


# Of Unix seconds (UTC), as Prometheus's time functions read time.Unix(int64(v), 0).UTC().
_TIME_PARTS: dict[str, Callable[[int], int]] = {
    "minute": lambda s: s // 60 % 60,
    "hour": lambda s: s // 3600 % 24,
    "day_of_month": lambda s: _civil(s // 86_400)[2],
    "day_of_week": lambda s: (s // 86_400 + 4) % 7,  # 1970-01-01 was a Thursday
    "day_of_year": lambda s: _day_of_year(s // 86_400),
    "days_in_month": lambda s: _days_in_month(s // 86_400),
    "month": lambda s: _civil(s // 86_400)[1],
    "year": lambda s: _civil(s // 86_400)[0],
}


def _unwrap(expr: pp.Expr) -> pp.Expr:
    while isinstance(expr, pp.ParenExpr):
        expr = expr.expr
    return expr


def _vector(value: Value, name: str) -> Vector:
    if not isinstance(value, Vector):
        raise bad_data(f"expected type instant vector in call to function {name!r}")
    return value


def _map(vector: Vector, fn: Callable[[np.ndarray], np.ndarray]) -> Vector:
    with np.errstate(all="ignore"):
        series = [VSeries(drop_name(s.labels), fn(s.values), s.present) for s in vector.series]
    return Vector(merge_same_labels(series))


def evaluate(ev: "Evaluator", call: pp.Call, grid: Grid) -> Value:
    name = call.func.name
    args = list(call.args)
    if name in range_functions.WINDOW_FUNCTIONS:
        return _window(ev, name, args, grid)
    if name == "absent_over_time":
        matrix = ev.eval(args[0], grid)
        return range_functions.absent_over_time(matrix, _absent_labels(_unwrap(args[0])))
    if name in _MATH:
        return _map(_vector(ev.eval(args[0], grid), name), _MATH[name])
    if name in _TIME_PARTS:
        return _time_part(ev, name, args, grid)
    handler = _SPECIAL.get(name)
    if handler is None:
        raise bad_data(f"unknown function with name {name!r}")
    return handler(ev, args, grid)


def _window(ev: "Evaluator", name: str, args: list, grid: Grid) -> Vector:
    matrix_index = 1 if name == "quantile_over_time" else 0
    if isinstance(selector := _unwrap(args[matrix_index]), pp.MatrixSelector):
        # Each series' windows alone make its result: read a part of the series at a time when
        # all of them at once would be too many samples (Evaluator.windowed).
        scalars = [ev.scalar_arg(a, grid) for i, a in enumerate(args) if i != matrix_index]
        return ev.windowed(selector, grid, lambda matrix: range_functions.apply(name, matrix, scalars, ev.guard))
    matrix = ev.eval(args[matrix_index], grid)
    if not isinstance(matrix, RangeVector):
        raise bad_data(f"expected type range vector in call to function {name!r}")
    scalars = [ev.scalar_arg(a, grid) for i, a in enumerate(args) if i != matrix_index]
    return range_functions.apply(name, matrix, scalars, ev.guard)


def _time_part(ev: "Evaluator", name: str, args: list, grid: Grid) -> Vector:
    if args:
        vector = _vector(ev.eval(args[0], grid), name)
    else:
        vector = Vector([VSeries({}, grid.times / 1000.0, np.ones(grid.n, dtype=bool))])
    part = _TIME_PARTS[name]

    def convert(values: np.ndarray) -> np.ndarray:
        ev.guard.check()
        out = np.full(len(values), np.nan)
        for i, v in enumerate(values.tolist()):
            if math.isfinite(v) and abs(v) < 2**63:  # past int64, Go's conversion is undefined
                out[i] = part(int(v))
        return out

    return _map(vector, convert)


def _round(ev: "Evaluator", args: list, grid: Grid) -> Vector:
    vector = _vector(ev.eval(args[0], grid), "round")
    nearest = ev.scalar_arg(args[1], grid) if len(args) > 1 else np.ones(grid.n)
    inverse = 1.0 / nearest
    return _map(vector, lambda v: np.floor(v * inverse + 0.5) / inverse)


def _clamp(ev: "Evaluator", args: list, grid: Grid, name: str) -> Vector:
    vector = _vector(ev.eval(args[0], grid), name)
    low = ev.scalar_arg(args[1], grid) if name in ("clamp", "clamp_min") else None
    high = ev.scalar_arg(args[2 if name == "clamp" else 1], grid) if name in ("clamp", "clamp_max") else None

    def clamp(values: np.ndarray) -> np.ndarray:
        if low is not None:
            values = np.maximum(values, low)
        return values if high is None else np.minimum(values, high)

    result = _map(vector, clamp)
    if name == "clamp":
        # clamp() with max below min returns nothing at that step.
        valid = ~(high < low)
        for s in result.series:
            s.present = s.present & valid
        result.series = [s for s in result.series if s.present.any()]
    return result


def _timestamp(ev: "Evaluator", args: list, grid: Grid) -> Vector:
    vector = _vector(ev.eval(args[0], grid), "timestamp")
    direct = isinstance(_unwrap(args[0]), pp.VectorSelector)
    series = []
    for s in vector.series:
        times = s.sample_times if direct and s.sample_times is not None else grid.times
        series.append(VSeries(drop_name(s.labels), times / 1000.0, s.present))
    return Vector(merge_same_labels(series))


def _absent_labels(expr: pp.Expr) -> dict[str, str]:
    """Labels absent() reports, built as Prometheus's ``createLabelsForAbsentFunction`` builds
    them, matcher by matcher in order: the first equality on a name sets it (an empty value is no
    label), and any later matcher on a name already set, or any other kind of matcher, removes
    it; so ``{a="1",a=~"1"}`` reports no ``a``, and ``{a!~"",a="1"}`` reports ``a="1"``."""
    if isinstance(expr, pp.MatrixSelector):
        expr = expr.vector_selector
    if not isinstance(expr, pp.VectorSelector):
        return {}
    labels: dict[str, str] = {}
    set_once: set[str] = set()
    for m in expr.matchers.matchers:
        if m.name == "__name__":
            continue
        if m.op == pp.MatchOp.Equal and m.name not in set_once:
            set_once.add(m.name)
            if m.value:
                labels[m.name] = m.value
                continue
        labels.pop(m.name, None)
    return labels


def _absent(ev: "Evaluator", args: list, grid: Grid) -> Vector:
    vector = _vector(ev.eval(args[0], grid), "absent")
    seen = np.zeros(grid.n, dtype=bool)
    for s in vector.series:
        seen |= s.present
    if seen.all():
        return Vector()
    return Vector([VSeries(_absent_labels(_unwrap(args[0])), np.ones(grid.n), ~seen)])


def _scalar(ev: "Evaluator", args: list, grid: Grid) -> Scalar:
    vector = _vector(ev.eval(args[0], grid), "scalar")
    count = np.zeros(grid.n, dtype=int)
    values = np.full(grid.n, np.nan)
    for s in vector.series:
        count += s.present
        values = np.where(s.present, s.values, values)
    return Scalar(np.where(count == 1, values, np.nan))


def _vector_fn(ev: "Evaluator", args: list, grid: Grid) -> Vector:
    return Vector([VSeries({}, ev.scalar_arg(args[0], grid).copy(), np.ones(grid.n, dtype=bool))])


def _sort(order: str) -> Callable:
    def handler(ev: "Evaluator", args: list, grid: Grid) -> Vector:
        vector = _vector(ev.eval(args[0], grid), f"sort{'_desc' if order == 'desc' else ''}")
        return Vector(vector.series, order=order)
    return handler


def _string_arg(ev: "Evaluator", expr: pp.Expr, grid: Grid) -> str:
    value = ev.eval(expr, grid)
    if not isinstance(value, String):
        raise bad_data("expected a string argument")
    return value.value


def go_expand(template: str, match: Groups) -> str:
    """Go's regexp.Expand: $1, ${1}, $name, ${name}, $$; unknown groups expand to nothing."""
    out = []
    i = 0
    closes = True  # False once no "}" follows: later "${" need not look again (linear time)
    while i < len(template):
        char = template[i]
        if char != "$" or i + 1 >= len(template):
            out.append(char)
            i += 1
            continue
        if template[i + 1] == "$":
            out.append("$")
            i += 2
            continue
        if template[i + 1] == "{":
            close = template.find("}", i + 2) if closes else -1
            closes = close != -1
            name = template[i + 2:close] if close != -1 else ""
            if close == -1 or not _GROUP_NAME.fullmatch(name):
                out.append(char)
                i += 1
                continue
            i = close + 1
        else:
            found = _GROUP_NAME.match(template, i + 1)  # at a position: no copy of the rest
            if not found:
                out.append(char)
                i += 1
                continue
            name = found.group()
            i += 1 + len(name)
        out.append(_group(match, name))
    return "".join(out)


def _group(match: Groups, name: str) -> str:
    try:
        value = match.group(int(name)) if name.isdigit() else match.group(name)
    except IndexError:  # unknown group number or name
        return ""
    return value or ""


def _label_replace(ev: "Evaluator", args: list, grid: Grid) -> Vector:
    vector = _vector(ev.eval(args[0], grid), "label_replace")
    dst, replacement, src, pattern = (_string_arg(ev, a, grid) for a in args[1:5])
    try:
        regex = compile_anchored(pattern)
    except RegexError:
        raise PromQLError(f"invalid regular expression in label_replace(): {pattern}") from None
    if not _LABEL_NAME.fullmatch(dst):
        raise PromQLError(f"invalid destination label name in label_replace(): {dst}")
    series = []
    for s in vector.series:
        ev.guard.check()  # the replacement is expanded per series: as long as the query allows
        labels = s.labels
        match = regex.groups(labels.get(src, ""))
        if match:
            value = go_expand(replacement, match)
            labels = {k: v for k, v in labels.items() if k != dst}
            if value:
                labels[dst] = value
        series.append(VSeries(labels, s.values, s.present, s.sample_times))
    return Vector(merge_same_labels(series))


def _label_join(ev: "Evaluator", args: list, grid: Grid) -> Vector:
    vector = _vector(ev.eval(args[0], grid), "label_join")
    dst, separator, *sources = (_string_arg(ev, a, grid) for a in args[1:])
    if not _LABEL_NAME.fullmatch(dst):
        raise PromQLError(f"invalid destination label name in label_join(): {dst}")
    series = []
    for s in vector.series:
        ev.guard.check()
        value = separator.join(s.labels.get(src, "") for src in sources)
        labels = {k: v for k, v in s.labels.items() if k != dst}
        if value:
            labels[dst] = value
        series.append(VSeries(labels, s.values, s.present, s.sample_times))
    return Vector(merge_same_labels(series))


def _histogram_quantile(ev: "Evaluator", args: list, grid: Grid) -> Vector:
    q = ev.scalar_arg(args[0], grid)
    vector = _vector(ev.eval(args[1], grid), "histogram_quantile")
    groups: dict[tuple, tuple[dict[str, str], list[tuple[float, VSeries]]]] = {}
    for s in vector.series:
        try:
            upper = float(s.labels["le"])
        except (KeyError, ValueError):
            continue
        key = tuple(sorted((k, v) for k, v in s.labels.items() if k != "le"))
        out_labels = {k: v for k, v in s.labels.items() if k not in ("le", "__name__")}
        groups.setdefault(key, (out_labels, []))[1].append((upper, s))
    out = []
    for labels, buckets in groups.values():
        ev.guard.check()
        values = np.full(grid.n, np.nan)
        present = np.zeros(grid.n, dtype=bool)
        for step in range(grid.n):
            at_step = [(upper, float(s.values[step])) for upper, s in buckets if s.present[step]]
            if at_step:
                values[step] = bucket_quantile(float(q[step]), at_step)
                present[step] = True
        if present.any():
            out.append(VSeries(labels, values, present))
    return Vector(merge_same_labels(out))


def bucket_quantile(q: float, buckets: list[tuple[float, float]]) -> float:
    """Prometheus 2.42's bucketQuantile over (upper bound, cumulative count) pairs."""
    if math.isnan(q):
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    buckets = sorted(buckets, key=lambda b: b[0])
    if not math.isinf(buckets[-1][0]) or buckets[-1][0] < 0:
        return math.nan
    merged: list[list[float]] = []
    for upper, count in buckets:
        if merged and merged[-1][0] == upper:
            merged[-1][1] += count
        else:
            merged.append([upper, count])
    highest = -math.inf
    for bucket in merged:
        if bucket[1] > highest:
            highest = bucket[1]
        elif bucket[1] < highest:
            bucket[1] = highest
    if len(merged) < 2:
        return math.nan
    observations = merged[-1][1]
    if observations == 0:
        return math.nan
    rank = q * observations
    b = next((i for i in range(len(merged) - 1) if merged[i][1] >= rank), len(merged) - 1)
    if b == len(merged) - 1:
        return merged[-2][0]
    if b == 0 and merged[0][0] <= 0:
        return merged[0][0]
    start, end, count = 0.0, merged[b][0], merged[b][1]
    if b > 0:
        start = merged[b - 1][0]
        count -= merged[b - 1][1]
        rank -= merged[b - 1][1]
    return start + (end - start) * (rank / count)


_SPECIAL: dict[str, Callable] = {
    "round": _round,
    "clamp": lambda ev, a, g: _clamp(ev, a, g, "clamp"),
    "clamp_min": lambda ev, a, g: _clamp(ev, a, g, "clamp_min"),
    "clamp_max": lambda ev, a, g: _clamp(ev, a, g, "clamp_max"),
    "timestamp": _timestamp,
    "absent": _absent,
    "scalar": _scalar,
    "vector": _vector_fn,
    "time": lambda ev, a, g: Scalar(g.times / 1000.0),
    "pi": lambda ev, a, g: Scalar(np.full(g.n, math.pi)),
    "sort": _sort("asc"),
    "sort_desc": _sort("desc"),
    "label_replace": _label_replace,
    "label_join": _label_join,
    "histogram_quantile": _histogram_quantile,
}
