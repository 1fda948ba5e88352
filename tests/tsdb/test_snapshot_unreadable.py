"""A snapshot that cannot be read (bit rot, a torn copy, another file at its path) is set aside
and the server starts with an empty store, saying so, instead of not starting at all: the
history is the least of what a monitoring server keeps, the watching is the most.

Observed before: ``serve --snapshot`` on a garbage file stopped with a ``BadZipFile`` traceback;
a snapshot whose arrays disagree stopped it with a "configuration" error naming
``import_openmetrics``; the cluster stayed unmonitored until someone deleted the file.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tsdb.component import EmbeddedTSDB, TSDBConfig
from tsdb import snapshot as snapshot_module
from tsdb.snapshot import save_snapshot
from tsdb.store import Store


def garbage(path: Path) -> None:
    path.write_bytes(b"PK\x03\x04 not really a zip archive" * 100)


def torn(path: Path) -> None:
    store = Store()
    store.append_scrape("t", 1_000, [((("__name__", "up"),), 1.0)], "j")
    save_snapshot(store, path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def disagreeing(path: Path) -> None:
    np.savez(path, labels=np.array(json.dumps([[["__name__", "up"]]])), lengths=np.array([5], dtype=np.int64),
             times=np.array([1], dtype=np.int64), values=np.array([1.0]))


def nested(path: Path) -> None:
    np.savez(path, labels=np.array("[" * 100_000 + "]" * 100_000), lengths=np.array([], dtype=np.int64),
             times=np.array([], dtype=np.int64), values=np.array([]))


def bad_reference(path: Path) -> None:
    """A series that says it shares the timestamps of one the file does not hold (or of another length)."""
    np.savez(path, labels=np.array(json.dumps([[["__name__", "up"]], [["__name__", "down"]]])),
             lengths=np.array([1, 2], dtype=np.int64), shared=np.array([-1, 0], dtype=np.int64),
             times=np.array([1], dtype=np.int64), values=np.array([1.0, 2.0, 3.0]))


@pytest.mark.parametrize("spoil", [garbage, torn, disagreeing, nested, bad_reference])
def test_an_unreadable_snapshot_is_set_aside_and_the_store_starts_empty(spoil, tmp_path: Path) -> None:
    snapshot = tmp_path / "store.npz"
    spoil(snapshot)
    spoilt = snapshot.read_bytes()
    tsdb = EmbeddedTSDB(TSDBConfig(snapshot_path=str(snapshot)))
    tsdb.load()
    assert tsdb.store.stats()["series"] == 0
    aside = list(tmp_path.glob("store.npz.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_bytes() == spoilt and not snapshot.exists()
    problem = tsdb.problems()["snapshot_set_aside"]
    assert problem.startswith(f"{snapshot} was unreadable (") and str(aside[0]) in problem


def test_a_snapshot_that_cannot_be_written_is_a_reported_problem_and_leaves_no_partial_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A full disk: the write fails part way. The old snapshot stays, the partial file goes, and
    /-/ready says so until a later snapshot is written."""
    snapshot = tmp_path / "store.npz"
    tsdb = EmbeddedTSDB(TSDBConfig(snapshot_path=str(snapshot)))
    tsdb.store.append_scrape("t", 1_000, [((("__name__", "up"),), 1.0)], "j")
    tsdb.save_snapshot()
    before = snapshot.read_bytes()
    real_write_raw = snapshot_module._write_raw

    def disk_full(archive, name, raw, dtype, shape) -> None:  # noqa: ANN001 - _write_raw's arguments
        with archive.open(f"{name}.npy", "w", force_zip64=True) as entry:
            entry.write(b"\x93NUMPY partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(snapshot_module, "_write_raw", disk_full)
    tsdb.save_snapshot()
    assert snapshot.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store.npz"]  # the unnamed sample files too
    assert "No space left on device" in tsdb.problems()["snapshot_failed"]
    monkeypatch.setattr(snapshot_module, "_write_raw", real_write_raw)
    tsdb.save_snapshot()
    assert "snapshot_failed" not in tsdb.problems()


def test_a_snapshot_path_that_cannot_be_read_is_set_aside_too(tmp_path: Path) -> None:
    """A directory where the file should be (an operator's mistake, a bad volume mount), or a read
    error: before, the OSError stopped ``serve`` as a configuration error naming another option."""
    snapshot = tmp_path / "store.npz"
    snapshot.mkdir()
    (snapshot / "inside").write_text("not a snapshot")
    tsdb = EmbeddedTSDB(TSDBConfig(snapshot_path=str(snapshot)))
    tsdb.load()
    assert tsdb.store.stats()["series"] == 0
    aside = list(tmp_path.glob("store.npz.corrupt-*"))
    assert len(aside) == 1 and (aside[0] / "inside").read_text() == "not a snapshot"
    assert "cannot read" in tsdb.problems()["snapshot_set_aside"]
