"""Functions over range vectors (rate, increase, *_over_time, deriv, ...), one window per step.

Each function gets the window's timestamps (ms) and values with stale markers removed, exactly
what Prometheus 2.42 hands its functions, and follows that version's arithmetic (extrapolation
of rate/increase/delta, reset handling, linear regression for deriv/predict_linear).
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

from tsdb.promql.aggregation import quantile
from tsdb.promql.limits import QueryGuard
from tsdb.promql.values import PromQLError, RangeVector, Vector, VSeries, merge_same_rows, rows_kept, without_names

Window = Callable[[np.ndarray, np.ndarray, int, int, list[float]], "float | None"]


def _extrapolated(is_counter: bool, is_rate: bool) -> Window:
    def fn(ts: np.ndarray, vs: np.ndarray, end: int, range_ms: int, _: list[float]) -> float | None:
        if len(vs) < 2:
            return None
        result = float(vs[-1] - vs[0])
        if is_counter:
            drops = vs[1:] < vs[:-1]
            result += float(vs[:-1][drops].sum())
        start = end - range_ms
        to_start = (int(ts[0]) - start) / 1000
        to_end = (end - int(ts[-1])) / 1000
        sampled = (int(ts[-1]) - int(ts[0])) / 1000
        average = sampled / (len(vs) - 1)
        if is_counter and result > 0 and vs[0] >= 0:
            to_zero = sampled * (vs[0] / result)
            if to_zero < to_start:
                to_start = to_zero
        threshold = average * 1.1
        interval = sampled
        interval += to_start if to_start < threshold else average / 2
        interval += to_end if to_end < threshold else average / 2
        result = result * (interval / sampled)
        return result / (range_ms / 1000) if is_rate else result
    return fn


def _instant(is_rate: bool) -> Window:
    def fn(ts: np.ndarray, vs: np.ndarray, end: int, range_ms: int, _: list[float]) -> float | None:
        if len(vs) < 2:
            return None
        last, previous = float(vs[-1]), float(vs[-2])
        result = last if is_rate and last < previous else last - previous
        interval = int(ts[-1]) - int(ts[-2])
        if interval == 0:
            return None
        return result / (interval / 1000) if is_rate else result
    return fn


def kahan_sum(values: list[float]) -> float:
    """Prometheus's ``kahanSum``: in order, with Neumaier's running correction (``kahanSumInc``)."""
    total = compensation = 0.0
    for value in values:
        new_total = total + value
        if abs(total) >= abs(value):
            compensation += (total - new_total) + value
        else:
            compensation += (value - new_total) + total
        total = new_total
    return total + compensation


def linear_regression(ts: np.ndarray, vs: np.ndarray, intercept_ms: int) -> tuple[float, float]:
    """Prometheus's least squares, summed as it sums (``kahan_sum``: compensated, in sample
    order), so that ``deriv`` and ``predict_linear`` agree with it to the bit: a difference in the
    last bit of a large prediction is a visible one after ``%`` or a subtraction."""
    if np.all(vs == vs[0]):
        return (math.nan, math.nan) if math.isinf(vs[0]) else (0.0, float(vs[0]))
    n = float(len(vs))
    x = (ts - intercept_ms) / 1e3
    sum_x, sum_y = kahan_sum(x.tolist()), kahan_sum(vs.tolist())
    sum_xy, sum_x2 = kahan_sum((x * vs).tolist()), kahan_sum((x * x).tolist())
    cov_xy = sum_xy - sum_x * sum_y / n
    var_x = sum_x2 - sum_x * sum_x / n
    with np.errstate(all="ignore"):
        slope = cov_xy / var_x if var_x else math.copysign(math.inf, cov_xy) if cov_xy else math.nan
    return slope, sum_y / n - slope * sum_x / n


def _deriv(ts, vs, end, range_ms, _):
    if len(vs) < 2:
        return None
    return linear_regression(ts, vs, int(ts[0]))[0]


def _predict_linear(ts, vs, end, range_ms, args):
    if len(vs) < 2:
        return None
    slope, intercept = linear_regression(ts, vs, end)
    return slope * args[0] + intercept


def _holt_winters(ts, vs, end, range_ms, args):
    smoothing, trend = args
    if not 0 < smoothing < 1:
        raise PromQLError(f"invalid smoothing factor. Expected: 0 < sf < 1, got: {smoothing:f}")
    if not 0 < trend < 1:
        raise PromQLError(f"invalid trend factor. Expected: 0 < tf < 1, got: {trend:f}")
    if len(vs) < 2:
        return None
    s0, s1, b = 0.0, float(vs[0]), float(vs[1] - vs[0])
    for i in range(1, len(vs)):
        x = smoothing * float(vs[i])
        if i > 1:
            b = trend * (s1 - s0) + (1 - trend) * b
        s0, s1 = s1, x + (1 - smoothing) * (s1 + b)
    return s1


def _changes(ts, vs, end, range_ms, _):
    a, b = vs[1:], vs[:-1]
    same = (a == b) | (np.isnan(a) & np.isnan(b))
    return float((~same).sum())


def _mean(vs: np.ndarray) -> float:
    # The running mean Prometheus uses keeps large values from overflowing a plain sum.
    mean = 0.0
    for count, value in enumerate(vs.tolist(), 1):
        if math.isinf(mean) and (math.isnan(value) or not math.isinf(value) or (value > 0) == (mean > 0)):
            if math.isnan(value):
                mean = value
            continue
        mean += value / count - mean / count
    return mean


def _variance(vs: np.ndarray) -> float:
    mean = aux = 0.0
    for count, value in enumerate(vs.tolist(), 1):
        delta = value - mean
        mean += delta / count
        aux += delta * (value - mean)
    return aux / len(vs)


def _min_max(pick: Callable[[float, float], bool]) -> Window:
    def fn(ts, vs, end, range_ms, _):
        best = float(vs[0])
        for value in vs[1:].tolist():
            if pick(value, best) or math.isnan(best):
                best = value
        return best
    return fn


WINDOW_FUNCTIONS: dict[str, tuple[Window, int]] = {
    # name: (function, number of scalar arguments after the range vector)
    "rate": (_extrapolated(True, True), 0),
    "increase": (_extrapolated(True, False), 0),
    "delta": (_extrapolated(False, False), 0),
    "irate": (_instant(True), 0),
    "idelta": (_instant(False), 0),
    "deriv": (_deriv, 0),
    "predict_linear": (_predict_linear, 1),
    "holt_winters": (_holt_winters, 2),
    "changes": (_changes, 0),
    "resets": (lambda ts, vs, e, r, _: float((vs[1:] < vs[:-1]).sum()), 0),
    "avg_over_time": (lambda ts, vs, e, r, _: _mean(vs), 0),
    "sum_over_time": (lambda ts, vs, e, r, _: float(sum(vs.tolist())), 0),
    "count_over_time": (lambda ts, vs, e, r, _: float(len(vs)), 0),
    "min_over_time": (_min_max(lambda value, best: value < best), 0),
    "max_over_time": (_min_max(lambda value, best: value > best), 0),
    "last_over_time": (lambda ts, vs, e, r, _: float(vs[-1]), 0),
    "present_over_time": (lambda ts, vs, e, r, _: 1.0, 0),
    "stdvar_over_time": (lambda ts, vs, e, r, _: _variance(vs), 0),
    "stddev_over_time": (lambda ts, vs, e, r, _: math.sqrt(_variance(vs)), 0),
    "quantile_over_time": (lambda ts, vs, e, r, args: quantile(args[0], vs), 1),
}


def apply(name: str, matrix: RangeVector, scalars: list[np.ndarray], guard: QueryGuard | None = None) -> Vector:
    """``name`` over each series' window at every step; ``scalars`` are its other arguments.
    ``guard``: charged for the result (a value per series and step) before it is computed, and
    checked as the windows are."""
    guard = guard or QueryGuard.unlimited()
    steps = len(matrix.ends)
    guard.charge((sum(b.values.shape[0] for b in matrix.blocks) + len(matrix.series)) * steps)
    labels: list[dict[str, str]] = []
    values: list[np.ndarray] = []
    present: list[np.ndarray] = []
    series = matrix.series
    if steps == 1 and name in _ROW_FUNCTIONS:
        # One window per series: all blocks of one width become one matrix, one numpy pass.
        for block_labels, block_values, block_present in _single_step_rows(name, matrix):
            labels.extend(block_labels)
            values.append(block_values)
            present.append(block_present)
    else:
        series = matrix.all_series()
    if name in _EXTRAPOLATED:
        results = _apply_extrapolated(name, series, matrix, guard)
    else:
        results = [_apply_one(WINDOW_FUNCTIONS[name][0], s, matrix, scalars, guard) for s in series]
    if results:
        labels.extend(s.labels for s in series)
        values.append(np.array([r[0] for r in results]).reshape(len(results), steps))
        present.append(np.array([r[1] for r in results]).reshape(len(results), steps))
    if not labels:
        return Vector()
    if name != "last_over_time":
        labels = without_names(labels)
    all_present = np.concatenate(present)
    result = rows_kept(labels, np.concatenate(values), all_present, None, all_present.any(axis=1))
    return merge_same_rows(result, steps)


def _single_step_rows(name: str, matrix: RangeVector):
    """Per group of blocks with the same number of samples: (labels, values, present), the
    blocks' rows stacked with a per-row timestamp matrix (targets scrape at their own times)."""
    by_width: dict[int, list] = {}
    for block in matrix.blocks:
        by_width.setdefault(block.values.shape[1], []).append(block)
    end = int(matrix.ends[0])
    for width, blocks in by_width.items():
        labels = [item for block in blocks for item in block.labels]
        if width < _MIN_SAMPLES.get(name, 1):
            continue
        vs = np.concatenate([block.values for block in blocks]) if len(blocks) > 1 else blocks[0].values
        ts = blocks[0].timestamps if len(blocks) == 1 else \
            np.concatenate([np.broadcast_to(block.timestamps, block.values.shape) for block in blocks])
        result = _ROW_FUNCTIONS[name](ts, vs, end, matrix.range_ms)
        yield labels, result.reshape(len(labels), 1), np.ones((len(labels), 1), dtype=bool)


