"""The engine's entry points: instant and range queries over a store, with Prometheus's limits
and error types, returning ``tsdb.results.QueryResult``."""
from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import promql_parser as pp

from cwkernel.gcpause import gc_paused
from tsdb.memory import release_free_memory
from tsdb.promql.evaluator import Evaluator, SeriesSource
from tsdb.promql.gate import MemoryBound, QueryGate, Ticket
from tsdb.promql.limits import QueryGuard, QueryLimits
from tsdb.promql.querytext import check_query_text
from tsdb.promql.values import Grid, PromQLError, RangeVector, Scalar, String, Vector, bad_data, is_rust_panic
from tsdb.regex import RegexError, compile_anchored
from tsdb.results import QueryResult

MAX_POINTS_PER_SERIES = 11_000
END_BEFORE_START = "end timestamp must not be before start time"
ZERO_STEP = "zero or negative query resolution step widths are not accepted. Try a positive integer"
# After a query that held this many samples, freed heap memory is handed back to the system.
_TRIM_AFTER_SAMPLES = 1_000_000


def _register_functions() -> None:
    # promql-parser follows Prometheus 2.45+, which no longer knows holt_winters; 2.42 does.
    try:
        pp.register_extra_functions([pp.Function(
            "holt_winters", [pp.ValueType.Matrix, pp.ValueType.Scalar, pp.ValueType.Scalar], pp.ValueType.Vector)])
    except ValueError:
        pass  # already registered (a built-in in another promql-parser release)


_register_functions()
DEFAULT_LOOKBACK_S = 300.0


def to_millis(seconds: float) -> int:
    return round(seconds * 1000)


def parse_query(query: str) -> pp.Expr:
    """The query's tree; bad_data when it does not parse or would be too expensive to parse
    (``tsdb.promql.querytext``: checked before the parser sees it)."""
    shape = check_query_text(query)
    try:
        return _PARSED.get(query, shape.parse_bytes)
    except (ValueError, TypeError) as exc:
        raise bad_data(f"parse error: {_parser_message(str(exc))}") from None
    except RecursionError:
        raise bad_data("query is nested too deeply to parse") from None
    except BaseException as exc:  # noqa: BLE001 - a Rust panic is a BaseException
        if is_rust_panic(exc):
            raise bad_data(f"parse error: the parser failed on this query ({str(exc)[:200]})") from None
        raise


def _parser_message(message: str) -> str:
    """promql-parser checks matcher patterns with Rust's regex crate; where Go refuses the
    pattern too, say it as Prometheus does (Go's message)."""
    if message.startswith(_ILLEGAL_REGEX):
        try:
            compile_anchored(message[len(_ILLEGAL_REGEX):])
        except RegexError as exc:
            return str(exc)
    return message


_ILLEGAL_REGEX = "illegal regex for "


