"""One node's exporter: runs the enabled collectors once and renders the result.

The framework part of node_exporter's shape: it times every collector, records whether it
succeeded, and adds the exporter's own health families, so collectors need not. A collector that
raises is reported as failed for this cycle and the others' data is still served. The NVML
collectors run on a lane of their own (exporter/nvmllane.py) that a collection waits for at most
``nvml_timeout``: a GPU the driver hangs on leaves the rest of the node collected.
"""
from __future__ import annotations

import gzip
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from prometheus_client.core import Metric

from cwkernel.metrics import FamilySet, counter, gauge, metric_table, render_metric_text, series_cache_size
from cwkernel.version import __version__
from exporter.collector import NVML_COLLECTORS, Collector, CollectorContext, NoDataError
from exporter.nvmllane import NvmlLane

Part = FamilySet | Metric  # what collectors hand back: our builder, or a prometheus_client family

log = logging.getLogger(__name__)

SELF_METRICS = metric_table(
    gauge("clusterwatch_exporter_collector_duration_seconds", "Wall time the collector took in the last cycle.",
          ["collector"], "seconds", "exporter framework"),
    gauge("clusterwatch_exporter_collector_success", "1 if the collector's last run succeeded (no data counts as success).",
          ["collector"], "", "exporter framework"),
    counter("clusterwatch_exporter_collector_errors_total",
            "Failures of the collector: whole runs that raised and parts (a file, a GPU metric) it had to skip.",
            ["collector"], "", "exporter framework"),
    gauge("clusterwatch_exporter_collection_duration_seconds", "Wall time of the last whole collection cycle.",
          [], "seconds", "exporter framework"),
    gauge("clusterwatch_exporter_collection_cpu_seconds", "CPU time (user+system) the collecting thread spent on the last cycle.",
          [], "seconds", "exporter framework"),
    gauge("clusterwatch_exporter_last_collection_timestamp_seconds", "Unix time the served snapshot was collected.",
          [], "seconds", "exporter framework"),
    counter("clusterwatch_exporter_collections_total", "Collection cycles run since start.", [], "", "exporter framework"),
    gauge("clusterwatch_exporter_nvml_stuck_seconds",
          "How long the NVML call in flight has been running once a collection stopped waiting for it (a GPU the "
          "driver hangs on); 0 while NVML answers in time.", [], "seconds", "exporter framework"),
    gauge("clusterwatch_exporter_build_info", "Version of the exporter, value 1.", ["version"], "", "exporter framework"),
)


@dataclass
class Collection:
    """The rendered result of one collection; served as is to every scraper until the next one."""

    text: bytes
    parts: list[Part]
    timestamp: float
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _variants: dict[str, bytes] = field(default_factory=dict, repr=False)

    def render(self, openmetrics: bool = False, gzipped: bool = False) -> bytes:
        """The exposition in the asked format; other formats are rendered once, on first request."""
        key = f"{'om' if openmetrics else 'text'}{'.gz' if gzipped else ''}"
        if key == "text":
            return self.text
        with self._lock:
            # gzip level 1: a fifth of level 6's CPU for 15% more bytes, and CPU is what a GPU
            # node (or a simulator serving thousands of nodes) is short of, not loopback bandwidth.
            if key not in self._variants:
                body = render_text(self.parts, openmetrics=True) if openmetrics else self.text
                self._variants[key] = gzip.compress(body, compresslevel=1) if gzipped else body
            return self._variants[key]


def render_text(parts: Iterable[Part], series_cache: dict | None = None, openmetrics: bool = False) -> bytes:
    """The Prometheus text exposition of ``parts`` (or OpenMetrics', ``# EOF`` ended), FamilySets
    through their fast path: at 16,384 fabric nodes prometheus_client's OpenMetrics renderer took
    1.5 s of CPU per scrape where this takes what the text format does."""
    out: list[str] = []
    for part in parts:
        if isinstance(part, FamilySet):
            part.render_text(out, series_cache, openmetrics)
        else:
            render_metric_text(part, out, openmetrics)
    if openmetrics:
        out.append("# EOF\n")
    return "".join(out).encode()


