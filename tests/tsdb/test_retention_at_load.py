"""History loaded at start (``--import-openmetrics``, ``--snapshot``) keeps what the retention
window allows from now, says at load what it leaves out, and answers the same after housekeeping
as before it (issue 14, finding 12: data older than the window was served at start and gone 30 s
later, once the server's own samples moved the store's newest time to now)."""
from __future__ import annotations

import logging
import time
from pathlib import Path

from tsdb.component import EmbeddedTSDB, TSDBConfig
from tsdb.importer import bulk_load
from tsdb.snapshot import save_snapshot
from tsdb.store import Store

HOUR = 3600.0
RETENTION = 6 * HOUR


def history(now: float) -> list[int]:
    """A sample every 15 minutes from 8 h to 1 h ago (whole seconds), 7.5 minutes off the quarter
    hours so that none sits on the retention boundary while the test runs."""
    return [int(now - 8 * HOUR) + 450 + k * 900 for k in range(28)]


def samples_of(tsdb: EmbeddedTSDB, name: str) -> list[int]:
    return sorted(int(t) for labels, times, _ in tsdb.store.iter_series() if ("__name__", name) in labels
                  for t in times)


def after_the_servers_own_samples_and_housekeeping(tsdb: EmbeddedTSDB) -> None:
    """What `serve` does 30 s after start: self-ingest appends at now, housekeeping applies the retention."""
    tsdb.store.append_scrape("local:server", int(time.time() * 1000),
                             [((("__name__", "clusterwatch_up"), ("job", "clusterwatch-server")), 1.0)])
    tsdb.apply_retention()


def test_import_keeps_the_retention_window_from_now_and_says_what_it_left_out(tmp_path: Path, caplog) -> None:
    now = time.time()
    times = history(now)
    data = tmp_path / "history.om"
    data.write_text("# TYPE gpu_temperature_celsius gauge\n"
                    + "".join(f'gpu_temperature_celsius{{gpu="0"}} {40 + i} {t}\n' for i, t in enumerate(times))
                    + "# EOF\n")
    kept = [t * 1000 for t in times if t >= now - RETENTION]
    tsdb = EmbeddedTSDB(TSDBConfig(retention_s=RETENTION, import_openmetrics=[str(data)]))
    with caplog.at_level(logging.INFO, logger="tsdb.component"):
        report = tsdb.load()
    assert samples_of(tsdb, "gpu_temperature_celsius") == kept
    [loaded] = report
    assert (loaded.series, loaded.samples, loaded.too_old_samples) == (1, len(kept), len(times) - len(kept))
    [line] = [r.getMessage() for r in caplog.records if str(data) in r.getMessage()]
    assert f"{len(times) - len(kept)} older samples not kept" in line and "6h from now" in line
    after_the_servers_own_samples_and_housekeeping(tsdb)
    assert samples_of(tsdb, "gpu_temperature_celsius") == kept, "the same answer 30 s later"


def test_a_snapshot_restored_after_a_long_stop_keeps_the_window_from_now(tmp_path: Path) -> None:
    now = time.time()
    times = [t * 1000 for t in history(now)]
    before_the_stop = Store(retention_s=100 * 24 * HOUR)
    bulk_load(before_the_stop, [((("__name__", "node_load1"), ("instance", "gpu-001")), times,
                                 [1.0] * len(times))])
    snapshot = tmp_path / "store.npz"
    save_snapshot(before_the_stop, snapshot)
    tsdb = EmbeddedTSDB(TSDBConfig(retention_s=RETENTION, snapshot_path=str(snapshot)))
    report = tsdb.load()
    kept = [t for t in times if t >= (now - RETENTION) * 1000]
    assert samples_of(tsdb, "node_load1") == kept
    assert [loaded.too_old_samples for loaded in report] == [len(times) - len(kept)]
    after_the_servers_own_samples_and_housekeeping(tsdb)
    assert samples_of(tsdb, "node_load1") == kept


def test_history_entirely_older_than_the_window_is_reported_not_served(tmp_path: Path) -> None:
    data = tmp_path / "old.om"
    data.write_text('up{instance="gpu-001"} 1 1700000000\nup{instance="gpu-001"} 1 1700000015\n# EOF\n')
    tsdb = EmbeddedTSDB(TSDBConfig(retention_s=RETENTION, import_openmetrics=[str(data)]))
    report = tsdb.load()
    assert samples_of(tsdb, "up") == []
    assert [(loaded.series, loaded.too_old_series, loaded.too_old_samples) for loaded in report] == [(0, 1, 2)]
