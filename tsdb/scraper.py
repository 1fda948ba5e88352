"""The scrape loop: every target fetched at the interval (offset by a per-target jitter, with a
timeout), concurrently, parsed and appended to the store as one columnar batch.

Like Prometheus, each scrape also records ``up``, ``scrape_duration_seconds`` and
``scrape_samples_scraped``; a failed scrape (connection, HTTP status, timeout, malformed page,
limit exceeded) stores only those with ``up`` 0, which makes the target's other series stale.
A target that leaves discovery gets stale markers on everything it last exposed.

A scrape that fails because of this process rather than the target (out of file descriptors,
socket buffers or local ports; its scrape pool so busy that the previous scrape of the target has
not even started) is skipped: nothing is written, so no target reads as down for the server's
own trouble. Skips are counted by reason and reported through the component's health hook.
Samples take the scrape's start time: exposed timestamps are ignored (``honor_timestamps:
false``) because one shared timestamp per scrape is what keeps the store columnar.
"""
from __future__ import annotations

import logging
import threading
import time
import zlib
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable

from cwkernel.loopwatch import LoopWatch
from tsdb.discovery import Target
from tsdb.exposition import ExpositionError, MetricMetadata, is_openmetrics, parse_exposition, scraped_series
from tsdb.fetch import Fetcher, FetchError, LocalResourceError
from tsdb.store import AppendError, LimitError, OutOfOrderError, Store

log = logging.getLogger(__name__)

ACCEPT = "text/plain;version=0.0.4;q=1,application/openmetrics-text;version=1.0.0;q=0.5,*/*;q=0.1"
SKIP_REPORT_S = 60.0  # a skip is reported by the health hook this long (or three intervals)
POOL_BUSY = "scrape_pool_busy"
NO_THREAD = "no_thread"
# A page may hold this much per series its target may expose (a node's 50,000: 50 MiB; a node's
# real page is about 110 bytes a series), so that a runaway page is refused before it is read whole.
BYTES_PER_SERIES = 1024


@dataclass
class TargetHealth:
    target: Target
    health: str = "unknown"
    last_error: str = ""
    last_scrape: float = 0.0
    last_duration: float = 0.0
    last_success: float = 0.0
    scrapes: int = 0
    failures: int = 0
    next_due: float = 0.0
    label_cache: dict = field(default_factory=dict)
    series_text: dict = field(default_factory=dict)  # its last page's lines (tsdb/exposition.py)


