"""The store's write-ahead log: what was scraped is kept across a crash, not only what the last
snapshot held.

Observed before: the store lived in memory and was written to ``--snapshot`` every 5 minutes and
at a clean stop, so a server killed (the OOM killer, a power cut, ``kill -9``) came back without
everything it had accepted since its last snapshot: up to 5 minutes of every node's metrics, the
minutes around the crash that an operator most wants to see."""
from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.realcomponents import free_port, wait_http
from tests.tsdb.scrape_pages import PAGES
from tsdb import wal as wal_module
from tsdb.component import EmbeddedTSDB, TSDBConfig
from tsdb.matchers import EQUAL, LabelMatcher
from tsdb.store import Store

PATIENCE_S = 60.0


def values_of(base: str, expr: str) -> list[str]:
    body = httpx.post(f"{base}/api/v1/query", data={"query": expr}, timeout=30).json()
    return [value for series in body["data"]["result"] for _, value in series.get("values", [])]


@pytest.mark.real_component
def test_samples_scraped_before_a_kill_are_there_after_the_restart(server: str, tmp_path: Path,
                                                                   process_factory) -> None:
    sd = tmp_path / "sd.json"
    sd.write_text(json.dumps([{"targets": [server], "labels": {"instance": "gpu-001"}}]))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    argv = [sys.executable, "-m", "clusterwatch", "serve", "--listen", f"127.0.0.1:{port}", "--file-sd", str(sd),
            "--scrape-interval", "1s", "--snapshot", str(tmp_path / "store.npz")]
    proc = process_factory(argv, name="serve")
    wait_http(f"{base}/-/ready", timeout=30, proc=proc)
    for value in ("1", "2", "3"):  # a value a scrape: each one stored before the next is served
        PAGES["/metrics"] = f"gpu_temperature_celsius{{gpu=\"0\"}} {value}\n"
        deadline = time.monotonic() + PATIENCE_S
        while value not in values_of(base, "gpu_temperature_celsius[10m]") and time.monotonic() < deadline:
            time.sleep(0.2)
    before = values_of(base, "gpu_temperature_celsius[10m]")
    assert {"1", "2", "3"} <= set(before)
    proc.popen.send_signal(signal.SIGKILL)
    proc.popen.wait(20)
    PAGES["/metrics"] = 'gpu_temperature_celsius{gpu="0"} 100\n'
    restarted = process_factory(argv, name="serve-again")
    wait_http(f"{base}/-/ready", timeout=30, proc=restarted)
    after = values_of(base, "gpu_temperature_celsius[10m]")
    assert before == after[:len(before)], "samples accepted before the kill were lost"


def series(name: str, **labels: str) -> tuple:
    return tuple(sorted({"__name__": name, **labels}.items()))


def stored(store: Store, name: str) -> dict:
    found = store.select([LabelMatcher.of(EQUAL, "__name__", name)], 0, 2**62)
    return {tuple(sorted(d.labels.items())): (list(d.timestamps), [repr(v) for v in d.values]) for d in found}


def crashed(tmp_path: Path) -> EmbeddedTSDB:
    """A server's store that took appends and then stopped without a word: no clean stop."""
    tsdb = EmbeddedTSDB(TSDBConfig(snapshot_path=str(tmp_path / "store.npz")))
    tsdb.load()
    return tsdb


def restarted(tmp_path: Path) -> EmbeddedTSDB:
    tsdb = EmbeddedTSDB(TSDBConfig(snapshot_path=str(tmp_path / "store.npz"), retention_s=1e11))  # samples of 1970
    tsdb.load()
    return tsdb


def test_the_log_replays_scrapes_staleness_and_rule_outputs_as_they_happened(tmp_path: Path) -> None:
    tsdb = crashed(tmp_path)
    store = tsdb.store
    store.append_scrape("a", 1000, [(series("up", i="a"), 1.0), (series("temp", i="a", gpu="0"), 40.0)])
    store.append_scrape("a", 2000, [(series("up", i="a"), 1.0)])  # temp goes stale
    store.append_rule_output("rules:g/0/r", 2000, [(series("r", i="a"), 7.0)])
    store.append_scrape("b", 2500, [(series("up", i="b"), 1.0)])
    store.mark_target_gone("b", 3000)
    again = restarted(tmp_path).store
    for name in ("up", "temp", "r"):
        assert stored(again, name) == stored(store, name)


def test_a_snapshot_cuts_the_log_and_both_together_give_the_store_back(tmp_path: Path) -> None:
    tsdb = crashed(tmp_path)
    for t in range(1, 30):
        tsdb.store.append_scrape("a", t * 1000, [(series("temp", gpu="0"), float(t))])
        if t == 10:
            tsdb.save_snapshot()
    segments = sorted(os.listdir(tmp_path / "store.npz.wal"))
    assert len(segments) == 1  # the segment before the snapshot is gone
    assert stored(restarted(tmp_path).store, "temp") == stored(tsdb.store, "temp")


def test_a_record_torn_by_the_crash_ends_the_replay_of_what_came_before_it(tmp_path: Path) -> None:
    tsdb = crashed(tmp_path)
    for t in range(1, 6):
        tsdb.store.append_scrape("a", t * 1000, [(series("temp", gpu="0"), float(t))])
    segment = tmp_path / "store.npz.wal" / sorted(os.listdir(tmp_path / "store.npz.wal"))[-1]
    segment.write_bytes(segment.read_bytes()[:-5])  # the last append half written
    again = restarted(tmp_path)
    assert stored(again.store, "temp")[series("temp", gpu="0")][0] == [1000, 2000, 3000, 4000]
    assert "wal_damaged" not in again.problems()  # a torn tail is what a crash leaves: not damage


def test_a_log_that_cannot_be_written_is_a_problem_and_the_store_goes_on(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    tsdb = crashed(tmp_path)
    real_write = os.write

    def disk_full(fd: int, data: bytes) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(wal_module.os, "write", disk_full)
    tsdb.store.append_scrape("a", 1000, [(series("temp", gpu="0"), 1.0)])
    assert len(stored(tsdb.store, "temp")) == 1  # ingested all the same
    assert "No space left on device" in tsdb.problems()["wal_failed"]
    monkeypatch.setattr(wal_module.os, "write", real_write)
    tsdb.save_snapshot()  # what the log missed is in the snapshot: the log starts again after it
    assert "wal_failed" not in tsdb.problems()
    tsdb.store.append_scrape("a", 2000, [(series("temp", gpu="0"), 2.0)])
    assert stored(restarted(tmp_path).store, "temp") == stored(tsdb.store, "temp")


def test_a_log_directory_that_cannot_be_made_does_not_stop_the_server(tmp_path: Path) -> None:
    (tmp_path / "store.npz.wal").write_text("a file where the directory should be")
    tsdb = crashed(tmp_path)
    tsdb.store.append_scrape("a", 1000, [(series("temp", gpu="0"), 1.0)])
    assert len(stored(tsdb.store, "temp")) == 1
    assert "store.npz.wal not written" in tsdb.problems()["wal_failed"]
