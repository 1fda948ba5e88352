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

STALE_NAN_BITS = np.uint64(_store.STALE_NAN_BITS)
ABSENT_BITS = np.uint64(_store.ABSENT_BITS)  # the store's padding: "no sample here"


class PromQLError(Exception):
    """A query failed. ``error_type`` is Prometheus's API errorType: bad_data (the query is
    wrong), execution (it failed while running), timeout, canceled."""

    def __init__(self, message: str, error_type: str = "execution") -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message


def bad_data(message: str) -> PromQLError:
    return PromQLError(message, "bad_data")


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


@dataclass
class Vector:
    series: list[VSeries] = field(default_factory=list)
    order: str | None = None  # "asc"/"desc" when sort()/sort_desc() must order an instant result


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
class RangeVector:
    """Raw samples plus, per step, the window (ends[i] - range_ms, ends[i]] to read."""

    series: list[RSeries]
    ends: np.ndarray  # int64 ms per step
    range_ms: int
    matchers: list | None = None  # the selector's matchers, for absent_over_time


Value = Vector | Scalar | String | RangeVector


def labels_key(labels: dict[str, str]) -> tuple:
    return tuple(sorted(labels.items()))


def drop_name(labels: dict[str, str]) -> dict[str, str]:
    if "__name__" not in labels:
        return labels
    return {k: v for k, v in labels.items() if k != "__name__"}


def format_labels(labels: dict[str, str]) -> str:
    inner = ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return "{" + inner + "}"


def one_name(labels: Iterable[dict[str, str]]) -> bool:
    """True when every label set has the same metric name: dropping it then cannot make two
    series equal, so ``merge_same_labels`` (which sorts every label set) can be skipped."""
    names = {item.get("__name__") for item in labels}
    return len(names) <= 1


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
