"""The store's fast read paths (select_latest, select_windows, cached selections) against the
plain per-series ``select``, on a store with every irregularity: series that skip scrapes, go
stale, start late, move between targets, and retention."""
from __future__ import annotations

import random

import numpy as np
import pytest

from tsdb.labelset import ListMemo
from tsdb.matchers import EQUAL, REGEX, LabelMatcher
from tsdb.store import ABSENT_BITS, STALE_NAN_BITS, Store, sorted_labels

NAME_A = [LabelMatcher.of(EQUAL, "__name__", "a")]
LOOKBACK = 5_000


def L(name: str, **labels: str) -> tuple:
    return sorted_labels([("__name__", name), *labels.items()])


def irregular_store(seed: int) -> Store:
    rng = random.Random(seed)
    store = Store(retention_s=1e9)
    for step in range(60):
        for target in ("t1", "t2", "t3"):
            samples = [(L("a", target=target, x=str(i)), float(step * 10 + i))
                       for i in range(6) if rng.random() < 0.8 and not (i == 5 and step < 20)]
            if target == "t3" and step >= 30:  # x=9 moves from t2 to t3 halfway
                samples.append((L("a", target="t2", x="9"), float(step)))
            elif target == "t2" and step < 30:
                samples.append((L("a", target="t2", x="9"), float(step)))
            samples.append((L("b", target=target), 1.0))
            store.append_scrape(target, step * 1000 + {"t1": 0, "t2": 300, "t3": 700}[target], samples)
    return store


def reference_latest(store: Store, t_ms: int) -> dict:
    """The newest non-stale sample in [t - lookback, t] of each series, from ``select``."""
    out = {}
    for data in store.select(NAME_A, t_ms - LOOKBACK, t_ms):
        value = data.values[-1]
        if np.float64(value).view(np.uint64) != STALE_NAN_BITS:
            out[tuple(sorted(data.labels.items()))] = (int(data.timestamps[-1]), float(value))
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_select_latest_matches_the_per_series_reading(seed: int) -> None:
    store = irregular_store(seed)
    for t_ms in (0, 999, 15_300, 29_650, 30_700, 45_000, 59_700, 64_000, 70_000):
        latest = store.select_latest(NAME_A, t_ms, LOOKBACK)
        got = {labels.key: (int(ts), float(v)) for labels, v, ts in zip(latest.labels, latest.values, latest.times)}
        assert got == reference_latest(store, t_ms), t_ms


@pytest.mark.parametrize("seed", [1, 2])
def test_select_windows_holds_the_same_samples_as_select(seed: int) -> None:
    store = irregular_store(seed + 10)
    store.append_scrape("t1", 100_000, [(L("c", x="1"), 1.0)])  # a metric that never moved
    for store_case in (NAME_A, [LabelMatcher.of(EQUAL, "__name__", "c")], [LabelMatcher.of(REGEX, "__name__", "b")]):
        windows = store.select_windows(store_case, 20_000, 40_000)
        if store_case == NAME_A:
            assert windows is None  # x=9 moved between columns: the caller joins its blocks
            continue
        got = {}
        for window in windows:
            for labels, ts, vs in zip(window.labels, window.timestamps, window.values):
                keep = vs.view(np.uint64) != ABSENT_BITS
                got[labels.key] = (ts[keep].tolist(), vs[keep].tolist())
        expected = {tuple(sorted(d.labels.items())): (d.timestamps.tolist(), d.values.tolist())
                    for d in store.select(store_case, 20_000, 40_000)}
        assert got == expected


def test_a_new_series_of_one_metric_invalidates_only_that_metrics_selections() -> None:
    store = Store()
    store.append_scrape("t", 1000, [(L("a", x="1"), 1.0), (L("b", x="1"), 1.0)])
    first_a = store._selection(NAME_A)
    first_b = store._selection([LabelMatcher.of(EQUAL, "__name__", "b")])
    store.append_scrape("t", 2000, [(L("a", x="1"), 2.0), (L("a", x="2"), 2.0), (L("b", x="1"), 2.0)])
    assert store._selection([LabelMatcher.of(EQUAL, "__name__", "b")]) is first_b
    assert store._selection(NAME_A) is not first_a
    assert sorted(dict(labels)["x"] for labels in store.select_latest(NAME_A, 2000, LOOKBACK).labels) == ["1", "2"]


def test_retention_invalidates_cached_selections() -> None:
    store = Store(retention_s=2.0)
    for step in range(5):
        store.append_scrape("t", step * 1000, [(L("a", x="1"), float(step))])
    before = store._selection(NAME_A)
    store.apply_retention()
    assert store._selection(NAME_A) is not before
    windows = store.select_windows(NAME_A, 0, 10_000)
    assert windows[0].values.tolist() == [[2.0, 3.0, 4.0]]


def test_list_memo_remembers_by_identity_and_stays_bounded() -> None:
    memo = ListMemo(max_entries=2, max_rows=1000)
    labels = [{"x": str(i)} for i in range(100)]
    calls = []
    assert memo.get(labels, ("k",), lambda: calls.append(1) or 42) == 42
    assert memo.get(list(labels), ("k",), lambda: calls.append(1) or 43) == 42  # same members
    assert memo.get([dict(item) for item in labels], ("k",), lambda: calls.append(1) or 44) == 44  # equal, not same
    memo.get(labels[:80], ("k",), lambda: 0)
    assert len(memo._entries) <= 2 and memo._rows <= 1000
    assert len(calls) == 2


def test_list_memo_finds_the_same_list_by_its_identity_until_evicted() -> None:
    memo = ListMemo(max_entries=2, max_rows=1000)
    labels = [{"x": str(i)} for i in range(100)]
    assert memo.get(labels, ("k",), lambda: 1) == 1
    assert memo.get(labels, ("k",), lambda: 2) == 1  # the same object: its alias
    assert memo.get(labels, ("other",), lambda: 3) == 3  # another derivation of it: its own entry
    memo.get([dict(item) for item in labels], ("k",), lambda: 4)  # a third entry evicts the first
    assert len(memo._entries) == 2 and len(memo._aliases) == 2
    assert memo.get(labels, ("k",), lambda: 5) == 5  # the alias went with its entry
