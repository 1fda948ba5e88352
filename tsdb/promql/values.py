"""The values a PromQL expression evaluates to, over every step of a query at once.

Evaluation is vectorised over time, the way Prometheus's range evaluation works step by step:
an instant vector is a list of series, each with one value slot per step and a mask of the steps
where it has a sample. An instant query is the one-step case of the same code.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from typing import Iterable

import numpy as np

from tsdb import store as _store
from tsdb.labelset import distinct, drop_name, labels_key, without_names  # noqa: F401 - re-exported

STALE_NAN_BITS = np.uint64(_store.STALE_NAN_BITS)
ABSENT_BITS = np.uint64(_store.ABSENT_BITS)  # the store's padding: "no sample here"


class PromQLError(Exception):
    """A query failed. ``error_type`` is Prometheus's API errorType: bad_data (the query is
    wrong), execution (it failed while running), timeout, canceled, unavailable (not admitted)."""

    def __init__(self, message: str, error_type: str = "execution", limit: str | None = None) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.limit = limit  # the query limit that refused the query, if one did (for metrics)


def bad_data(message: str) -> PromQLError:
    return PromQLError(message, "bad_data")


def is_rust_panic(exc: BaseException) -> bool:
    """promql-parser's Rust code can panic on odd input; pyo3 raises that as a ``PanicException``,
    a BaseException (not an Exception) that must not escape as a 500."""
    return type(exc).__name__ == "PanicException"


@dataclass(frozen=True)
class Grid:
    """The evaluation timestamps of a query, in integer milliseconds like Prometheus."""

    times: np.ndarray  # int64 ms

    @classmethod
    def of(cls, start_ms: int, end_ms: int, step_ms: int) -> "Grid":
        return cls(np.arange(start_ms, end_ms + 1, max(step_ms, 1), dtype=np.int64))

    @property
    def n(self) -> int:
        return len(self.times)


@dataclass
class VSeries:
    labels: dict[str, str]
    values: np.ndarray  # float64 per step
    present: np.ndarray  # bool per step
    sample_times: np.ndarray | None = None  # int64 ms of the selected samples (selectors only)


class Vector:
    """An instant vector in one of two equivalent forms, each built from the other on demand:
    ``series`` (a VSeries per series), or columns: a label set per row and (rows x steps)
    ``values``/``present`` (and ``sample_times`` from a selector) matrices. The label list may
    be shared with other vectors and ``tsdb.labelset.MEMO``: never mutate it, build a new one.

    Why both: the hot paths (selectors, vector/scalar operators, vector matching, aggregation,
    rate) work on the columns with a few numpy calls for the whole vector, where a VSeries per
    series cost microseconds each; the rarer operations keep their per-series code.
    """

    __slots__ = ("_series", "_columns", "order")

    def __init__(self, series: Iterable[VSeries] | None = None, order: str | None = None) -> None:
        self._series: list[VSeries] | None = list(series) if series is not None else []
        self._columns: tuple | None = None
        self.order = order  # "asc"/"desc" when sort()/sort_desc() must order an instant result

    @classmethod
    def of_columns(cls, labels: list[dict[str, str]], values: np.ndarray, present: np.ndarray,
                   sample_times: np.ndarray | None = None, order: str | None = None) -> "Vector":
        vector = cls.__new__(cls)
        vector._series = None
        vector._columns = (labels, values, present, sample_times)
        vector.order = order
        return vector

    @property
    def series(self) -> list[VSeries]:
        if self._series is None:
            labels, values, present, times = self._columns
            self._series = [VSeries(labels[i], values[i], present[i], None if times is None else times[i])
                            for i in range(len(labels))]
        return self._series

    @series.setter
    def series(self, series: list[VSeries]) -> None:
        self._series, self._columns = list(series), None

    def columns(self, steps: int) -> tuple[list[dict[str, str]], np.ndarray, np.ndarray, np.ndarray | None]:
        """(labels, values, present, sample_times or None); ``steps`` shapes an empty vector."""
        if self._columns is None:
            series = self._series
            if not series:
                self._columns = ([], np.zeros((0, steps)), np.zeros((0, steps), dtype=bool), None)
            else:
                times = None
                if all(s.sample_times is not None for s in series):
                    times = np.array([s.sample_times for s in series], dtype=np.int64)
                self._columns = ([s.labels for s in series], np.array([s.values for s in series], dtype=np.float64),
                                 np.array([s.present for s in series], dtype=bool), times)
        return self._columns

    def rows(self) -> int:
        return len(self._series) if self._series is not None else len(self._columns[0])

    def __repr__(self) -> str:
        return f"Vector({self.series!r}, order={self.order!r})"


def rows_kept(labels: list, values: np.ndarray, present: np.ndarray, times: np.ndarray | None,
              keep: np.ndarray) -> Vector:
    """The vector of the rows where ``keep`` is set (all of them without a copy)."""
    if keep.all():
        return Vector.of_columns(labels, values, present, times)
    rows = np.flatnonzero(keep)
    return Vector.of_columns([labels[i] for i in rows.tolist()], values[rows], present[rows],
                             None if times is None else times[rows])


@dataclass
class Scalar:
    values: np.ndarray  # float64 per step


@dataclass
class String:
    value: str


@dataclass
class RSeries:
    labels: dict[str, str]
    timestamps: np.ndarray  # int64 ms, stale samples removed
    values: np.ndarray


@dataclass
class RBlock:
    """Series of a range vector with every sample real and the same number of them (a target's
    series in every scrape of the window): range functions compute them together."""

    labels: list[dict[str, str]]
    timestamps: np.ndarray  # int64 ms: one array for all rows, or a row per series
    values: np.ndarray  # float64, (len(labels), samples)


@dataclass
class RangeVector:
    """Raw samples plus, per step, the window [ends[i] - range_ms, ends[i]] to read; the series
    are ``series`` plus the rows of ``blocks``."""

    series: list[RSeries]
    ends: np.ndarray  # int64 ms per step
    range_ms: int
    matchers: list | None = None  # the selector's matchers, for absent_over_time
    blocks: list[RBlock] = field(default_factory=list)

    def all_series(self) -> list[RSeries]:
        """Every series as an RSeries; block rows share their block's timestamp array."""
        rows = [RSeries(labels, block.timestamps if block.timestamps.ndim == 1 else block.timestamps[i],
                        block.values[i])
                for block in self.blocks for i, labels in enumerate(block.labels)]
        return rows + self.series if rows else self.series