class Scraper:
    """Scrapes what ``discover()`` returns; ``run_once`` for tests, ``start``/``stop`` for service."""

    def __init__(self, store: Store, discover: Callable[[], list[Target]], interval: float = 5.0,
                 timeout: float | None = None, workers: int = 16, max_connections: int = 1024) -> None:
        self.store = store
        self.discover = discover
        self.interval = interval
        self.timeout = min(timeout or interval, interval)
        self._fetcher = Fetcher(ACCEPT, max_connections)
        # No more workers than connections: each worker holds at most one socket at a time.
        self._pool = ThreadPoolExecutor(max_workers=max(1, min(workers, max_connections)),
                                        thread_name_prefix="scrape")
        self._targets: dict[str, TargetHealth] = {}
        self._queued: set[str] = set()  # target keys submitted and not started yet
        self._running: set[str] = set()
        self.skipped: Counter[str] = Counter()  # reason -> scrapes skipped for the server's own trouble
        self._last_skip: dict[str, tuple[float, str]] = {}  # reason -> (when, what happened)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.loops = LoopWatch()
        self.metadata: dict[str, MetricMetadata] = {}
        self.discovery_errors = 0

    # ---- scheduling ----------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="scraper", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=self.interval + 1)
        self.loops.stopped("scrape")
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._fetcher.close()

    def _loop(self) -> None:
        while not self._stop.is_set():
            # A round waits at most an interval; three, and a slow discovery's half-minute, late is wedged.
            self.loops.tick("scrape", 3 * self.interval + 30)
            for health in self.due(time.time()):
                self._submit(health)
            pending = [h.next_due for h in self._targets.values()]
            wait = min(pending) - time.time() if pending else self.interval
            self._stop.wait(min(max(wait, 0.01), self.interval))

    def due(self, now: float) -> list[TargetHealth]:
        """The targets whose scrape is due at ``now``, each then set to its next one. A target due
        more than an interval ahead was set so by a clock that has since stepped back: it is
        rescheduled from now, or it would not be scraped until the clock came back to that time."""
        due = []
        for health in self._refresh_targets(now):
            if health.next_due > now + self.interval:
                health.next_due = self._first_due(health.target, now)
            if health.next_due <= now:
                health.next_due += self.interval * max(1, int((now - health.next_due) // self.interval) + 1)
                due.append(health)
        return due

    def _first_due(self, target: Target, now: float) -> float:
        """At its offset in the interval (``_jitter``), now or within one interval."""
        due = now - now % self.interval + self._jitter(target)
        return due if due >= now else due + self.interval

    def _jitter(self, target: Target) -> float:
        # A stable per-target offset spreads scrapes over the interval, as Prometheus does.
        return (zlib.crc32(target.key.encode()) % 10_000) / 10_000 * self.interval

    def _refresh_targets(self, now: float) -> list[TargetHealth]:
        try:
            current = {t.key: t for t in self.discover()}
        except Exception as exc:  # noqa: BLE001 - discovery failing must not stop scraping
            self.discovery_errors += 1
            log.warning("service discovery failed: %s", exc)
            return list(self._targets.values())
        with self._lock:
            for key in list(self._targets):
                if key not in current:
                    del self._targets[key]
                    self.store.mark_target_gone(key, round(now * 1000))
            for key, target in current.items():
                if key not in self._targets:
                    self._targets[key] = TargetHealth(target, next_due=self._first_due(target, now))
            return list(self._targets.values())

    def run_once(self) -> None:
        """Discover and scrape every target once, now, waiting for all of them."""
        healths = self._refresh_targets(time.time())
        for future in [f for f in map(self._submit, healths) if f is not None]:
            future.result()

    def _submit(self, health: TargetHealth):
        """Queue one scrape of the target; like Prometheus's per-target loop, never a second one
        while the previous is still waiting or running. The future, or None when skipped."""
        key = health.target.key
        with self._lock:
            if key in self._running:
                return None  # a slow target: the next tick waits for it, as in Prometheus
            if key in self._queued:
                busy = True
            else:
                busy = False
                self._queued.add(key)
        if busy:
            self._skip(health, POOL_BUSY, "the previous scrape has not started yet: every scrape worker is busy")
            return None
        try:
            return self._pool.submit(self._scrape_logged, health)
        except RuntimeError as exc:  # no thread could be started, or the pool is shutting down
            with self._lock:
                self._queued.discard(key)
            if not self._stop.is_set():
                self._skip(health, NO_THREAD, str(exc))
            return None

    # ---- one scrape ----------------------------------------------------------------------
    def _scrape_logged(self, health: TargetHealth) -> None:
        key = health.target.key
        with self._lock:
            self._queued.discard(key)
            self._running.add(key)
        try:
            self.scrape(health)
        except Exception:  # noqa: BLE001 - a bug in one scrape must not kill the pool thread
            log.exception("scrape of %s failed unexpectedly", health.target.url)
        finally:
            with self._lock:
                self._running.discard(key)

    def _skip(self, health: TargetHealth, reason: str, detail: str) -> None:
        with self._lock:
            self.skipped[reason] += 1
            self._last_skip[reason] = (time.time(), detail)
        log.warning("scrape of %s skipped (%s), target not marked down: %s", health.target.url, reason, detail)

    def problems(self) -> dict[str, str]:
        """Skips of the last minute (or three intervals), for the component's health hook."""
        since = time.time() - max(SKIP_REPORT_S, 3 * self.interval)
        with self._lock:
            recent = {reason: detail for reason, (when, detail) in self._last_skip.items() if when >= since}
        return {f"scrapes_skipped_{reason}": f"scrapes skipped because of the server itself, targets not marked "
                                             f"down ({self.skipped[reason]} in all); last: {detail}"
                for reason, detail in sorted(recent.items())}

    def scrape(self, health: TargetHealth) -> None:
        target = health.target
        started = time.time()
        timestamp = round(started * 1000)
        samples: list = []
        error = ""
        try:
            page = self._fetcher.get(target.url, self.timeout, self._body_limit(target))
            if page.status != 200:
                raise ScrapeFailure(f"server returned HTTP status {page.status} {page.reason}")
            exposition = parse_exposition(page.text, is_openmetrics(page.content_type), health.series_text)
            # A page with more samples than its target may hold series is refused by the store:
            # what the scraper keeps between scrapes (its lines, their labels) is not kept for it.
            keep = len(exposition.samples) <= self._series_limit(target)
            health.series_text = exposition.series_text if keep else {}
            samples = self._labelled(health, exposition.samples, keep)
            self._note_metadata(exposition.metadata)
        except LocalResourceError as exc:
            self._skip(health, exc.reason, str(exc))
            return
        except (FetchError, ScrapeFailure, ExpositionError) as exc:
            error = str(exc)
        duration = time.time() - started
        report = self._report(target, 0.0 if error else 1.0, duration, len(samples))
        try:
            self.store.append_scrape(target.key, timestamp, (samples if not error else []) + report,
                                     dict(target.labels).get("job", ""))
        except OutOfOrderError as exc:
            self._skip(health, "clock_went_back", f"{exc}: this server's clock went back (or two scrapes started in "
                                                  "one millisecond); stored again once it passes the last one")
            return
        except (LimitError, AppendError) as exc:
            error = str(exc)
            self.store.append_report(target.key, timestamp, self._report(target, 0.0, duration, len(samples)))
        with self._lock:
            health.scrapes += 1
            health.last_scrape = started
            health.last_duration = duration
            health.last_error = error
            health.health = "down" if error else "up"
            if error:
                health.failures += 1
                log.debug("scrape %s failed: %s", target.url, error)
            else:
                health.last_success = started

    def _body_limit(self, target: Target) -> int:
        return self._series_limit(target) * BYTES_PER_SERIES

    def _series_limit(self, target: Target) -> int:
        return self.store.limits.for_job(dict(target.labels).get("job", ""))[0]

    def _labelled(self, health: TargetHealth, exposed: list, keep: bool) -> list:
        """Samples with target labels attached (``scraped_series``: exposed labels that clash become
        ``exported_*``); ExpositionError for a sample Prometheus would refuse."""
        cache = health.label_cache
        if len(cache) > 4 * len(exposed) + 1000:
            cache.clear()
        if not keep:
            cache = {}  # labelled, not kept (a page the store will refuse)
        target_labels = health.target.labels
        out = []
        for name, labels, value, _ in exposed:
            key = (name, labels)
            final = cache.get(key)
            if final is None:
                final = scraped_series(name, labels, target_labels)
                problem = self.store.limits.label_problem(final)
                if problem:
                    raise ScrapeFailure(problem)  # before the cache: it must not hold what is refused
                cache[key] = final
            out.append((final, value))
        return out

    @staticmethod
    def _report(target: Target, up: float, duration: float, count: int) -> list:
        def series(name: str) -> tuple:
            return tuple(sorted(target.labels + (("__name__", name),)))
        return [(series("up"), up), (series("scrape_duration_seconds"), duration),
                (series("scrape_samples_scraped"), float(count))]

    def _note_metadata(self, metadata: dict[str, MetricMetadata]) -> None:
        if metadata and len(self.metadata) < 100_000:
            self.metadata.update(metadata)

    # ---- views for the API and /metrics --------------------------------------------------
    def health(self) -> list[TargetHealth]:
        with self._lock:
            return list(self._targets.values())

    def targets_json(self) -> list[dict]:
        """The ``activeTargets`` list of Prometheus's /api/v1/targets."""
        interval = f"{self.interval:g}s"
        out = []
        for h in self.health():
            labels = dict(h.target.labels)
            out.append({
                "discoveredLabels": dict(h.target.discovered), "labels": labels,
                "scrapePool": labels.get("job", ""), "scrapeUrl": h.target.url, "globalUrl": h.target.url,
                "lastError": h.last_error,
                "lastScrape": datetime.fromtimestamp(h.last_scrape or 0, tz=timezone.utc).isoformat(),
                "lastScrapeDuration": h.last_duration, "health": h.health,
                "scrapeInterval": interval, "scrapeTimeout": f"{self.timeout:g}s",
            })
        return out

    def metadata_json(self) -> dict[str, list[dict[str, str]]]:
        return {name: [{"type": "unknown" if m.type == "untyped" else m.type, "help": m.help, "unit": m.unit}]
                for name, m in sorted(self.metadata.items())}


class ScrapeFailure(Exception):
    """The target answered, but not with a page we can store."""
