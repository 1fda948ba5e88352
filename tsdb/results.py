"""Query results as plain objects, the same whichever engine answered (ours in process, or any
Prometheus-API server over HTTP), plus their Prometheus JSON form in both directions."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import numpy as np

from tsdb.labelset import MEMO
from tsdb.promql.aggregation import format_value


@dataclass
class Series:
    """One series of a result: a vector sample has one point, a matrix series many."""

    labels: dict[str, str]
    timestamps: list[float] = field(default_factory=list)  # seconds
    values: list[float] = field(default_factory=list)

    @property
    def value(self) -> float:
        """The value of a vector sample (its only point)."""
        return self.values[-1]


class QueryResult:
    """``result_type`` is Prometheus's resultType: vector, matrix, scalar or string.

    A vector also comes in columns (``of_vector``): one label set and one value per sample, all
    at ``timestamp``. Readers that only want (labels, value) pairs use ``samples()``, which reads
    the columns directly; ``series`` builds a ``Series`` per sample on first use. Why: a fleet-wide
    answer has 131,072 samples at 16,384 nodes, and an object per sample that nobody keeps cost
    more than the query itself. The label sets may be the engine's shared ones: never mutate them.
    """

    __slots__ = ("result_type", "_series", "_labels", "_values", "_arrays", "scalar", "string", "timestamp",
                 "shared_labels")

    def __init__(self, result_type: str, series: list[Series] | None = None, scalar: float | None = None,
                 string: str | None = None, timestamp: float | None = None) -> None:
        self.result_type = result_type
        self._series: list[Series] | None = series if series is not None else []
        self._labels: list[dict[str, str]] | None = None
        self._values: list[float] | None = None
        self._arrays: list[tuple[dict[str, str], np.ndarray, np.ndarray]] | None = None
        self.scalar = scalar
        self.string = string
        self.timestamp = timestamp  # of a scalar or string result, and of a columnar vector
        # True when the label sets are the engine's own, the same objects in every answer that
        # holds those series (see tsdb.labelset): facts read from them may be remembered.
        self.shared_labels = False

    @classmethod
    def of_vector(cls, labels: list[dict[str, str]], values: list[float], timestamp: float,
                  shared_labels: bool = False) -> "QueryResult":
        """A vector result in columns: sample ``i`` is ``labels[i]`` with ``values[i]`` at ``timestamp``."""
        result = cls("vector", timestamp=timestamp)
        result._series, result._labels, result._values = None, labels, values
        result.shared_labels = shared_labels
        return result

    @classmethod
    def of_matrix(cls, rows: list[tuple[dict[str, str], np.ndarray, np.ndarray]]) -> "QueryResult":
        """A matrix result as numpy arrays: (labels, times in seconds, values) per series.

        Why: a range query may answer tens of millions of points, and a Python float and list slot
        per point cost four times the evaluation itself (7 GB for one query, never given back).
        ``data_json`` encodes straight from the arrays; ``series`` builds lists on first use."""
        result = cls("matrix")
        result._series, result._arrays = None, rows
        return result

    @property
    def series(self) -> list[Series]:
        if self._arrays is not None:
            self._series = [Series(dict(labels), times.tolist(), values.tolist())
                            for labels, times, values in self._arrays]
            self._arrays = None
        if self._series is None:
            at = self.timestamp
            self._series = [Series(dict(labels), [at], [value]) for labels, value in zip(self._labels, self._values)]
            self._labels = self._values = None
        return self._series

    @series.setter
    def series(self, series: list[Series]) -> None:
        self._series, self._labels, self._values = series, None, None

    def samples(self) -> Iterator[tuple[dict[str, str], float]]:
        """(labels, value) of every vector sample, or of every matrix series' newest point."""
        if self._arrays is not None:
            return ((labels, float(values[-1])) for labels, _, values in self._arrays if len(values))
        if self._series is None:
            return zip(self._labels, self._values)
        return ((s.labels, s.values[-1]) for s in self._series if s.values)

    def columns(self) -> tuple[list[dict[str, str]], list[float]]:
        """(label sets, values) of every vector sample (or matrix series' newest point), as
        parallel lists; a columnar vector's own lists, so never mutate them."""
        if self._arrays is not None:
            self.series  # noqa: B018 - builds the lists this answer is read as
        if self._series is None:
            return self._labels, self._values
        kept = [s for s in self._series if s.values]
        return [s.labels for s in kept], [s.values[-1] for s in kept]

    def label_column(self, name: str) -> list[str | None]:
        """Label ``name``'s value in each row of ``columns()``, None where the sample has no
        such label. Shared (never mutate it): see ``_derived``."""
        labels, _ = self.columns()
        return self._derived(labels, ("label_column", name), lambda: [item.get(name) for item in labels])

    def label_present(self, name: str) -> np.ndarray:
        """Whether each row of ``columns()`` has label ``name`` with a value (bool array). Shared
        (never mutate it): see ``_derived``."""
        column = self.label_column(name)
        labels, _ = self.columns()
        return self._derived(labels, ("label_present", name),
                             lambda: np.fromiter(map(bool, column), bool, len(column)))

    def label_ints(self, name: str, missing: int = -1) -> np.ndarray:
        """Label ``name``'s value in each row of ``columns()`` as an integer (``int()`` of the
        text), ``missing`` where the label is unset or no integer. Shared (never mutate it):
        see ``_derived``."""
        labels, _ = self.columns()
        return self._derived(labels, ("label_ints", name, missing),
                             lambda: _as_ints(self.label_column(name), missing))

    def _derived(self, labels: list[dict[str, str]], what: tuple, compute: Callable[[], Any]) -> Any:
        """``compute()``, remembered while the engine hands out the same label-set objects.

        Reading labels is most of a reader's cost (131,072 samples at 16,384 nodes). When the
        label sets are the engine's own (``shared_labels``), the same objects come back in every
        answer that holds those series, so what is read from them is remembered by their
        identities (``tsdb.labelset.MEMO``, as the engine does for its groupings); readers get
        the column, never the label sets' identities. Every column of one list of label sets is
        kept in one entry: the memo's bound counts rows per entry, and an entry per column would
        take the overview of 16,384 nodes past it (its entries then evicted before their reuse)."""
        if not self.shared_labels:
            return compute()
        columns = MEMO.get(labels, ("result columns",), dict)  # (a fresh dict for a list too small to keep)
        found = columns.get(what)
        if found is None:
            found = columns.setdefault(what, compute())  # two threads at once: both compute, one is kept
        return found

    def __len__(self) -> int:
        if self._arrays is not None:
            return len(self._arrays)
        return len(self._labels) if self._series is None else len(self._series)

    def __repr__(self) -> str:
        return f"QueryResult({self.result_type!r}, {len(self)} series)"

    def data_json(self, check: Callable[[], None] | None = None) -> list[bytes]:
        """``to_json()`` as encoded JSON, in pieces to be sent one after another: a matrix is
        encoded series by series from its arrays, without a Python object per point. ``check``
        is called between series (a query's deadline covers its encoding)."""
        if self._arrays is None:
            return [_dumps(self.to_json())]
        chunks = [b'{"resultType":"matrix","result":[']
        time_texts = _TimeTexts()
        for i, (labels, times, values) in enumerate(self._arrays):
            if check is not None:
                check()
            points = '"],['.join([t + ',"' + v for t, v in zip(time_texts.of(times), _value_texts(values))])
            chunks.append(f'{"," if i else ""}{{"metric":{_dumps_text(labels)},"values":[[{points}"]]}}'.encode())
        chunks.append(b"]}")
        return chunks

    def to_json(self) -> dict[str, Any]:
        """The ``data`` member of Prometheus's /api/v1/query(_range) answer."""
        if self._arrays is not None:
            self.series  # noqa: B018 - builds the lists the JSON is made of
        if self.result_type in ("scalar", "string"):
            value = format_value(self.scalar) if self.result_type == "scalar" else self.string
            return {"resultType": self.result_type, "result": [_json_time(self.timestamp), value]}
        if self.result_type == "vector":
            if self._series is None:
                at = _json_time(self.timestamp)
                result = [{"metric": labels, "value": [at, sample_value(value)]}
                          for labels, value in zip(self._labels, self._values)]
            else:
                result = [{"metric": s.labels, "value": [_json_time(s.timestamps[-1]), sample_value(s.values[-1])]}
                          for s in self._series]
        else:
            result = [{"metric": s.labels,
                       "values": [[_json_time(t), sample_value(v)] for t, v in zip(s.timestamps, s.values)]}
                      for s in self.series]
        return {"resultType": self.result_type, "result": result}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "QueryResult":
        kind = data["resultType"]
        result = data["result"]
        if kind == "scalar":
            return cls(kind, scalar=_parse_value(result[1]), timestamp=float(result[0]))
        if kind == "string":
            return cls(kind, string=str(result[1]), timestamp=float(result[0]))
        if kind == "vector":
            if result and all(r["value"][0] == result[0]["value"][0] for r in result):
                # One evaluation time (every instant query): columns, the JSON's label dicts kept.
                return cls.of_vector([r["metric"] for r in result], [_parse_value(r["value"][1]) for r in result],
                                     float(result[0]["value"][0]))
            return cls(kind, [Series(dict(r["metric"]), [float(r["value"][0])], [_parse_value(r["value"][1])])
                              for r in result])
        return cls(kind, [Series(dict(r["metric"]), [float(t) for t, _ in r["values"]],
                                 [_parse_value(v) for _, v in r["values"]]) for r in result])