Value = Vector | Scalar | String | RangeVector


def format_labels(labels: dict[str, str]) -> str:
    """A label set as Prometheus's error messages write it: ``{__name__="x", a="1"}``."""
    inner = ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return "{" + inner + "}"


def one_name(labels: Iterable[dict[str, str]]) -> bool:
    """True when every label set has the same metric name: dropping it then cannot make two
    series equal, so ``merge_same_labels`` (which sorts every label set) can be skipped."""
    names = {item.get("__name__") for item in labels}
    return len(names) <= 1


def merge_same_rows(vector: Vector, steps: int) -> Vector:
    """``merge_same_labels`` for a columnar vector: returned as is when its label sets are
    distinct (the usual case, checked on the label sets' cached keys)."""
    if distinct(vector.columns(steps)[0]):
        return vector
    return Vector(merge_same_labels(vector.series))


def concat_vectors(parts: list[Vector], steps: int) -> Vector:
    """The rows of ``parts`` (results over disjoint sets of series) as one vector; rows whose
    label sets became equal across parts merge as ``merge_same_rows`` merges them."""
    parts = [p for p in parts if p.rows()]
    if len(parts) <= 1:
        return parts[0] if parts else Vector()
    columns = [p.columns(steps) for p in parts]
    times = None if any(c[3] is None for c in columns) else np.concatenate([c[3] for c in columns])
    vector = Vector.of_columns([item for c in columns for item in c[0]], np.concatenate([c[1] for c in columns]),
                               np.concatenate([c[2] for c in columns]), times)
    return merge_same_rows(vector, steps)


def merge_same_labels(series: list[VSeries]) -> list[VSeries]:
    """Series that ended up with equal label sets (a function dropped the name) merge into one;
    two of them with a sample at the same step is Prometheus's "same labelset" error."""
    groups: dict[tuple, list[VSeries]] = {}
    for s in series:
        groups.setdefault(labels_key(s.labels), []).append(s)
    if len(groups) == len(series):
        return series
    out = []
    for members in groups.values():
        if len(members) == 1:
            out.append(members[0])
            continue
        counts = np.sum([m.present for m in members], axis=0)
        if (counts > 1).any():
            raise PromQLError("vector cannot contain metrics with the same labelset")
        merged = VSeries(members[0].labels, members[0].values.copy(), members[0].present.copy())
        for m in members[1:]:
            merged.values[m.present] = m.values[m.present]
            merged.present |= m.present
        out.append(merged)
    return out
