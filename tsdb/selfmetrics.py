"""The store's, scraper's and engine's own health as a prometheus_client collector, rendered
on the server's /metrics from a snapshot taken at scrape time (no global metric objects)."""
from __future__ import annotations

from typing import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from tsdb.promql.engine import Engine
from tsdb.scraper import Scraper
from tsdb.store import Store


class TSDBCollector:
    def __init__(self, store: Store, engine: Engine, scraper: Scraper | None,
                 discovery_failures: Callable[[], int] = lambda: 0) -> None:
        self.store = store
        self.engine = engine
        self.scraper = scraper
        self.discovery_failures = discovery_failures  # file_sd reads refused or failed

    def collect(self) -> Iterator[Metric]:
        stats = self.store.stats()
        yield GaugeMetricFamily("clusterwatch_tsdb_series", "Series held by the embedded store.", stats["series"])
        yield GaugeMetricFamily("clusterwatch_tsdb_samples", "Samples held by the embedded store.", stats["samples"])
        yield GaugeMetricFamily("clusterwatch_tsdb_sample_bytes",
                                "Bytes of sample values and shared timestamps.", stats["sample_bytes"])
        refused = CounterMetricFamily("clusterwatch_tsdb_appends_refused",
                                      "Scrapes and rule outputs refused for their new series: churn (a target's new "
                                      "series an hour), share (the store near its total), total.", labels=["reason"])
        counts = self.store.refused_series
        for reason in ("churn", "share", "total"):
            refused.add_metric([reason], counts.get(reason, 0))
        yield refused
        steps = self.store.clock_steps
        yield CounterMetricFamily("clusterwatch_tsdb_clock_steps_back",
                                  "Times this server's clock was found stepped back by more than a minute, and "
                                  "what the store held stamped past it dropped.", steps.count)
        yield CounterMetricFamily("clusterwatch_tsdb_samples_dropped_ahead_of_clock",
                                  "Samples dropped because they were stamped more than a minute ahead of this "
                                  "server's clock, by a clock that was wrong.", steps.dropped)
        q = self.engine.stats
        yield CounterMetricFamily("clusterwatch_engine_queries", "PromQL queries evaluated.", q.queries)
        yield CounterMetricFamily("clusterwatch_engine_query_errors", "PromQL queries that failed.", q.errors)
        yield CounterMetricFamily("clusterwatch_engine_query_seconds", "Time spent evaluating queries.", q.seconds)
        yield from self._query_limits()
        if self.scraper is None:
            return
        labels = ["job", "instance"]
        duration = GaugeMetricFamily("clusterwatch_scrape_last_duration_seconds", "Duration of the last scrape.",
                                     labels=labels)
        scrapes = CounterMetricFamily("clusterwatch_scrapes", "Scrapes attempted.", labels=labels)
        failures = CounterMetricFamily("clusterwatch_scrape_failures", "Scrapes that failed.", labels=labels)
        success = GaugeMetricFamily("clusterwatch_scrape_last_success_timestamp_seconds",
                                    "Unix time of the last successful scrape (0: never).", labels=labels)
        for h in self.scraper.health():
            values = [dict(h.target.labels).get("job", ""), h.target.instance]
            duration.add_metric(values, h.last_duration)
            scrapes.add_metric(values, h.scrapes)
            failures.add_metric(values, h.failures)
            success.add_metric(values, h.last_success)
        yield from (duration, scrapes, failures, success)
        yield GaugeMetricFamily("clusterwatch_scrape_targets", "Targets being scraped.", len(self.scraper.health()))
        yield CounterMetricFamily("clusterwatch_scrape_discovery_errors",
                                  "Service discovery failures (a file_sd file that could not be read or was refused).",
                                  self.scraper.discovery_errors + self.discovery_failures())
        skipped = CounterMetricFamily("clusterwatch_scrape_skipped",
                                      "Scrapes skipped because of the server itself (out of file descriptors, "
                                      "socket buffers or local ports; scrape pool busy; its clock went back), not "
                                      "recorded as up 0.",
                                      labels=["reason"])
        for reason, count in sorted(self.scraper.skipped.items()):
            skipped.add_metric([reason], count)
        yield skipped

    def _query_limits(self) -> Iterator[Metric]:
        """The query limits' effect (tsdb/promql/limits.py, gate.py)."""
        gate = self.engine.gate
        refused = CounterMetricFamily(
            "clusterwatch_engine_queries_refused",
            "Queries stopped by a limit: queue_full (refused at once, 503), queue_timeout (timed out waiting "
            "for a slot), timeout (--query-timeout), max_samples (--query-max-samples), query_text (too long, "
            "too many operators or too deep to parse), memory (the process could not allocate it, or its "
            "resident memory was past the --memory-limit line).",
            labels=["reason"])
        counts = self.engine.refusals()
        for reason in ("queue_full", "queue_timeout", "timeout", "max_samples", "query_text", "memory"):
            refused.add_metric([reason], counts.get(reason, 0))
        yield refused
        in_flight = GaugeMetricFamily(
            "clusterwatch_engine_queries_in_flight",
            "Queries evaluating now: lane external (the /api/v1 routes and the dashboard, through the gate) or "
            "internal (rules and remediation, the reserved lane).", labels=["lane"])
        in_flight.add_metric(["external"], gate.running())
        in_flight.add_metric(["internal"], gate.internal_running())
        yield in_flight
        yield GaugeMetricFamily("clusterwatch_engine_query_queue_length",
                                "Outside queries waiting for one of the --query-max-concurrency slots.", gate.queued())
        yield GaugeMetricFamily("clusterwatch_engine_queries_concurrent_max",
                                "Outside queries that may evaluate at once (--query-max-concurrency).",
                                self.engine.limits.max_concurrency)
        yield CounterMetricFamily("clusterwatch_engine_query_paused_seconds",
                                  "Time outside queries were held back while the server's own queries evaluated.",
                                  gate.paused_seconds)
