"""In-process sources: the server's own collectors ingested into the embedded store.

The scheduler adapter's job and node metrics must be queryable in the embedded store (rules and
pages join GPUs to jobs through them) without the server scraping itself over HTTP. A
``LocalSource`` samples a prometheus_client collector at an interval and appends the samples as
one scrape of a target named ``local:<name>``, with Prometheus's ``honor_labels: true``
semantics: the collector's own labels (``instance`` = the node as the scheduler names it) are
kept, and only ``job`` is added where a series has none.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any

from tsdb.store import AppendError, LimitError, Store

log = logging.getLogger(__name__)


class LocalSource:
    def __init__(self, store: Store, name: str, collector: Any, interval: float, job: str) -> None:
        self.store = store
        self.target = f"local:{name}"
        self.collector = collector
        self.interval = interval
        self.job = job
        self.errors = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def samples(self) -> list[tuple[tuple[tuple[str, str], ...], float]]:
        out = []
        for family in self.collector.collect():
            for sample in family.samples:
                labels = {"job": self.job, **{k: v for k, v in sample.labels.items() if v != ""}}
                labels["__name__"] = sample.name
                out.append((tuple(sorted(labels.items())), float(sample.value)))
        return out

    def ingest_once(self) -> int:
        try:
            return self.store.append_scrape(self.target, round(time.time() * 1000), self.samples())
        except (AppendError, LimitError) as exc:
            self.errors += 1
            log.warning("ingesting %s failed: %s", self.target, exc)
            return 0

    def start(self) -> None:
        def run() -> None:
            while not self._stop.wait(self.interval):
                try:
                    self.ingest_once()
                except Exception:  # noqa: BLE001 - keep ingesting whatever one collection does
                    self.errors += 1
                    log.exception("collecting %s failed", self.target)

        self._thread = threading.Thread(target=run, name=f"ingest-{self.target}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)