def _as_ints(texts: list[str | None], missing: int) -> np.ndarray:
    try:  # every row an integer (the usual case): C-level passes only
        return np.fromiter(map(int, texts), np.int64, len(texts))
    except (ValueError, TypeError, OverflowError):
        pass
    out = np.full(len(texts), missing, dtype=np.int64)
    for row, text in enumerate(texts):
        try:
            out[row] = int(text)
        except (ValueError, TypeError, OverflowError):
            continue
    return out


def _dumps_text(content: Any) -> str:
    # As Starlette's JSONResponse renders: compact, UTF-8 kept, no NaN (values are strings).
    return json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def _dumps(content: Any) -> bytes:
    return _dumps_text(content).encode()


class _TimeTexts:
    """Times as Prometheus writes them, each spelled once per answer (series share their steps)."""

    def __init__(self) -> None:
        self._texts: dict[float, str] = {}

    def of(self, seconds: np.ndarray) -> list[str]:
        texts = self._texts
        out = list(map(texts.get, seconds.tolist()))
        if None in out:
            for i, t in enumerate(seconds.tolist()):
                if out[i] is None:
                    out[i] = texts[t] = _dumps_text(_json_time(t))
        return out


def sample_value(value: float) -> str:
    """A vector's or a matrix's value as Prometheus's API writes it (web/api/v1 ``marshalValue``):
    Go's shortest 'f' spelling, but 'e' below 1e-6 and from 1e21 (``6.21e-08``, ``1e+21``); a
    scalar answer is always 'f' (``format_value``)."""
    magnitude = abs(value)
    if math.isfinite(value) and magnitude != 0 and (magnitude < 1e-6 or magnitude >= 1e21):
        return repr(value)  # Python's exponent is Go's: signed, at least two digits
    return format_value(value)


