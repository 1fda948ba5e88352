"""Snapshot of the store to one .npz file and back, so a restart keeps recent history.

Written to a temporary file and renamed, so a crash mid-write never leaves a torn snapshot.
No pickle: labels are JSON, samples raw arrays (``allow_pickle=False`` on load).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from tsdb.importer import Loaded, bulk_load
from tsdb.store import Store


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
    np.savez(tmp, labels=np.array(json.dumps(labels)), lengths=np.array(lengths, dtype=np.int64),
             times=np.concatenate(times) if times else np.array([], dtype=np.int64),
             values=np.concatenate(values) if values else np.array([], dtype=np.float64))
    os.replace(tmp, path)
    return len(labels)


def load_snapshot(store: Store, path: str | Path, keep_from_ms: int | None = None) -> Loaded:
    """Load a snapshot written by save_snapshot into an empty ``store``, each series from
    ``keep_from_ms`` on (a server restarted after a long stop keeps its retention from now)."""
    with np.load(path, allow_pickle=False) as data:
        labels = json.loads(str(data["labels"]))
        lengths, times, values = data["lengths"], data["times"], data["values"]
    offsets = np.concatenate([[0], np.cumsum(lengths)])

    def series():
        for i, pairs in enumerate(labels):
            lo, hi = offsets[i], offsets[i + 1]
            yield tuple((k, v) for k, v in pairs), times[lo:hi].tolist(), values[lo:hi].tolist()

    return bulk_load(store, series(), keep_from_ms)