# rate/increase/delta: (is_counter, is_rate). Series that share one timestamp array (every series
# a target exposed in every scrape of the window) are computed together, a row per series.
_EXTRAPOLATED = {"rate": (True, True), "increase": (True, False), "delta": (False, False)}

# Functions computed for many windows of equal length at once: (timestamps, values) are
# (rows x samples) matrices, the result one value per row. min/max ignore NaN unless all are
# NaN, as Prometheus does; sum adds in order (np.add.accumulate), as Go's loop does.
_ROW_FUNCTIONS: dict[str, Callable[[np.ndarray, np.ndarray, int, int], np.ndarray]] = {
    **{name: (lambda ts, vs, end, range_ms, flags=flags: _extrapolated_rows(ts, vs, end, range_ms, *flags))
       for name, flags in _EXTRAPOLATED.items()},
    "max_over_time": lambda ts, vs, end, range_ms: np.fmax.reduce(vs, axis=1),
    "min_over_time": lambda ts, vs, end, range_ms: np.fmin.reduce(vs, axis=1),
    "sum_over_time": lambda ts, vs, end, range_ms: np.add.accumulate(vs, axis=1)[:, -1],
    "count_over_time": lambda ts, vs, end, range_ms: np.full(len(vs), float(vs.shape[1])),
    "last_over_time": lambda ts, vs, end, range_ms: vs[:, -1].copy(),
    "present_over_time": lambda ts, vs, end, range_ms: np.ones(len(vs)),
}
_MIN_SAMPLES = dict.fromkeys(_EXTRAPOLATED, 2)


