"""Test helpers: series in promtool's compact notation, loaded into a store."""
from __future__ import annotations

import math
import re

from tsdb.importer import bulk_load
from tsdb.store import STALE_NAN, Store, sorted_labels

_TERM = re.compile(r"^(_|stale|[-+]?[\d.e]+|NaN|[+-]?Inf)(?:([+-][\d.e]+)x(\d+))?(?:x(\d+))?$")


def expand(notation: str) -> list[float | None]:
    """promtool's input notation: '1+2x3' -> 1 3 5 7; '_x2' -> two missing; 'stale'; '5x2' -> 5 5 5."""
    out: list[float | None] = []
    for term in notation.split():
        match = _TERM.match(term)
        if not match:
            raise ValueError(f"bad term {term!r}")
        start, delta, count, repeat = match.groups()
        if start == "_":
            out.extend([None] * (int(repeat or 0) + 1 if repeat else 1))
            continue
        value = STALE_NAN if start == "stale" else float(start)
        if delta is not None:
            out.extend(value + float(delta) * i for i in range(int(count) + 1))
        elif repeat is not None:
            out.extend([value] * (int(repeat) + 1))
        else:
            out.append(value)
    return out


def parse_series(text: str) -> tuple:
    """'name{a="b"}' -> sorted label tuple."""
    match = re.match(r"^([a-zA-Z_:][\w:]*)?(?:\{(.*)\})?$", text.strip())
    name, body = match.groups()
    labels = [("__name__", name)] if name else []
    labels += re.findall(r'(\w+)="([^"]*)"', body or "")
    return sorted_labels(labels)


def load(series: dict[str, str], interval_s: float = 60.0, start_s: float = 0.0) -> Store:
    """A store holding each ``{selector: notation}`` series, one sample per interval from start."""
    store = Store(retention_s=10 * 365 * 86400)
    rows = []
    for selector, notation in series.items():
        times, values = [], []
        for i, value in enumerate(expand(notation)):
            if value is not None:
                times.append(round((start_s + i * interval_s) * 1000))
                values.append(value)
        rows.append((parse_series(selector), times, values))
    bulk_load(store, rows)
    return store


def nan_equal(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b
