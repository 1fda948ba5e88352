"""A snapshot (``serve --snapshot``, every 5 minutes) is written a piece at a time: the server's
memory grows by a piece, not by copies of the whole store, and scrapes and rules append between
the pieces instead of waiting on the store's lock until the whole store is copied.

Observed before (`python -m bench.bench_snapshot`: 140 targets x 200 series x 1,440 samples): a
store of 395 MB RSS peaked at 2,258 MB while its snapshot was written (every sample copied under
the lock, then the copies joined into one array per part, then written), and a scrape waited
637 ms for the store's lock. At the demo's size that is gigabytes every five minutes.
"""
from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np

from tsdb import store as store_module
from tsdb.snapshot import load_snapshot, save_snapshot
from tsdb.store import Store, TimeColumn

TARGETS, SERIES, SAMPLES = 4, 25, 100_000  # 10 million samples: 160 MB of timestamps and values


def big_store() -> Store:
    store = Store(retention_s=10**9)
    timestamps = np.arange(SAMPLES, dtype=np.int64) * 5000
    for target in range(TARGETS):
        column = TimeColumn()
        column.ts.extend(timestamps)
        for series in range(SERIES):
            store.append_series((("__name__", "gpu_util"), ("gpu", str(series)), ("instance", f"n{target}")),
                                timestamps, np.full(SAMPLES, float(series)), column=column)
    return store


def test_a_snapshot_is_written_a_piece_at_a_time(tmp_path: Path) -> None:
    store = big_store()
    tracemalloc.start()
    try:
        written = save_snapshot(store, tmp_path / "store.npz")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert written == TARGETS * SERIES
    assert peak < 64 << 20, f"{peak:,} bytes allocated to write 160 MB of samples"
    # and it is the same snapshot: every series back, sample for sample
    loaded = Store(retention_s=10**9)
    load_snapshot(loaded, tmp_path / "store.npz")
    assert loaded.stats()["series"] == TARGETS * SERIES
    for labels, timestamps, values in loaded.iter_series():
        assert len(values) == SAMPLES and values[0] == float(dict(labels)["gpu"]) and timestamps[-1] == (SAMPLES - 1) * 5000


def test_the_store_is_read_for_a_snapshot_in_pieces(monkeypatch) -> None:
    """Between two pieces the lock is free: a scrape that arrives mid-snapshot is stored then (its
    samples reach the disk through the write-ahead log, cut before the snapshot began)."""
    monkeypatch.setattr(store_module, "SNAPSHOT_PIECE_SAMPLES", 1_000_000)
    store = big_store()
    walk = store.iter_series()
    next(walk)  # the first piece is read
    assert store._lock.acquire(blocking=False)  # not held by the walk between pieces
    store._lock.release()
    store.append_scrape("n-new", (SAMPLES + 1) * 5000, [((("__name__", "up"), ("instance", "n-new")), 1.0)])
    assert store.stats()["series"] == TARGETS * SERIES + 1
    assert len(list(walk)) == TARGETS * SERIES - 1  # the series there when the walk began


def test_a_snapshot_is_loaded_a_series_at_a_time(tmp_path: Path) -> None:
    """A server restarted after the OOM killer ended it must not need more memory to load its
    snapshot than it had when it was killed: before, every timestamp and value of the file was
    read into memory beside the store being built (and each series again as Python lists)."""
    save_snapshot(big_store(), tmp_path / "store.npz")
    loaded = Store(retention_s=10**9)
    tracemalloc.start()
    try:
        load_snapshot(loaded, tmp_path / "store.npz")
        held, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert loaded.stats()["series"] == TARGETS * SERIES
    assert peak - held < 32 << 20, f"the store took {held:,} bytes, loading it {peak:,} at its peak"


def test_a_target_s_timestamps_are_written_once_not_once_per_series(tmp_path: Path) -> None:
    """The series of one target share their timestamps: the file held them once per series, half
    of it (621 MB for bench_snapshot's 40 million samples). Now a series whose timestamps equal an
    earlier one's refers to them; the file is the values and each column's timestamps once."""
    store = big_store()
    save_snapshot(store, tmp_path / "store.npz")
    values_bytes = TARGETS * SERIES * SAMPLES * 8
    assert (tmp_path / "store.npz").stat().st_size < values_bytes * 1.1
    loaded = Store(retention_s=10**9)
    load_snapshot(loaded, tmp_path / "store.npz")
    assert sorted(loaded.iter_series(), key=lambda s: s[0]) and all(
        np.array_equal(ts, np.arange(SAMPLES) * 5000) for _, ts, _ in loaded.iter_series())


def test_a_snapshot_written_before_the_timestamps_were_shared_still_loads(tmp_path: Path) -> None:
    """Snapshots from before (no ``shared`` part: every series with its own timestamps) load as they did."""
    import json

    np.savez(tmp_path / "old.npz", labels=np.array(json.dumps([[["__name__", "up"], ["instance", "a"]],
                                                               [["__name__", "up"], ["instance", "b"]]])),
             lengths=np.array([2, 1], dtype=np.int64), times=np.array([1000, 2000, 3000], dtype=np.int64),
             values=np.array([1.0, 0.0, 1.0]))
    loaded = Store(retention_s=10**9)
    assert load_snapshot(loaded, tmp_path / "old.npz").samples == 3
    assert {dict(labels)["instance"]: ts.tolist() for labels, ts, _ in loaded.iter_series()} == \
        {"a": [1000, 2000], "b": [3000]}


def test_timestamps_shared_across_more_columns_than_the_window_come_back_whole(tmp_path: Path, monkeypatch) -> None:
    """Series of many targets interleaved (each target's series created over several scrapes),
    more columns than the window of arrays a reference may reach: every series comes back with its
    own timestamps and values."""
    from tsdb import snapshot as snapshot_module

    store = Store(retention_s=10**9)
    columns = [TimeColumn() for _ in range(7)]
    for target, column in enumerate(columns):
        column.ts.extend(np.arange(5 + target, dtype=np.int64) * 1000 + target)
    expected = {}
    for series in range(4):
        for target, column in enumerate(columns):
            labels = (("__name__", "m"), ("instance", f"n{target}"), ("s", str(series)))
            values = np.arange(len(column.ts), dtype=float) + series
            store.append_series(labels, np.frombuffer(column.ts, dtype=np.int64), values, column=column)
            expected[labels] = (list(column.ts), values.tolist())
    # 7 columns in turn: with a window of 3 no reference reaches back far enough; with 8, all but
    # each column's first series refer to it.
    for window, references in ((3, 0), (8, 21)):
        monkeypatch.setattr(snapshot_module, "SHARED_WINDOW", window)
        save_snapshot(store, tmp_path / "store.npz")
        with np.load(tmp_path / "store.npz") as parts:
            assert int((parts["shared"] >= 0).sum()) == references
        loaded = Store(retention_s=10**9)
        load_snapshot(loaded, tmp_path / "store.npz")
        assert {labels: (ts.tolist(), vs.tolist()) for labels, ts, vs in loaded.iter_series()} == expected
