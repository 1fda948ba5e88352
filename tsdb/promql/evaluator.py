"""Walks a promql-parser AST and evaluates it over a grid of steps against the store.

Semantics follow Prometheus 2.42: a vector selector takes the newest sample at or before each
step within the lookback delta (both ends inclusive), ignoring stale markers; a range selector
takes the samples in [t - range, t]; ``offset`` and ``@`` move that reference time; subqueries
evaluate their expression on steps aligned to multiples of their own step.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Callable, Protocol, Sequence

import numpy as np
import promql_parser as pp

from tsdb.matchers import EQUAL, NOT_EQUAL, NOT_REGEX, REGEX, LabelMatcher
from tsdb.promql import aggregation, binary, functions
from tsdb.promql.limits import WINDOW_SAMPLES_AT_ONCE, QueryGuard
from tsdb.promql.values import (
    ABSENT_BITS, STALE_NAN_BITS, Grid, PromQLError, RangeVector, RBlock, RSeries, Scalar, String, Value, Vector,
    VSeries, bad_data, concat_vectors, drop_name, is_rust_panic, labels_key, merge_same_labels, rows_kept,
)

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
# promql-parser's enum members are not hashable, so the mapping goes by member name.
_MATCH_OPS = {"Equal": EQUAL, "NotEqual": NOT_EQUAL, "Re": REGEX, "NotRe": NOT_REGEX}


class SeriesSource(Protocol):
    """What the evaluator reads (``tsdb.store.Store``); ``charge(samples, series)`` is told a
    read's size before it is copied, and may refuse it by raising."""

    def select_blocks(self, matchers: Sequence[LabelMatcher], mint_ms: int, maxt_ms: int,
                      charge: Callable[[int, int], None] | None = None, places: slice | None = None) -> list: ...

    def select_latest(self, matchers: Sequence[LabelMatcher], t_ms: int, lookback_ms: int): ...

    def select_windows(self, matchers: Sequence[LabelMatcher], mint_ms: int, maxt_ms: int,
                       charge: Callable[[int, int], None] | None = None, places: slice | None = None) -> list | None: ...

    def series_count(self, matchers: Sequence[LabelMatcher]) -> int: ...


