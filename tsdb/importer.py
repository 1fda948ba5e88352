"""Loading an OpenMetrics file (the input of ``promtool tsdb create-blocks-from openmetrics``)
into the store, so that one file gives identical samples here and in a real Prometheus."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

from tsdb.exposition import parse_exposition
from tsdb.store import Store, TimeColumn, sorted_labels


class ImportError_(ValueError):
    """The file cannot be imported; the message says which sample and why."""


def import_openmetrics(store: Store, path: str | Path) -> int:
    """Append every sample of the file; returns the number of series. Every sample needs a
    timestamp, as promtool requires. Series with identical timestamps share one column."""
    exposition = parse_exposition(Path(path).read_text(), openmetrics=True)
    by_series: dict[tuple, tuple[list[int], list[float]]] = {}
    for name, labels, value, timestamp in exposition.samples:
        if timestamp is None:
            raise ImportError_(f"{path}: sample of {name} has no timestamp")
        key = sorted_labels((("__name__", name),) + labels)
        times, values = by_series.setdefault(key, ([], []))
        times.append(timestamp)
        values.append(value)
    def ordered():
        for key, (times, values) in by_series.items():
            order = sorted(range(len(times)), key=times.__getitem__)
            yield key, [times[i] for i in order], [values[i] for i in order]

    return bulk_load(store, ordered())


def bulk_load(store: Store, series: Iterable[tuple[tuple, Sequence[int], Sequence[float]]]) -> int:
    """Append (labels, timestamps, values) series; identical timestamp lists share one column."""
    columns: dict[bytes, TimeColumn] = {}
    count = 0
    for labels, times, values in series:
        column = TimeColumn()
        column.ts.extend(times)
        column = columns.setdefault(column.ts.tobytes(), column)
        store.append_series(labels, times, values, column=column)
        count += 1
    return count