def _apply_one(fn: Window, s, matrix: RangeVector, scalars: list[np.ndarray],
               guard: QueryGuard) -> tuple[np.ndarray, np.ndarray]:
    ends = matrix.ends
    lo = np.searchsorted(s.timestamps, ends - matrix.range_ms, side="left")
    hi = np.searchsorted(s.timestamps, ends, side="right")
    values = np.full(len(ends), np.nan)
    present = np.zeros(len(ends), dtype=bool)
    for step in np.flatnonzero(hi > lo):
        guard.check()  # a window may hold millions of samples (a subquery's)
        args = [float(a[step]) for a in scalars]
        result = fn(s.timestamps[lo[step]:hi[step]], s.values[lo[step]:hi[step]], int(ends[step]), matrix.range_ms, args)
        if result is not None:
            values[step] = result
            present[step] = True
    return values, present


def _apply_extrapolated(name: str, series: list, matrix: RangeVector,
                        guard: QueryGuard) -> list[tuple[np.ndarray, np.ndarray]]:
    is_counter, is_rate = _EXTRAPOLATED[name]
    fn = WINDOW_FUNCTIONS[name][0]
    results: list = [None] * len(series)
    shared: dict[int, list[int]] = {}
    for index, s in enumerate(series):
        shared.setdefault(id(s.timestamps), []).append(index)
    ends = matrix.ends
    for indices in shared.values():
        if len(indices) == 1:
            results[indices[0]] = _apply_one(fn, series[indices[0]], matrix, [], guard)
            continue
        timestamps = series[indices[0]].timestamps
        rows = np.vstack([series[i].values for i in indices])
        values = np.full((len(indices), len(ends)), np.nan)
        lo = np.searchsorted(timestamps, ends - matrix.range_ms, side="left")
        hi = np.searchsorted(timestamps, ends, side="right")
        for step in np.flatnonzero(hi - lo >= 2):
            guard.check()
            values[:, step] = _extrapolated_rows(timestamps[lo[step]:hi[step]], rows[:, lo[step]:hi[step]],
                                                 int(ends[step]), matrix.range_ms, is_counter, is_rate)
        present = np.broadcast_to(hi - lo >= 2, values.shape)
        for row, index in enumerate(indices):
            results[index] = (values[row], present[row].copy())
    return results


