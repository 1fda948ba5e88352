"""Snapshot of the store to one .npz file and back, so a restart keeps recent history.

Written to a temporary file, flushed to disk and renamed, so a crash mid-write never leaves a
torn snapshot. No pickle: labels are JSON, samples raw arrays (``allow_pickle=False`` on load).
A file that is not such a snapshot, or whose parts disagree, is a ``SnapshotError``.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import BinaryIO

import numpy as np

from tsdb.importer import Loaded, bulk_load
from tsdb.store import Store


COPY_CHUNK = 1 << 20


class SnapshotError(ValueError):
    """The file is not a readable snapshot (the reason says what is wrong with it)."""


def save_snapshot(store: Store, path: str | Path) -> int:
    """Write every series; returns how many.

    The samples stream from the store's walk (``Store.iter_series``, a piece at a time) into two
    unnamed files beside the snapshot, and from there into the archive, so that writing holds one
    piece in memory: the file is what ``np.savez`` wrote, which held a copy of every sample, then
    a second, joined copy, for as long as it wrote (five times the store's memory)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp.npz")
    labels: list[list] = []
    lengths: list[int] = []
    try:
        with tempfile.TemporaryFile(dir=path.parent) as times, tempfile.TemporaryFile(dir=path.parent) as values:
            for series_labels, ts, vs in store.iter_series():
                labels.append(list(series_labels))
                lengths.append(len(vs))
                times.write(np.ascontiguousarray(ts, dtype="<i8").data)
                values.write(np.ascontiguousarray(vs, dtype="<f8").data)
            total = sum(lengths)
            with open(tmp, "wb") as handle:
                with zipfile.ZipFile(handle, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
                    _write_array(archive, "labels", np.array(json.dumps(labels)))
                    _write_array(archive, "lengths", np.array(lengths, dtype=np.int64))
                    _write_raw(archive, "times", times, "<i8", total)
                    _write_raw(archive, "values", values, "<f8", total)
                handle.flush()
                os.fsync(handle.fileno())  # else a power cut after the rename can leave a named, empty file
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)  # a full disk: give back what the partial file took
        raise
    return len(labels)


def _write_array(archive: zipfile.ZipFile, name: str, array: np.ndarray) -> None:
    with archive.open(f"{name}.npy", "w", force_zip64=True) as entry:
        np.lib.format.write_array(entry, array, allow_pickle=False)


def _write_raw(archive: zipfile.ZipFile, name: str, raw: BinaryIO, dtype: str, count: int) -> None:
    """An .npy entry of ``count`` items of ``dtype`` whose bytes are the whole of ``raw``."""
    raw.seek(0)
    with archive.open(f"{name}.npy", "w", force_zip64=True) as entry:
        np.lib.format.write_array_header_1_0(entry, {"descr": np.dtype(dtype).str, "fortran_order": False,
                                                     "shape": (count,)})
        shutil.copyfileobj(raw, entry, COPY_CHUNK)


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