class _ParseCache:
    """Trees of recent queries, least recently used dropped first. Rules and dashboard panels
    send the same queries every cycle and evaluation never changes a tree, so one parse serves
    them all. Bounded by the trees' estimated memory, not their number: a tree estimated over
    ``MAX_ENTRY_BYTES`` is never kept (one parser bomb kept 1.25 GB here)."""

    MAX_BYTES = 64 << 20
    MAX_ENTRY_BYTES = 1 << 20

    def __init__(self) -> None:
        self._entries: OrderedDict[str, tuple[pp.Expr, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, query: str, cost: int) -> pp.Expr:
        with self._lock:
            entry = self._entries.get(query)
            if entry is not None:
                self._entries.move_to_end(query)
                return entry[0]
        expr = pp.parse(query)
        if cost <= self.MAX_ENTRY_BYTES:
            with self._lock:
                if query not in self._entries:
                    self._entries[query] = (expr, cost)
                    self._bytes += cost
                while self._bytes > self.MAX_BYTES:
                    _, (_, dropped) = self._entries.popitem(last=False)
                    self._bytes -= dropped
        return expr


_PARSED = _ParseCache()


def _static_type(expr: pp.Expr) -> str:
    while isinstance(expr, pp.ParenExpr):
        expr = expr.expr
    if isinstance(expr, (pp.MatrixSelector, pp.SubqueryExpr)):
        return "range vector"
    if isinstance(expr, pp.StringLiteral):
        return "string"
    return "other"


@dataclass
class QueryStats:
    """Counters the server exposes on /metrics (with the gate's)."""

    queries: int = 0
    errors: int = 0
    seconds: float = 0.0
    refused: Counter[str] = field(default_factory=Counter)  # limit -> queries it stopped


class Engine:
    """Instant and range queries over ``source``. Every query has ``limits.timeout_s`` and
    ``limits.max_samples``; a query from outside passes the ``gate`` first (``ticket``: see
    ``tsdb.promql.gate``), the server's own queries (no ticket) take the reserved lane."""

    def __init__(self, source: SeriesSource, lookback_s: float = DEFAULT_LOOKBACK_S,
                 limits: QueryLimits | None = None, memory: MemoryBound | None = None) -> None:
        self.source = source
        self.lookback_ms = to_millis(lookback_s)
        self.limits = limits or QueryLimits()
        self.gate = QueryGate(self.limits, memory)
        self.stats = QueryStats()
        self._stats_lock = threading.Lock()

    def instant(self, query: str, at: float | None = None, ticket: Ticket | None = None) -> QueryResult:
        """Evaluate ``query`` at ``at`` (seconds; default now)."""
        at_ms = to_millis(time.time() if at is None else at)
        return self._timed(ticket, lambda guard: self._instant(query, at_ms, guard))

    def range(self, query: str, start: float, end: float, step: float, ticket: Ticket | None = None) -> QueryResult:
        """Evaluate ``query`` at start, start+step, ... <= end (seconds); a matrix result."""
        return self._timed(ticket, lambda guard: self._range(query, to_millis(start), to_millis(end),
                                                             to_millis(step), guard))

    def guard(self, ticket: Ticket | None = None) -> QueryGuard:
        """A new query's limits: from its arrival at the gate, or from now for the server's own."""
        if ticket is not None:
            return ticket.guard(self.limits.max_samples)
        return QueryGuard(time.monotonic() + self.limits.timeout_s, self.limits.max_samples)

    def _timed(self, ticket: Ticket | None, run: Callable[[QueryGuard], QueryResult]) -> QueryResult:
        began = time.perf_counter()
        guard = self.guard(ticket)
        lane = self.gate.internal() if ticket is None else contextlib.nullcontext()
        try:
            with lane, gc_paused():  # cwkernel/gcpause.py: ~1 s per full collection at 131,072 GPUs
                return run(guard)
        except RecursionError:
            # The query-text limits keep recursion shallow; a thread already deep in its own
            # stack can still run out: the query's fault as far as the client can tell.
            self._failed(None)
            raise bad_data("query is nested too deeply to evaluate") from None
        except MemoryError:
            # Under the sample limit, yet the process could not get the memory (other queries,
            # a low --query-max-samples for the machine): this query fails, the server goes on.
            self._failed("memory")
            raise PromQLError("query processing ran out of memory in query execution") from None
        except PromQLError as exc:
            self._failed(exc.limit)
            raise
        finally:
            with self._stats_lock:
                self.stats.queries += 1
                self.stats.seconds += time.perf_counter() - began
            if guard.peak >= _TRIM_AFTER_SAMPLES:
                release_free_memory()

    def refusals(self) -> Counter[str]:
        """Queries stopped by each limit, at the gate or while evaluating."""
        with self._stats_lock:
            counts = Counter(self.stats.refused)
        return counts + self.gate.refusals()

    def _failed(self, limit: str | None) -> None:
        with self._stats_lock:
            self.stats.errors += 1
            if limit:
                self.stats.refused[limit] += 1

    def _instant(self, query: str, at_ms: int, guard: QueryGuard) -> QueryResult:
        expr = parse_query(query)
        value = Evaluator(self.source, at_ms, at_ms, self.lookback_ms, guard=guard).eval(expr, Grid.of(at_ms, at_ms, 1))
        seconds = at_ms / 1000
        if isinstance(value, Scalar):
            return QueryResult("scalar", scalar=float(value.values[0]), timestamp=seconds)
        if isinstance(value, String):
            return QueryResult("string", string=value.value, timestamp=seconds)
        if isinstance(value, RangeVector):
            return QueryResult.of_matrix(_matrix_of_range(value))
        labels, values, present, _ = value.columns(1)
        # Columns, the engine's shared label sets included (a result's readers never mutate them):
        # no object per sample (131,072 of them for a per-GPU query at 16,384 nodes).
        kept = present[:, 0]
        if value.order:
            rows = _sorted_by_value(np.flatnonzero(kept).tolist(), values[:, 0].tolist(), value.order == "desc")
        elif not kept.all():
            rows = np.flatnonzero(kept).tolist()
        else:
            return QueryResult.of_vector(labels, values[:, 0].tolist(), seconds, shared_labels=True)
        column = values[:, 0]
        return QueryResult.of_vector([labels[i] for i in rows], column[rows].tolist(), seconds, shared_labels=True)

    def _range(self, query: str, start_ms: int, end_ms: int, step_ms: int, guard: QueryGuard) -> QueryResult:
        if end_ms < start_ms:
            raise bad_data(END_BEFORE_START)
        if step_ms <= 0:
            raise bad_data(ZERO_STEP)
        if (end_ms - start_ms) / step_ms > MAX_POINTS_PER_SERIES:
            raise bad_data("exceeded maximum resolution of 11,000 points per timeseries. "
                           "Try decreasing the query resolution (?step=XX)")
        expr = parse_query(query)
        kind = _static_type(expr)
        if kind != "other":
            raise bad_data(f'invalid expression type "{kind}" for range query, must be Scalar or instant Vector')
        grid = Grid.of(start_ms, end_ms, step_ms)
        guard.charge(grid.n)
        value = Evaluator(self.source, start_ms, end_ms, self.lookback_ms, guard=guard).eval(expr, grid)
        seconds = grid.times / 1000.0
        if isinstance(value, Scalar):
            return QueryResult.of_matrix([({}, seconds, value.values)])
        if not isinstance(value, Vector):
            raise bad_data("range queries must return a scalar or an instant vector")
        labels, values, present, _ = value.columns(grid.n)
        complete = present.all(axis=1)
        rows = np.flatnonzero(present.any(axis=1)).tolist()
        rows.sort(key=lambda row: sorted(labels[row].items()))
        # A series present at every step keeps views of the evaluation's arrays, no copy.
        return QueryResult.of_matrix([(dict(labels[row]), seconds, values[row]) if complete[row] else
                                      (dict(labels[row]), seconds[present[row]], values[row][present[row]])
                                      for row in rows])


def _matrix_of_range(value: RangeVector) -> list[tuple[dict[str, str], np.ndarray, np.ndarray]]:
    end = int(value.ends[0])
    out = []
    for s in value.all_series():
        keep = (s.timestamps >= end - value.range_ms) & (s.timestamps <= end)
        if keep.any():
            out.append((dict(s.labels), s.timestamps[keep] / 1000.0, s.values[keep]))
    return out


def _sorted_by_value(rows: list[int], values: list[float], descending: bool) -> list[int]:
    """``rows`` ordered by their values; Prometheus orders NaN first for sort() and last for
    sort_desc()."""
    def key(row: int) -> tuple:
        v = values[row]
        return (v == v, v if v == v else 0.0)
    return sorted(rows, key=key, reverse=descending)
