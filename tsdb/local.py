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
import math
import threading
import time
from typing import Any, Mapping, Protocol

from tsdb.exposition import parse_exposition, scraped_series
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
    """One in-process scrape of every node's page into ``store``; ``PageScraper`` without a memory.
    Returns the nodes up."""
    return PageScraper(store, pages, job, target_labels).scrape(timestamp_ms)


def _same_value(text: str, parsed: float) -> bool:
    try:
        value = float(text)
    except ValueError:
        return False
    return value == parsed or (math.isnan(value) and math.isnan(parsed))


class PageScraper:
    """In-process scrapes of every node's page into ``store``, labelled as the scraper would
    (``instance`` = the node, ``job``, a node's ``target_labels`` such as its file_sd ``rack``,
    plus ``up``); a node that cannot render (rebooting, unreachable) is a failed scrape: ``up`` 0
    and its series go stale. Benches, the demo's past and tests drive a simulated fleet on an
    explicit clock this way, without HTTP.

    It remembers, per node, the labels of each series line it parsed (the text before the value):
    from one scrape to the next a page holds the same series with new values, and parsing their
    labels and sorting them with the target's was two thirds of an in-process scrape of a
    simulated node (bench_continuity, docs/performance.md). A line it has not seen, or one with a
    timestamp, goes through the parser (and the store's label limits, as the HTTP scraper checks
    them, so a page past them is a failed scrape here too); the memory holds only the last scrape's
    lines. The HTTP scraper's parser remembers lines the same way (tsdb/exposition.py
    ``remembered``, with the parser's strict value checks for pages from outside); this one maps a
    line straight to its labels with the target's, one lookup where the HTTP path makes two, for
    simulated runs whose pages come from this process."""

    def __init__(self, store: Store, pages: ExpositionPages, job: str = "clusterwatch",
                 target_labels: Mapping[str, Mapping[str, str]] | None = None) -> None:
        self.store, self.pages, self.job = store, pages, job
        self.target_labels = target_labels or {}
        self._series: dict[str, dict[str, tuple[tuple[str, str], ...]]] = {}  # node -> series text -> labels

    def scrape(self, timestamp_ms: int) -> int:
        answered = 0
        for node in self.pages.node_names():
            target = {**self.target_labels.get(node, {}), "instance": node, "job": self.job}
            try:
                samples = self._samples(node, self.pages.render_metrics(node).decode(), target)
                up = 1.0
                answered += 1
            except Exception:  # noqa: BLE001 - whatever stops a node answering is a failed scrape
                samples, up = [], 0.0
                self._series.pop(node, None)
            samples.append((tuple(sorted({"__name__": "up", **target}.items())), up))
            self.store.append_scrape(node, timestamp_ms, samples)
        return answered

    def _samples(self, node: str, text: str, target: dict[str, str]) -> list[tuple[tuple[tuple[str, str], ...], float]]:
        known = self._series.get(node, {})
        target_pairs = tuple(sorted(target.items()))
        seen: dict[str, tuple[tuple[str, str], ...]] = {}
        samples = []
        for line in text.split("\n"):
            if not line or line[0] == "#" or line.isspace():
                continue
            series, _, value = line.rpartition(" ")
            labels = known.get(series) if series else None
            if labels is None:
                # New here (or a line not remembered): the parser validates it.
                name, pairs, parsed, stamp = parse_exposition(line).samples[0]
                labels = scraped_series(name, pairs, target_pairs)  # as tsdb/scraper.py labels it
                problem = self.store.limits.label_problem(labels)
                if problem:  # the HTTP scraper's label limits (tsdb/scraper.py): the scrape fails whole
                    raise ValueError(problem)
                if stamp is None and series and _same_value(value, parsed):
                    seen[series] = labels  # the line is exactly "<series> <value>"
                samples.append((labels, parsed))
                continue
            seen[series] = labels
            samples.append((labels, float(value)))
        self._series[node] = seen
        return samples