def _extrapolated_rows(ts: np.ndarray, vs: np.ndarray, end: int, range_ms: int, is_counter: bool,
                       is_rate: bool) -> np.ndarray:
    """``_extrapolated`` for many series at once, one row each: ``ts`` is their shared timestamp
    array or a matrix of one row per series."""
    first, last = vs[:, 0], vs[:, -1]
    result = last - first
    if is_counter:
        drops = vs[:, 1:] < vs[:, :-1]
        result = result + np.where(drops, vs[:, :-1], 0.0).sum(axis=1)
    start = end - range_ms
    to_start = (ts[..., 0] - start) / 1000
    to_end = (end - ts[..., -1]) / 1000
    sampled = (ts[..., -1] - ts[..., 0]) / 1000
    average = sampled / (ts.shape[-1] - 1)
    with np.errstate(all="ignore"):
        starts = np.broadcast_to(to_start, result.shape)
        if is_counter:
            to_zero = sampled * (first / result)
            use_zero = (result > 0) & (first >= 0) & (to_zero < to_start)
            starts = np.where(use_zero, to_zero, starts)
        threshold = average * 1.1
        interval = sampled + np.where(starts < threshold, starts, average / 2)
        interval = interval + np.where(to_end < threshold, to_end, average / 2)
        result = result * (interval / sampled)
    return result / (range_ms / 1000) if is_rate else result


def absent_over_time(matrix: RangeVector, absent_labels: dict[str, str]) -> Vector:
    ends = matrix.ends
    seen = np.zeros(len(ends), dtype=bool)
    for s in matrix.all_series():
        lo = np.searchsorted(s.timestamps, ends - matrix.range_ms, side="left")
        hi = np.searchsorted(s.timestamps, ends, side="right")
        seen |= hi > lo
    if seen.all():
        return Vector()
    return Vector([VSeries(absent_labels, np.ones(len(ends)), ~seen)])