def _value_texts(values: np.ndarray) -> list[str]:
    """``sample_value`` of each value, a few numpy passes instead of a call per value: whole
    numbers as integers, the rest by ``repr`` (the shortest round trip, as Go writes them), and the
    few that ``repr`` writes differently (NaN, infinities, exponents) by ``sample_value``."""
    with np.errstate(invalid="ignore"):
        magnitude = np.abs(values)
        negative_zero = (values == 0) & np.signbit(values)  # Go writes "-0"
        whole = (values == np.trunc(values)) & (magnitude < 1e16) & ~negative_zero
        odd = ~np.isfinite(values) | (magnitude >= 1e16) | ((magnitude < 1e-4) & (values != 0)) | negative_zero
    if whole.all():
        return list(map(str, values.astype(np.int64).tolist()))
    out = list(map(repr, values.tolist()))
    for i, text in zip(np.flatnonzero(whole).tolist(), map(str, values[whole].astype(np.int64).tolist())):
        out[i] = text
    for i in np.flatnonzero(odd & ~whole).tolist():
        out[i] = sample_value(float(values[i]))
    return out


def _json_time(seconds: float | None) -> float | int:
    # Prometheus writes times as seconds with millisecond precision, integers without a fraction.
    millis = round((seconds or 0.0) * 1000)
    return millis // 1000 if millis % 1000 == 0 else millis / 1000


def _parse_value(text: str) -> float:
    return float(text)  # Python reads Prometheus's "NaN", "+Inf" and "-Inf" as they are