class Exporter:
    """The enabled collectors of one node plus the bookkeeping of their health."""

    def __init__(self, ctx: CollectorContext, collectors: Sequence[Collector]) -> None:
        self.ctx = ctx
        self.collectors = list(collectors)
        on_nvml = [c for c in self.collectors if c.name in NVML_COLLECTORS] if ctx.nvml is not None else []
        self._host_collectors = [c for c in self.collectors if c not in on_nvml]
        self._nvml_collectors = on_nvml
        self._nvml_lane = NvmlLane(self._collect_nvml, ctx.config.nvml_timeout) if on_nvml else None
        self._failures: dict[str, int] = {}
        self.last_cycle_cpu_s = 0.0
        self._cycles = 0
        self._last_results: dict[str, tuple[float, bool]] = {}
        self._collection: Collection | None = None
        self._series_cache: dict = {}  # rendered series prefixes, kept across cycles

    @property
    def collection(self) -> Collection | None:
        """The last collection, the one served."""
        return self._collection

    def collect_once(self) -> Collection:
        """Run every collector now; the new collection replaces the served one atomically."""
        wall_start, cpu_start = time.perf_counter(), time.thread_time()
        if self._nvml_lane is None and self.ctx.nvml is not None:
            self.ctx.nvml.refresh()
        # NVML first, waited for, then the rest: run side by side they only took turns on the
        # interpreter lock, which cost more than it saved.
        results: dict[str, list[Part]] = {}
        nvml_cpu = 0.0
        if self._nvml_lane is not None:
            answer = self._nvml_lane.collect()
            if answer is None:
                answer = (self._nvml_unavailable(time.perf_counter() - wall_start), 0.0)
            results, nvml_cpu = answer
        results.update((collector.name, self._run(collector)) for collector in self._host_collectors)
        parts = [part for collector in self.collectors for part in results.get(collector.name, [])]
        self._cycles += 1
        self.last_cycle_cpu_s = time.thread_time() - cpu_start + nvml_cpu  # both threads' share
        parts.append(self._self_families(time.perf_counter() - wall_start, self.last_cycle_cpu_s))
        series = sum(part.sample_count() for part in parts if isinstance(part, FamilySet))
        if series_cache_size(self._series_cache) > 4 * series + 10_000:
            self._series_cache.clear()  # label churn (pids, job ids) must not grow it forever
        collection = Collection(render_text(parts, self._series_cache), parts, self.ctx.clock())
        self._collection = collection
        return collection

    def _collect_nvml(self) -> tuple[dict[str, list[Part]], float]:
        """On the NVML lane: the session's refresh and the NVML collectors; and the CPU time taken."""
        cpu_start = time.thread_time()
        try:
            self.ctx.nvml.refresh()
        except Exception:  # noqa: BLE001 - the collectors then report NVML as the session left it
            log.exception("NVML refresh failed")
        results = {collector.name: self._run(collector) for collector in self._nvml_collectors}
        return results, time.thread_time() - cpu_start

    def _nvml_unavailable(self, waited: float) -> dict[str, list[Part]]:
        """The NVML collectors' parts while NVML does not answer: each fails this cycle and says what
        it can without NVML (the GPU collector: NVML down, every GPU seen before down)."""
        results = {}
        for collector in self._nvml_collectors:
            self._last_results[collector.name] = (waited, False)
            results[collector.name] = list(collector.unavailable())
        return results

    def _run(self, collector: Collector) -> list[Part]:
        start = time.perf_counter()
        try:
            result = collector.collect()
            families: list[Part] = [result] if isinstance(result, FamilySet) else list(result)
            ok = True
        except NoDataError as exc:
            log.debug("collector %s: no data: %s", collector.name, exc)
            families, ok = [], True
        except Exception:  # noqa: BLE001 - one collector failing must never stop the others
            self._failures[collector.name] = self._failures.get(collector.name, 0) + 1
            log.exception("collector %s failed", collector.name)
            families, ok = [], False
        self._last_results[collector.name] = (time.perf_counter() - start, ok)
        return families

    def _self_families(self, wall: float, cpu: float) -> FamilySet:
        out = FamilySet(SELF_METRICS)
        partial = self.ctx.errors.counts()
        for collector in self.collectors:
            duration, ok = self._last_results.get(collector.name, (0.0, False))
            out.add("clusterwatch_exporter_collector_duration_seconds", duration, collector=collector.name)
            out.add("clusterwatch_exporter_collector_success", 1 if ok else 0, collector=collector.name)
            errors = self._failures.get(collector.name, 0) + partial.get(collector.name, 0)
            out.add("clusterwatch_exporter_collector_errors_total", errors, collector=collector.name)
        out.add("clusterwatch_exporter_collection_duration_seconds", wall)
        out.add("clusterwatch_exporter_collection_cpu_seconds", cpu)
        out.add("clusterwatch_exporter_last_collection_timestamp_seconds", self.ctx.clock())
        out.add("clusterwatch_exporter_collections_total", self._cycles)
        if self._nvml_lane is not None:
            out.add("clusterwatch_exporter_nvml_stuck_seconds", self._nvml_lane.stuck_for())
        out.add("clusterwatch_exporter_build_info", 1, version=__version__)
        return out

    def close(self) -> None:
        if self._nvml_lane is not None:
            self._nvml_lane.close()
        for collector in self.collectors:
            try:
                collector.close()
            except Exception:  # noqa: BLE001 - closing the rest matters more
                log.exception("closing collector %s", collector.name)
        if self.ctx.nvml is not None:
            self.ctx.nvml.close()


class CollectionLoop:
    """Runs ``exporter.collect_once()`` every ``interval`` seconds in one background thread.

    Scrapes never trigger collection: NVML is called from this thread only, so concurrent
    scrapers cannot race on the driver, and a scrape costs the same whatever their number.
    """

    def __init__(self, exporter: Exporter, interval: float) -> None:
        self.exporter = exporter
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="collection-loop", daemon=True)

    def start(self) -> None:
        if self.exporter.collection is None:
            self.exporter.collect_once()  # so /metrics has data from its first request
        self._thread.start()

    def _run(self) -> None:
        next_at = time.monotonic() + self.interval
        while not self._stop.wait(max(0.0, next_at - time.monotonic())):
            try:
                self.exporter.collect_once()
            except Exception:  # noqa: BLE001 - the loop must outlive any bug in one cycle
                log.exception("collection cycle failed")
            # Fixed-rate schedule: a slow cycle does not shift every later one.
            next_at += self.interval
            if next_at < time.monotonic():
                next_at = time.monotonic() + self.interval

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.interval + 5)
