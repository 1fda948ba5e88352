"""Snapshot of the store to one .npz file and back, so a restart keeps recent history.

Written to a temporary file, flushed to disk and renamed, so a crash mid-write never leaves a
torn snapshot. No pickle: labels are JSON, samples raw arrays (``allow_pickle=False`` on load).
A file that is not such a snapshot, or whose parts disagree, is a ``SnapshotError``.
"""
from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np

from tsdb.importer import Loaded, bulk_load
from tsdb.store import Store


class SnapshotError(ValueError):
    """The file is not a readable snapshot (the reason says what is wrong with it)."""


def save_snapshot(store: Store, path: str | Path) -> int:
    """Write every series; returns how many."""
    labels, lengths, times, values = [], [], [], []
    for series_labels, ts, vs in store.iter_series():
        labels.append(list(series_labels))
        lengths.append(len(vs))
        times.append(ts)
        values.append(vs)
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp.npz")
    try:
        with open(tmp, "wb") as handle:
            np.savez(handle, labels=np.array(json.dumps(labels)), lengths=np.array(lengths, dtype=np.int64),
                     times=np.concatenate(times) if times else np.array([], dtype=np.int64),
                     values=np.concatenate(values) if values else np.array([], dtype=np.float64))
            handle.flush()
            os.fsync(handle.fileno())  # else a power cut after the rename can leave a named, empty file
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)  # a full disk: give back what the partial file took
        raise
    return len(labels)


def load_snapshot(store: Store, path: str | Path, keep_from_ms: int | None = None) -> Loaded:
    """Load a snapshot written by save_snapshot into an empty ``store``, each series from
    ``keep_from_ms`` on (a server restarted after a long stop keeps its retention from now)."""
    labels, lengths, times, values = read_parts(path)
    offsets = np.concatenate([[0], np.cumsum(lengths)])

    def series():
        for i, pairs in enumerate(labels):
            lo, hi = offsets[i], offsets[i + 1]
            yield tuple((k, v) for k, v in pairs), times[lo:hi].tolist(), values[lo:hi].tolist()

    return bulk_load(store, series(), keep_from_ms)


def read_parts(path: str | Path) -> tuple[list, np.ndarray, np.ndarray, np.ndarray]:
    """The snapshot's label sets, series lengths, timestamps and values, checked to agree."""
    try:
        with np.load(path, allow_pickle=False) as data:
            labels = json.loads(str(data["labels"]))
            lengths, times, values = data["lengths"], data["times"], data["values"]
    except (zipfile.BadZipFile, EOFError, KeyError, ValueError) as exc:
        raise SnapshotError(f"not a snapshot: {type(exc).__name__}: {exc}") from None
    except RecursionError:
        raise SnapshotError("not a snapshot: its labels are nested too deeply") from None
    if not (isinstance(labels, list) and all(isinstance(pairs, list) and all(
            isinstance(pair, list) and len(pair) == 2 and all(isinstance(part, str) for part in pair)
            for pair in pairs) for pairs in labels)):
        raise SnapshotError("its labels are not lists of name/value pairs")
    if lengths.ndim != 1 or len(lengths) != len(labels) or (lengths < 0).any():
        raise SnapshotError(f"{len(labels)} label sets but {lengths.size} series lengths")
    if times.shape != values.shape or times.ndim != 1 or int(lengths.sum()) != len(times):
        raise SnapshotError(f"series lengths add up to {int(lengths.sum())} samples; "
                            f"it holds {times.size} times and {values.size} values")
    return labels, lengths, times, values
