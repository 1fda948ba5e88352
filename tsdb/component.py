"""The embedded store as one server component: store, engine, scraper, API router, retention
and snapshot loops, and self-metrics, built from one ``TSDBConfig``."""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from cwkernel.durations import format_duration
from cwkernel.errors import ConfigError
from cwkernel.setaside import set_aside
from cwkernel.server import Component, Deps
from tsdb.api import build_router
from tsdb.client import HTTPQueryClient, LocalQueryClient
from tsdb.discovery import Discovery, FileSD, Target, static_targets
from tsdb.exposition import ExpositionError
from tsdb.importer import Loaded, import_openmetrics
from tsdb.local import LocalSource
from tsdb.promql.engine import Engine
from tsdb.promql.gate import MemoryBound
from tsdb.promql.limits import QueryLimits
from tsdb.scraper import Scraper
from tsdb.selfmetrics import TSDBCollector
from tsdb.snapshot import SnapshotError, load_snapshot, save_snapshot
from tsdb.store import Limits, Store
from tsdb.wal import WalError, WriteAheadLog, wal_directory

log = logging.getLogger(__name__)


@dataclass
class TSDBConfig:
    retention_s: float = 6 * 3600.0
    scrape_interval_s: float = 5.0
    scrape_timeout_s: float | None = None
    static_targets: list[str] = field(default_factory=list)
    file_sd: list[str] = field(default_factory=list)
    job: str = "clusterwatch"
    import_openmetrics: list[str] = field(default_factory=list)
    snapshot_path: str | None = None
    snapshot_interval_s: float = 300.0
    # Sockets the scraper may hold open at once (cwkernel/fdbudget.py sizes it at start).
    scrape_max_connections: int = 1024
    limits: Limits = field(default_factory=Limits)
    # --query-timeout, --query-max-samples, --query-max-concurrency (tsdb/promql/limits.py)
    query_limits: QueryLimits = field(default_factory=QueryLimits)


