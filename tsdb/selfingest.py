"""The server's own health ingested into its embedded store, so that the monitoring rules
(NotificationsFailing, RuleEvaluationFailing, ClusterWatchDegraded...) can fire without a
Prometheus scraping the server: every collector of the components built before it, sampled in
process (tsdb/local.py) as job "clusterwatch-server". The scheduler's metrics have their own
source (job "slurm", scheduler/component.py)."""
from __future__ import annotations

from typing import Any, Iterator, Mapping

from cwkernel.server import Component, Deps


class _Collectors:
    """Several prometheus_client collectors seen as one."""

    def __init__(self, collectors: list) -> None:
        self.collectors = collectors

    def collect(self) -> Iterator[Any]:
        for collector in self.collectors:
            yield from collector.collect()


def build(values: Mapping[str, Any], deps: Deps) -> Component | None:
    """None without an embedded store (--prometheus-url: Prometheus scrapes /metrics)."""
    if deps.ingest is None:
        return None
    collectors = [c for component in deps.components if component.name != "scheduler" for c in component.collectors]
    source = deps.ingest("server", _Collectors(collectors), values["scrape_interval"], "clusterwatch-server")
    return Component("self-ingest", start=source.start, stop=source.stop)
