"""Loading an OpenMetrics file (the input of ``promtool tsdb create-blocks-from openmetrics``)
into the store, so that one file gives identical samples here and in a real Prometheus.

A server loads history with a retention window measured from now (``keep_from_ms``): samples
older than it are left out at load, and counted, instead of being served at start and dropped by
the first housekeeping pass once the server's own samples move the store's newest time to now.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from tsdb.exposition import parse_exposition, scraped_series
from tsdb.store import Store, TimeColumn


class ImportError_(ValueError):
    """The file cannot be imported; the message says which sample and why."""


@dataclass(frozen=True)
class Loaded:
    """What a bulk load kept, and what it left out as older than the retention window."""

    series: int = 0
    samples: int = 0
    too_old_series: int = 0  # series with every sample older than the window (not created)
    too_old_samples: int = 0

    def describe(self, source: str, retention: str) -> str:
        """One line for the log: what was loaded from ``source``, what was left out and why."""
        line = f"loaded {self.series} series, {self.samples} samples from {source}"
        if self.too_old_samples:
            line += (f"; {self.too_old_samples} older samples not kept ({self.too_old_series} series entirely): "
                     f"older than the retention window ({retention} from now); raise --retention to keep them")
        return line


def import_openmetrics(store: Store, path: str | Path, keep_from_ms: int | None = None) -> Loaded:
    """Append every sample of the file at or after ``keep_from_ms``. Every sample needs a
    timestamp, as promtool requires. Series with identical timestamps share one column."""
    exposition = parse_exposition(Path(path).read_text(), openmetrics=True)
    by_series: dict[tuple, tuple[list[int], list[float]]] = {}
    for name, labels, value, timestamp in exposition.samples:
        if timestamp is None:
            raise ImportError_(f"{path}: sample of {name} has no timestamp")
        key = scraped_series(name, labels, ())
        times, values = by_series.setdefault(key, ([], []))
        times.append(timestamp)
        values.append(value)

    def ordered():
        for key, (times, values) in by_series.items():
            order = sorted(range(len(times)), key=times.__getitem__)
            yield key, [times[i] for i in order], [values[i] for i in order]

    return bulk_load(store, ordered(), keep_from_ms)


def bulk_load(store: Store, series: Iterable[tuple[tuple, Sequence[int], Sequence[float]]],
              keep_from_ms: int | None = None) -> Loaded:
    """Append (labels, ascending timestamps, values) series, each from ``keep_from_ms`` on;
    identical timestamp lists share one column."""
    columns: dict[bytes, TimeColumn] = {}
    kept = samples = old_series = old_samples = 0
    for labels, times, values in series:
        first = bisect.bisect_left(times, keep_from_ms) if keep_from_ms is not None else 0
        old_samples += first
        if first == len(times):
            old_series += 1
            continue
        times, values = times[first:], values[first:]
        column = TimeColumn()
        column.ts.frombytes(np.asarray(times, dtype=np.int64).tobytes())
        column = columns.setdefault(column.ts.tobytes(), column)
        store.append_series(labels, times, values, column=column)
        kept += 1
        samples += len(times)
    return Loaded(kept, samples, old_series, old_samples)
