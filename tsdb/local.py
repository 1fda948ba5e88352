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
from typing import Any, Mapping, Protocol

from tsdb.exposition import parse_exposition
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


class ExpositionPages(Protocol):
    """Something that renders nodes' exposition pages in process (the simulator's Fleet)."""

    def node_names(self) -> list[str]: ...

    def render_metrics(self, node: str) -> bytes: ...


def scrape_pages(store: Store, pages: ExpositionPages, timestamp_ms: int, job: str = "clusterwatch",
                 target_labels: Mapping[str, Mapping[str, str]] | None = None) -> int:
    """One in-process scrape of every node's page into ``store``, labelled as the scraper would
    (``instance`` = the node, ``job``, a node's ``target_labels`` such as its file_sd ``rack``,
    plus ``up``); a node that cannot render (rebooting, unreachable) is a failed scrape: ``up`` 0
    and its series go stale. Returns the nodes up.

    Benches and tests drive a simulated fleet on an explicit clock this way, without HTTP."""
    answered = 0
    for node in pages.node_names():
        target = {**(target_labels or {}).get(node, {}), "instance": node, "job": job}
        try:
            text = pages.render_metrics(node).decode()
            samples = [(tuple(sorted({**dict(labels), "__name__": name, **target}.items())), value)
                       for name, labels, value, _ in parse_exposition(text).samples]
            up = 1.0
            answered += 1
        except Exception:  # noqa: BLE001 - whatever stops a node answering is a failed scrape
            samples, up = [], 0.0
        samples.append((tuple(sorted({"__name__": "up", **target}.items())), up))
        store.append_scrape(node, timestamp_ms, samples)
    return answered