class EmbeddedTSDB:
    """Owns the pieces; ``component()`` hands them to the server's app factory."""

    def __init__(self, config: TSDBConfig, clock: Callable[[], float] = time.time,
                 memory: MemoryBound | None = None) -> None:
        self.config = config
        self.clock = clock
        self.store = Store(config.retention_s, config.limits, clock)
        # Outside queries give way to the process's memory bound (cwkernel/memguard.py).
        self.engine = Engine(self.store, limits=config.query_limits, memory=memory)
        self.client = LocalQueryClient(self.engine)  # rules, remediation: the reserved lane
        self.request_client = LocalQueryClient(self.engine, gated=True)  # the dashboard: through the gate
        self.file_sd = FileSD(config.file_sd, config.job)
        self.discovery = Discovery(self.file_sd.targets)
        self._static = static_targets(config.static_targets, config.job)
        self.scraper = Scraper(self.store, self.targets, config.scrape_interval_s, config.scrape_timeout_s,
                               max_connections=config.scrape_max_connections)
        self._stop = threading.Event()
        self._housekeeping: threading.Thread | None = None
        self._sticky: dict[str, str] = {}  # problems until restart: a snapshot set aside
        # Beside the snapshot: what was stored since it (tsdb/wal.py); none without a snapshot.
        self.wal = WriteAheadLog(wal_directory(config.snapshot_path)) if config.snapshot_path else None

    def targets(self) -> list[Target]:
        return self._static + self.discovery.targets()

    def load(self) -> list[Loaded]:
        """Snapshot first, then imports: what the operator asked to import wins on conflict.

        The retention window counts from now, here as in housekeeping: what is older is left out
        at load and said so in one line per file, so that what the server answers at start is
        what it answers after the first housekeeping pass (which, once the server's own samples
        arrive, would drop it)."""
        keep_from_ms = int(self.clock() * 1000) - self.store.retention_ms
        loaded = []
        snapshot = self.config.snapshot_path
        if snapshot and Path(snapshot).exists():
            try:
                loaded.append(self._said(load_snapshot(self.store, snapshot, keep_from_ms), snapshot))
            except SnapshotError as exc:
                self._set_aside(snapshot, str(exc))
        if self.wal is not None:
            self._replay(keep_from_ms)
        for path in self.config.import_openmetrics:
            loaded.append(self._said(import_openmetrics(self.store, path, keep_from_ms), path))
        return loaded

    def _replay(self, keep_from_ms: int) -> None:
        """What was stored after the snapshot, from the log; then the log goes on from here."""
        try:
            replayed = self.wal.replay(self.store, keep_from_ms)
        except (OSError, WalError) as exc:
            log.error("write-ahead log %s could not be replayed: %s", self.wal.directory, exc)
            self._sticky["wal_damaged"] = f"{self.wal.directory} could not be replayed ({exc}): samples stored " \
                                          "after the last snapshot were lost"
        else:
            log.info("%s", replayed.describe(str(self.wal.directory)))
            if replayed.damaged:
                self._sticky["wal_damaged"] = f"{self.wal.directory}: {replayed.damaged}"
        self.wal.start()
        self.store.wal = self.wal

    def save_snapshot(self) -> None:
        """Housekeeping's and shutdown's snapshot; a failure (a full disk) is a problem in
        /-/ready until a later one is written, never an exception out of either."""
        path = self.config.snapshot_path
        if not path:
            return
        keep_from = self.store.cut_wal()
        try:
            save_snapshot(self.store, path)
        except OSError as exc:
            log.error("snapshot %s not written: %s (the previous one, if any, is kept)", path, exc)
            self._sticky["snapshot_failed"] = f"{path} not written: {exc.strerror or exc}; the previous one is kept"
            return
        self._sticky.pop("snapshot_failed", None)
        if keep_from is not None:
            self.wal.drop_before(keep_from)

    def _set_aside(self, snapshot: str, reason: str) -> None:
        """History is what a restart can lose; the watching is not: an unreadable snapshot is
        moved out of the way (kept for a post-mortem) and the store starts empty, saying so."""
        aside = set_aside(snapshot)
        log.error("snapshot %s is unreadable (%s): set aside as %s; the store starts empty", snapshot, reason, aside)
        self._sticky["snapshot_set_aside"] = (f"{snapshot} was unreadable ({reason}) and was set aside as {aside}; "
                                              "the store started without its history")

    def _said(self, loaded: Loaded, source: str) -> Loaded:
        line = loaded.describe(source, format_duration(self.config.retention_s))
        (log.warning if loaded.too_old_samples else log.info)("%s", line)
        return loaded

    def start(self) -> None:
        self.discovery.start()
        self.scraper.start()
        self._housekeeping = threading.Thread(target=self._housekeep, name="tsdb-housekeeping", daemon=True)
        self._housekeeping.start()

    def stop(self) -> None:
        self._stop.set()
        self.scraper.stop()
        self.discovery.stop()
        if self._housekeeping:
            self._housekeeping.join(timeout=5)
        self.save_snapshot()
        if self.wal is not None:
            self.store.close_wal()

    def _housekeep(self) -> None:
        elapsed = 0.0
        while not self._stop.wait(30.0):
            elapsed += 30.0
            try:
                self.store.sync_wal()
                self.apply_retention()
                if self.config.snapshot_path and elapsed >= self.config.snapshot_interval_s:
                    elapsed = 0.0
                    self.save_snapshot()
            except Exception:  # noqa: BLE001 - housekeeping must keep running
                log.exception("tsdb housekeeping failed")

    def ingest(self, name: str, collector: Any, interval: float, job: str) -> LocalSource:
        """A source that samples ``collector`` every ``interval`` into the store as target
        ``local:<name>`` (tsdb/local.py), for metrics of this process: start and stop it."""
        return LocalSource(self.store, name, collector, interval, job)

    def apply_retention(self) -> int:
        """Housekeeping's retention pass: the window counts from now, as at load."""
        return self.store.apply_retention(int(self.clock() * 1000))

    def component(self) -> Component:
        router = build_router(self.engine, self.store, self.scraper.targets_json, self.scraper.metadata_json)
        return Component("tsdb", routers=[router], start=self.start, stop=self.stop,
                         collectors=[TSDBCollector(self.store, self.engine, self.scraper, self._discovery_failures)],
                         health=self.problems, stalled=self.scraper.loops.stalled)

    def _discovery_failures(self) -> int:
        return self.file_sd.read_failures + self.discovery.failures

    def problems(self) -> dict[str, str]:
        wal = {"wal_failed": f"{self.wal.failed}; samples stored since the last snapshot would not survive a crash"}\
            if self.wal is not None and self.wal.failed else {}
        return {**self._sticky, **self.scraper.problems(), **self.file_sd.problems(), **self.store.problems(), **wal}


def build(values: Mapping[str, Any], deps: Deps) -> Component | None:
    """The embedded store from ``deps.tsdb_config``, loaded (snapshot, its log, then imports); None with
    --prometheus-url, where every query goes to that server instead. Either way it provides the
    query interface; the embedded store also in-process ingestion and the rule writer."""
    if values["prometheus_url"]:
        deps.query = deps.request_query = HTTPQueryClient(
            values["prometheus_url"], timeout=values["query_timeout"],
            max_answer_bytes=values["prometheus_max_answer_bytes"])
        return None
    tsdb = EmbeddedTSDB(deps.tsdb_config or TSDBConfig(), memory=deps.memory)
    try:
        tsdb.load()
    except (OSError, ValueError, ExpositionError) as exc:
        raise ConfigError("import_openmetrics", str(exc), deps.config_file) from None
    deps.query, deps.request_query = tsdb.client, tsdb.request_client
    deps.ingest, deps.rule_writer = tsdb.ingest, tsdb.store.append_rule_output
    return tsdb.component()
