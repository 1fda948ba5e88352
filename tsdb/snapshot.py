"""Snapshot of the store to one .npz file and back, so a restart keeps recent history.

Written to a temporary file, flushed to disk and renamed, so a crash mid-write never leaves a
torn snapshot. No pickle: labels are JSON, samples raw arrays (``allow_pickle=False`` on load).
A file that is not such a snapshot, or whose parts disagree, is a ``SnapshotError``.

Parts: ``labels`` (one JSON list of label sets), ``lengths`` (samples per series), ``shared``
(per series, -1 when its timestamps are in ``times``, else the ordinal among those written of the
earlier series whose timestamps it has: the series of one target share their column's, and
written once per series they were half the file), ``times`` and ``values``. A file without
``shared`` (written before it) has every series' timestamps in ``times``.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import BinaryIO, Iterator

import numpy as np

from tsdb.importer import Loaded, bulk_load
from tsdb.store import Store


COPY_CHUNK = 1 << 20
# Timestamp arrays a series may share: the last this many written. The reader keeps as many, so a
# reference is always to one it holds (about 200 columns at 140 nodes: targets and rule groups).
SHARED_WINDOW = 1024


class SnapshotError(ValueError):
    """The file is not a readable snapshot (the reason says what is wrong with it)."""


def save_snapshot(store: Store, path: str | Path) -> int:
    """Write every series; returns how many.

    The series stream from the store's walk (``Store.iter_series``, a piece at a time) into three
    unnamed files beside the snapshot (label sets, timestamps, values), and from there into the
    archive, so that writing holds one piece in memory: the file is what ``np.savez`` wrote, which
    held a copy of every sample, then a second, joined copy, for as long as it wrote (five times
    the store's memory). The label sets are one JSON list, stored as numpy stores a string (UTF-32)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp.npz")
    lengths: list[int] = []
    shared: list[int] = []
    recent = _RecentTimes()
    try:
        with tempfile.TemporaryFile(dir=path.parent) as labels, tempfile.TemporaryFile(dir=path.parent) as times, \
                tempfile.TemporaryFile(dir=path.parent) as values:
            characters = _write_text(labels, "[")
            for series_labels, ts, vs in store.iter_series():
                characters += _write_text(labels, ("," if lengths else "") + json.dumps(list(series_labels)))
                lengths.append(len(vs))
                ordinal = recent.find(ts)
                shared.append(ordinal)
                if ordinal < 0:
                    recent.add(ts)
                    times.write(np.ascontiguousarray(ts, dtype="<i8").data)
                values.write(np.ascontiguousarray(vs, dtype="<f8").data)
            characters += _write_text(labels, "]")
            total = sum(lengths)
            own = sum(length for length, ordinal in zip(lengths, shared) if ordinal < 0)
            with open(tmp, "wb") as handle:
                with zipfile.ZipFile(handle, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
                    _write_raw(archive, "labels", labels, f"<U{characters}", ())
                    _write_array(archive, "lengths", np.array(lengths, dtype=np.int64))
                    _write_array(archive, "shared", np.array(shared, dtype=np.int64))
                    _write_raw(archive, "times", times, "<i8", (own,))
                    _write_raw(archive, "values", values, "<f8", (total,))
                handle.flush()
                os.fsync(handle.fileno())  # else a power cut after the rename can leave a named, empty file
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)  # a full disk: give back what the partial file took
        raise
    return len(lengths)


class _RecentTimes:
    """The last ``SHARED_WINDOW`` timestamp arrays written, by their ordinal among those written,
    found by length and ends, then compared whole."""

    def __init__(self) -> None:
        self.count = 0
        self._by_key: dict[tuple[int, int, int], tuple[int, np.ndarray]] = {}

    def find(self, ts: np.ndarray) -> int:
        """The ordinal of an array equal to ``ts`` still in the window, else -1."""
        if not len(ts):
            return -1
        found = self._by_key.get((len(ts), int(ts[0]), int(ts[-1])))
        if found is None or self.count - found[0] > SHARED_WINDOW or not np.array_equal(found[1], ts):
            return -1
        return found[0]

    def add(self, ts: np.ndarray) -> None:
        """``ts`` was written: it has the next ordinal."""
        if len(ts):
            self._by_key[(len(ts), int(ts[0]), int(ts[-1]))] = (self.count, ts)
            if len(self._by_key) > 2 * SHARED_WINDOW:  # the window's arrays, not every one written
                self._by_key = {k: v for k, v in self._by_key.items() if self.count - v[0] < SHARED_WINDOW}
        self.count += 1


def _write_text(raw: BinaryIO, text: str) -> int:
    """``text`` appended as numpy holds a string (UTF-32, little-endian); its length in characters."""
    raw.write(text.encode("utf-32-le"))
    return len(text)


def _write_array(archive: zipfile.ZipFile, name: str, array: np.ndarray) -> None:
    with archive.open(f"{name}.npy", "w", force_zip64=True) as entry:
        np.lib.format.write_array(entry, array, allow_pickle=False)


def _write_raw(archive: zipfile.ZipFile, name: str, raw: BinaryIO, dtype: str, shape: tuple[int, ...]) -> None:
    """An .npy entry of ``shape`` and ``dtype`` whose bytes are the whole of ``raw``."""
    raw.seek(0)
    with archive.open(f"{name}.npy", "w", force_zip64=True) as entry:
        np.lib.format.write_array_header_1_0(entry, {"descr": np.dtype(dtype).str, "fortran_order": False,
                                                     "shape": shape})
        shutil.copyfileobj(raw, entry, COPY_CHUNK)


def load_snapshot(store: Store, path: str | Path, keep_from_ms: int | None = None) -> Loaded:
    """Load a snapshot written by save_snapshot into an empty ``store``, each series from
    ``keep_from_ms`` on (a server restarted after a long stop keeps its retention from now).

    The archive is checked whole first (every part's checksum, the parts' agreement), then its
    samples are read a series at a time: loading holds the store it builds and one series, not
    the file's arrays beside it (a server the OOM killer ended must be able to load what it
    had). A file that is not a readable snapshot is a ``SnapshotError`` before anything is loaded."""
    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
            if damaged is not None:
                raise SnapshotError(f"not a snapshot: {damaged} fails its checksum")
            labels, lengths, shared = _read_index(archive)
            total = int(lengths.sum())
            with archive.open("times.npy") as times, archive.open("values.npy") as values:
                _expect_header(times, np.dtype("<i8"), int(lengths[shared < 0].sum()), "times")
                _expect_header(values, np.dtype("<f8"), total, "values")
                return bulk_load(store, _series(labels, lengths, shared, times, values), keep_from_ms)
    except SnapshotError:
        raise
    except (zipfile.BadZipFile, EOFError, KeyError, ValueError) as exc:
        raise SnapshotError(f"not a snapshot: {type(exc).__name__}: {exc}") from None
    except OSError as exc:  # a directory at the path, a read error: the watching must not stop for it
        raise SnapshotError(f"cannot read: {exc.strerror or exc}") from None


def _read_index(archive: zipfile.ZipFile) -> tuple[list, np.ndarray, np.ndarray]:
    """The label sets, series lengths and shared timestamps, checked to agree (a reference's
    target and length are checked as the series are read)."""
    try:
        with archive.open("labels.npy") as entry:
            labels = json.loads(str(np.lib.format.read_array(entry, allow_pickle=False)))
    except RecursionError:
        raise SnapshotError("not a snapshot: its labels are nested too deeply") from None
    with archive.open("lengths.npy") as entry:
        lengths = np.lib.format.read_array(entry, allow_pickle=False)
    if not (isinstance(labels, list) and all(isinstance(pairs, list) and all(
            isinstance(pair, list) and len(pair) == 2 and all(isinstance(part, str) for part in pair)
            for pair in pairs) for pairs in labels)):
        raise SnapshotError("its labels are not lists of name/value pairs")
    if lengths.dtype != np.int64 or lengths.ndim != 1 or len(lengths) != len(labels) or (lengths < 0).any():
        raise SnapshotError(f"{len(labels)} label sets but {lengths.size} series lengths")
    if "shared.npy" not in archive.namelist():
        return labels, lengths, np.full(len(lengths), -1, dtype=np.int64)
    with archive.open("shared.npy") as entry:
        shared = np.lib.format.read_array(entry, allow_pickle=False)
    if shared.dtype != np.int64 or shared.shape != lengths.shape:
        raise SnapshotError(f"{lengths.size} series but {shared.size} timestamp references")
    return labels, lengths, shared


def _expect_header(entry: BinaryIO, dtype: np.dtype, count: int, name: str) -> None:
    version = np.lib.format.read_magic(entry)
    shape, fortran_order, found = (np.lib.format.read_array_header_1_0(entry) if version == (1, 0)
                                   else np.lib.format.read_array_header_2_0(entry))
    if found != dtype or fortran_order or shape != (count,):
        raise SnapshotError(f"series lengths add up to {count} samples; its {name} are {found} of shape {shape}")


def _series(labels: list, lengths: np.ndarray, shared: np.ndarray, times: BinaryIO, values: BinaryIO) -> Iterator[
        tuple[tuple, np.ndarray, np.ndarray]]:
    recent: dict[int, np.ndarray] = {}  # the last SHARED_WINDOW arrays read from ``times``, by ordinal
    read = 0
    for pairs, length, ordinal in zip(labels, lengths.tolist(), shared.tolist()):
        if ordinal < 0:
            ts = np.frombuffer(times.read(8 * length), dtype="<i8")
            recent[read] = ts
            recent.pop(read - SHARED_WINDOW, None)
            read += 1
        else:
            ts = recent.get(ordinal)
            if ts is None or len(ts) != length:
                raise SnapshotError(f"a series of {length} samples shares the timestamps of array {ordinal}, "
                                    "which the file does not hold (or has another length)")
        yield tuple((k, v) for k, v in pairs), ts, np.frombuffer(values.read(8 * length), dtype="<f8")
