"""What the ``server`` fixture (tests/tsdb/conftest.py) serves: ``PAGES`` maps a path to its page
(a test sets the pages it needs; the fixture empties it), and ``latest``, the newest value of each
series of a metric in a store."""
from __future__ import annotations

from tsdb.matchers import EQUAL, LabelMatcher
from tsdb.store import Store

PAGES: dict[str, str] = {}


def latest(store: Store, name: str, **labels: str) -> dict:
    matchers = [LabelMatcher.of(EQUAL, "__name__", name)] + [LabelMatcher.of(EQUAL, k, v) for k, v in labels.items()]
    return {tuple(sorted(d.labels.items())): float(d.values[-1]) for d in store.select(matchers, 0, 2**62)}
