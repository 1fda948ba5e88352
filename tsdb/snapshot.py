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
from typing import BinaryIO, Iterator

import numpy as np

from tsdb.importer import Loaded, bulk_load
from tsdb.store import Store


COPY_CHUNK = 1 << 20


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
    try:
        with tempfile.TemporaryFile(dir=path.parent) as labels, tempfile.TemporaryFile(dir=path.parent) as times, \
                tempfile.TemporaryFile(dir=path.parent) as values:
            characters = _write_text(labels, "[")
            for series_labels, ts, vs in store.iter_series():
                characters += _write_text(labels, ("," if lengths else "") + json.dumps(list(series_labels)))
                lengths.append(len(vs))
                times.write(np.ascontiguousarray(ts, dtype="<i8").data)
                values.write(np.ascontiguousarray(vs, dtype="<f8").data)
            characters += _write_text(labels, "]")
            total = sum(lengths)
            with open(tmp, "wb") as handle:
                with zipfile.ZipFile(handle, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
                    _write_raw(archive, "labels", labels, f"<U{characters}", ())
                    _write_array(archive, "lengths", np.array(lengths, dtype=np.int64))
                    _write_raw(archive, "times", times, "<i8", (total,))
                    _write_raw(archive, "values", values, "<f8", (total,))
                handle.flush()
                os.fsync(handle.fileno())  # else a power cut after the rename can leave a named, empty file
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)  # a full disk: give back what the partial file took
        raise
    return len(lengths)


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
            labels, lengths = _read_index(archive)
            total = int(lengths.sum())
            with archive.open("times.npy") as times, archive.open("values.npy") as values:
                _expect_header(times, np.dtype("<i8"), total, "times")
                _expect_header(values, np.dtype("<f8"), total, "values")
                return bulk_load(store, _series(labels, lengths, times, values), keep_from_ms)
    except SnapshotError:
        raise
    except (zipfile.BadZipFile, EOFError, KeyError, ValueError) as exc:
        raise SnapshotError(f"not a snapshot: {type(exc).__name__}: {exc}") from None
    except OSError as exc:  # a directory at the path, a read error: the watching must not stop for it
        raise SnapshotError(f"cannot read: {exc.strerror or exc}") from None


def _read_index(archive: zipfile.ZipFile) -> tuple[list, np.ndarray]:
    """The label sets and series lengths, checked to agree."""
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
    return labels, lengths


def _expect_header(entry: BinaryIO, dtype: np.dtype, count: int, name: str) -> None:
    version = np.lib.format.read_magic(entry)
    shape, fortran_order, found = (np.lib.format.read_array_header_1_0(entry) if version == (1, 0)
                                   else np.lib.format.read_array_header_2_0(entry))
    if found != dtype or fortran_order or shape != (count,):
        raise SnapshotError(f"series lengths add up to {count} samples; its {name} are {found} of shape {shape}")


def _series(labels: list, lengths: np.ndarray, times: BinaryIO, values: BinaryIO) -> Iterator[
        tuple[tuple, np.ndarray, np.ndarray]]:
    for pairs, length in zip(labels, lengths.tolist()):
        yield (tuple((k, v) for k, v in pairs), np.frombuffer(times.read(8 * length), dtype="<i8"),
               np.frombuffer(values.read(8 * length), dtype="<f8"))