# Go's time.Duration (int64 nanoseconds) is Prometheus's limit on offsets, ranges and steps.
_MAX_DURATION = timedelta(microseconds=(2**63 - 1) // 1000)


def millis(delta: timedelta | None) -> int:
    if delta is None:
        return 0
    if abs(delta) > _MAX_DURATION:
        raise bad_data("parse error: duration out of range")
    return delta // timedelta(milliseconds=1)


def at_millis(at: pp.AtModifier) -> int:
    """The time an ``@ <number>`` names. promql-parser hands it over as a datetime, which cannot
    hold a time before 1970 (its conversion panics) or after 9999: those are refused."""
    try:
        return (at.at - _EPOCH) // timedelta(milliseconds=1)
    except BaseException as exc:  # noqa: BLE001 - a Rust panic is a BaseException
        if not isinstance(exc, (OverflowError, ValueError)) and not is_rust_panic(exc):
            raise
    raise bad_data("parse error: timestamp out of bounds for @ modifier: only times from 1970 to 9999 are supported")


def selector_matchers(selector: pp.VectorSelector) -> list[LabelMatcher]:
    """The selector's matchers with its metric name as a ``__name__`` matcher; rejects a
    selector that would match every series, as Prometheus does."""
    try:
        matchers = [LabelMatcher.of(_MATCH_OPS[str(m.op).rsplit(".", 1)[-1]], m.name, m.value)
                    for m in selector.matchers.matchers]
    except ValueError as exc:
        raise bad_data(f"parse error: {exc}") from None
    if selector.name is not None and not any(m.name == "__name__" for m in matchers):
        matchers.insert(0, LabelMatcher.of(EQUAL, "__name__", selector.name))
    if not any(not m.matches("") for m in matchers):
        raise bad_data("parse error: vector selector must contain at least one non-empty matcher")
    return matchers


def _merge_moved_series(series: list[VSeries]) -> list[VSeries]:
    """A series read from two columns (it moved between targets) becomes one, taking at each
    step the newer of its two samples."""
    seen: dict[tuple, int] = {}
    out: list[VSeries] = []
    for s in series:
        key = tuple(sorted(s.labels.items()))
        if key not in seen:
            seen[key] = len(out)
            out.append(s)
            continue
        first = out[seen[key]]
        newer = s.present & (~first.present | (s.sample_times > first.sample_times))
        out[seen[key]] = VSeries(first.labels, np.where(newer, s.values, first.values), first.present | s.present,
                                 np.where(newer, s.sample_times, first.sample_times))
    return out


def _join_moved_series(blocks: list) -> list[RSeries]:
    """Series of the selection as RSeries, the parts of one that moved between columns (and so
    comes in two blocks) joined in time order."""
    by_labels: dict[tuple, RSeries] = {}
    for block in blocks:
        bits = block.values.view(np.uint64)
        keep = (bits != ABSENT_BITS) & (bits != STALE_NAN_BITS)
        for row in np.flatnonzero(keep.any(axis=1)):
            series = RSeries(block.labels[row], block.timestamps[keep[row]], block.values[row][keep[row]])
            key = labels_key(series.labels)
            previous = by_labels.get(key)
            if previous is not None:
                order = np.argsort(np.concatenate([previous.timestamps, series.timestamps]), kind="stable")
                series = RSeries(series.labels, np.concatenate([previous.timestamps, series.timestamps])[order],
                                 np.concatenate([previous.values, series.values])[order])
            by_labels[key] = series
    return list(by_labels.values())


def _split_rows(labels: list, timestamps: np.ndarray, values: np.ndarray, blocks: list[RBlock],
                series: list[RSeries]) -> None:
    """Rows with every sample real stay one matrix (the range functions' fast path, computed for
    all of them at once); the others become RSeries without their ABSENT/stale slots.
    ``timestamps`` is shared by every row (1-D, a target's block) or per row (2-D, windows)."""
    per_row = timestamps.ndim == 2
    bits = values.view(np.uint64)
    keep = (bits != ABSENT_BITS) & (bits != STALE_NAN_BITS)
    complete = keep.all(axis=1)
    if complete.all():  # the usual case: every series in every scrape
        blocks.append(RBlock(labels, timestamps, values))
        return
    rows = np.flatnonzero(complete)
    if len(rows):
        blocks.append(RBlock([labels[i] for i in rows.tolist()], timestamps[rows] if per_row else timestamps,
                             values[rows]))
    for row in np.flatnonzero(~complete & keep.any(axis=1)).tolist():
        times = timestamps[row] if per_row else timestamps
        series.append(RSeries(labels[row], times[keep[row]], values[row][keep[row]]))


def samples_of(value: Value, steps: int) -> int:
    """What ``value`` holds in Prometheus's unit (a sample: one value at one time)."""
    if isinstance(value, Vector):
        return value.rows() * steps
    if isinstance(value, Scalar):
        return len(value.values)
    if isinstance(value, RangeVector):
        return sum(len(s.values) for s in value.series) + sum(b.values.size for b in value.blocks)
    return 1


class _TooLarge(Exception):
    """A range selector's read would hold more than it may at once: ``samples`` in ``series`` rows."""

    def __init__(self, samples: int, series: int) -> None:
        super().__init__(samples, series)
        self.samples, self.series = samples, series


class Evaluator:
    """Evaluates one query. ``guard`` is its deadline and sample budget
    (``tsdb.promql.limits``): checked at every node and in loops over steps or series, charged
    before each large allocation."""

    def __init__(self, source: SeriesSource, start_ms: int, end_ms: int, lookback_ms: int = 300_000,
                 default_subquery_step_ms: int = 60_000, guard: QueryGuard | None = None) -> None:
        self.source = source
        self.start_ms = start_ms
        self.end_ms = end_ms
        self.lookback_ms = lookback_ms
        self.default_subquery_step_ms = default_subquery_step_ms
        self.guard = guard or QueryGuard.unlimited()

    def eval(self, expr: pp.Expr, grid: Grid) -> Value:
        guard = self.guard
        guard.check()
        mark = guard.current
        value = self._eval(expr, grid)
        guard.settle(mark, samples_of(value, grid.n))  # its operands are released, its result held
        return value

    def _eval(self, expr: pp.Expr, grid: Grid) -> Value:
        if isinstance(expr, pp.ParenExpr):
            return self.eval(expr.expr, grid)
        if isinstance(expr, pp.NumberLiteral):
            return Scalar(np.full(grid.n, float(expr.val)))
        if isinstance(expr, pp.StringLiteral):
            return String(expr.val)
        if isinstance(expr, pp.VectorSelector):
            return self.vector_selector(expr, grid)
        if isinstance(expr, pp.MatrixSelector):
            return self.matrix_selector(expr, grid)
        if isinstance(expr, pp.SubqueryExpr):
            return self.subquery(expr, grid)
        if isinstance(expr, pp.UnaryExpr):
            return self.negate(self.eval(expr.expr, grid))
        if isinstance(expr, pp.BinaryExpr):
            return binary.evaluate(self, expr, grid)
        if isinstance(expr, pp.AggregateExpr):
            return aggregation.evaluate(self, expr, grid)
        if isinstance(expr, pp.Call):
            return functions.evaluate(self, expr, grid)
        raise PromQLError(f"unsupported expression {type(expr).__name__}")

    # ---- time references -----------------------------------------------------------------
    def reference_times(self, at: pp.AtModifier | None, offset: timedelta | None, grid: Grid) -> np.ndarray:
        """Per step, the time a selector reads at: the step (or the @ time) minus the offset."""
        if at is None:
            base = grid.times
        elif at.type == pp.AtModifierType.Start:
            base = np.full(grid.n, self.start_ms, dtype=np.int64)
        elif at.type == pp.AtModifierType.End:
            base = np.full(grid.n, self.end_ms, dtype=np.int64)
        else:
            base = np.full(grid.n, at_millis(at), dtype=np.int64)
        return base - millis(offset)

    # ---- selectors -----------------------------------------------------------------------
    def vector_selector(self, selector: pp.VectorSelector, grid: Grid) -> Vector:
        matchers = selector_matchers(selector)
        ends = self.reference_times(selector.at, selector.offset, grid)
        if grid.n == 1 or (ends == ends[0]).all():
            # One reference time (an instant query, or @): the store reads one sample per series.
            latest = self.source.select_latest(matchers, int(ends[0]), self.lookback_ms)
            rows = len(latest.labels)
            self.guard.charge(rows * grid.n)
            return Vector.of_columns(latest.labels, np.repeat(latest.values[:, None], grid.n, axis=1),
                                     np.ones((rows, grid.n), dtype=bool),
                                     np.repeat(latest.times[:, None], grid.n, axis=1))
        guard = self.guard
        # What is read, and the series x steps made of it, refused before anything is copied.
        blocks = self.source.select_blocks(matchers, int(ends.min()) - self.lookback_ms, int(ends.max()),
                                           lambda samples, series: guard.charge(samples + series * grid.n))
        if not blocks:
            return Vector()
        moved = any(block.moved for block in blocks)
        # One vector of all blocks' rows (a range query's matrices), not a VSeries per series,
        # filled block by block; each block is let go once read.
        total = sum(len(block.labels) for block in blocks)
        values = np.empty((total, grid.n))
        found = np.empty((total, grid.n), dtype=bool)
        times = np.empty((total, grid.n), dtype=np.int64)
        labels: list = []
        for i in range(len(blocks)):
            block, blocks[i] = blocks[i], None
            guard.check()
            rows = slice(len(labels), len(labels) + len(block.labels))
            # Per row, the index of the newest real sample at or before each position (ABSENT
            # padding skipped), then per step the one at or before the step's reference time.
            positions = np.arange(len(block.timestamps))
            real = block.values.view(np.uint64) != ABSENT_BITS
            newest = np.maximum.accumulate(np.where(real, positions, -1), axis=1)
            at = np.searchsorted(block.timestamps, ends, side="right") - 1
            idx = np.where(at >= 0, newest[:, np.maximum(at, 0)], -1)
            safe = np.maximum(idx, 0)
            times[rows] = block.timestamps[safe]
            values[rows] = np.take_along_axis(block.values, safe, axis=1)
            found[rows] = (idx >= 0) & (times[rows] >= ends - self.lookback_ms) & \
                (values[rows].view(np.uint64) != STALE_NAN_BITS)
            labels.extend(block.labels)
        vector = rows_kept(labels, values, found, times, found.any(axis=1))
        return Vector(_merge_moved_series(vector.series)) if moved else vector

    def windowed(self, expr: pp.MatrixSelector, grid: Grid, apply: Callable[[RangeVector], Vector]) -> Vector:
        """``apply`` (a function of each series' windows alone: rate, *_over_time) over the range
        selector ``expr``, holding at most about ``WINDOW_SAMPLES_AT_ONCE`` of its samples at once:
        a read larger than that (a day of 131,072 GPUs' samples: 3 GB) is read and applied a
        part of the series at a time, and only the parts' results are kept."""
        try:
            return apply(self.matrix_selector(expr, grid, at_once=WINDOW_SAMPLES_AT_ONCE))
        except _TooLarge as large:
            per_series = max(1, large.samples // max(1, large.series))
        matchers = selector_matchers(expr.vector_selector)
        count = self.source.series_count(matchers)
        step = max(1, WINDOW_SAMPLES_AT_ONCE // per_series)
        parts = []
        for first in range(0, count, step):
            mark = self.guard.current
            part = apply(self.matrix_selector(expr, grid, places=slice(first, first + step)))
            self.guard.settle(mark, samples_of(part, grid.n))  # its windows released, its result held
            parts.append(part)
        return concat_vectors(parts, grid.n)

    def matrix_selector(self, expr: pp.MatrixSelector, grid: Grid, at_once: int | None = None,
                        places: slice | None = None) -> RangeVector:
        """The samples of ``expr``'s windows; raises ``_TooLarge`` before copying more than
        ``at_once`` samples; ``places``: only those series of the selection (``windowed``)."""
        selector = expr.vector_selector
        matchers = selector_matchers(selector)
        range_ms = millis(expr.range)
        ends = self.reference_times(selector.at, selector.offset, grid)
        # At one time (rules, instant queries) all series come as one matrix per window width;
        # otherwise, or where the source cannot, as one block per target column.
        single_time = bool((ends == ends[0]).all())
        guard = self.guard

        def charge(samples: int, series: int) -> None:
            if at_once is not None and samples > at_once:
                raise _TooLarge(samples, series)
            guard.charge(samples)

        parts = self.source.select_windows(matchers, int(ends[0]) - range_ms, int(ends[0]), charge, places) \
            if single_time else None
        if parts is None:
            parts = self.source.select_blocks(matchers, int(ends.min()) - range_ms, int(ends.max()), charge, places)
            if any(block.moved for block in parts):
                return RangeVector(_join_moved_series(parts), ends, range_ms, matchers)
        series: list[RSeries] = []
        blocks: list[RBlock] = []
        for part in parts:
            _split_rows(part.labels, part.timestamps, part.values, blocks, series)
        return RangeVector(series, ends, range_ms, matchers, blocks)

    def subquery(self, expr: pp.SubqueryExpr, grid: Grid) -> RangeVector:
        step = millis(expr.step) or self.default_subquery_step_ms
        range_ms = millis(expr.range)
        ends = self.reference_times(expr.at, expr.offset, grid)
        first = int(ends.min()) - range_ms
        start = step * (first // step)
        if start < first:
            start += step
        # Refused before the grid exists: [30d:1ms] is 2.6 billion steps (19 GiB of timestamps).
        self.guard.charge(max(0, (int(ends.max()) - start) // step + 1))
        inner_grid = Grid.of(start, int(ends.max()), step)
        inner = self.eval(expr.expr, inner_grid) if inner_grid.n else Vector()
        if isinstance(inner, Scalar):
            inner = Vector([VSeries({}, inner.values, np.ones(inner_grid.n, dtype=bool))])
        if not isinstance(inner, Vector):
            raise bad_data("subquery is only allowed on instant vector or scalar expressions")
        series = [RSeries(s.labels, inner_grid.times[s.present], s.values[s.present]) for s in inner.series]
        return RangeVector([s for s in series if len(s.values)], ends, range_ms)

    # ---- unary minus ---------------------------------------------------------------------
    def negate(self, value: Value) -> Value:
        if isinstance(value, Scalar):
            return Scalar(-value.values)
        if isinstance(value, Vector):
            return Vector(merge_same_labels([VSeries(drop_name(s.labels), -s.values, s.present) for s in value.series]))
        raise bad_data("unary expression only allowed on expressions of type scalar or instant vector")

    def scalar_arg(self, expr: pp.Expr, grid: Grid) -> np.ndarray:
        value = self.eval(expr, grid)
        if not isinstance(value, Scalar):
            raise bad_data(f"expected a scalar, got {type(value).__name__.lower()}")
        return value.values
