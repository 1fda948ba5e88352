"""Who watches the watcher: a heartbeat to a dead man's switch outside the server.

Every alert ClusterWatch sends depends on ClusterWatch running; if the process dies, hangs, or
its scrape, rule or notification loops wedge, nothing in it can say so. ``--heartbeat-url``
names a service that pages when pings stop (healthchecks.io, Dead Man's Snitch, a PagerDuty or
Opsgenie heartbeat, a cron monitor): every ``--heartbeat-interval`` the server POSTs a small JSON
body there, and only while every component's loops still come round (``Component.stalled``,
cwkernel/loopwatch.py). A stalled loop withholds the ping (and is said in ``/-/ready``), so the
outside service pages exactly when the watcher has stopped watching. kube-prometheus does the
same with its always-firing ``Watchdog`` alert routed to such a service; here it needs no rule
that fires on a healthy fleet.

The ping is one bounded attempt (the webhook integration's ``post``: ended by its timeout, the
answer barely read), never retried: the next interval's ping is the retry.
"""
from __future__ import annotations

import json
import logging
import socket
import time
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Mapping

import httpx
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from alerts.notify.integrations import DeliveryError
from alerts.notify.integrations.webhook import post
from cwkernel import httpdeadline
from cwkernel.health import stalled_in
from cwkernel.periodic import Periodic

if TYPE_CHECKING:
    from cwkernel.server import Component, Deps

log = logging.getLogger(__name__)

PING_TIMEOUT_S = 10.0


class Heartbeat:
    """``beat()`` once: ping if no component has a stalled loop; ``start``/``stop`` a thread that
    beats every ``interval`` seconds."""

    def __init__(self, url: str, interval: float, components: Iterable[Any], http: httpx.Client | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.url = url
        self.interval = interval
        self.components = list(components)
        self._owns_http = http is None
        self.http = http or httpdeadline.client()
        self.clock = clock
        self.sent = self.failed = self.withheld = 0
        self.last_sent = 0.0  # Unix time of the last ping the service accepted (0: never)
        # The loops tick first: no verdict before they ran.
        self._periodic = Periodic("heartbeat", interval, self.beat, join_timeout=PING_TIMEOUT_S + 1)

    def beat(self) -> bool:
        """One ping, or the reason it is withheld logged; True when the service accepted it."""
        stalled = stalled_in(self.components)
        if stalled:
            self.withheld += 1
            log.error("heartbeat withheld, so that %s pages: %s", self.url_for_log, "; ".join(stalled.values()))
            return False
        body = json.dumps({"status": "ok", "host": socket.gethostname(), "time": self.clock()}).encode()
        try:
            post(self.http, self.url, body, {"Content-Type": "application/json"}, min(PING_TIMEOUT_S, self.interval))
        except DeliveryError as exc:
            self.failed += 1
            log.warning("heartbeat to %s failed (the next one is in %.0f s): %s", self.url_for_log, self.interval,
                        exc)
            return False
        self.sent += 1
        self.last_sent = self.clock()
        return True

    @property
    def url_for_log(self) -> str:
        """The URL without its path and query, which dead man's switches use as the secret."""
        url = httpx.URL(self.url)
        return f"{url.scheme}://{url.host}{f':{url.port}' if url.port else ''}/..."

    def start(self) -> None:
        self._periodic.start()

    def stop(self) -> None:
        self._periodic.stop()
        if self._owns_http:
            self.http.close()

    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily("clusterwatch_heartbeat_sent", "Heartbeats the dead man's switch accepted.",
                                  self.sent)
        yield CounterMetricFamily("clusterwatch_heartbeat_failed",
                                  "Heartbeats that did not reach the dead man's switch (no answer, an error status).",
                                  self.failed)
        yield CounterMetricFamily("clusterwatch_heartbeat_withheld",
                                  "Heartbeats not sent because a loop of the server was stalled.", self.withheld)
        yield GaugeMetricFamily("clusterwatch_heartbeat_last_sent_timestamp_seconds",
                                "When the dead man's switch last accepted a heartbeat (Unix time; 0: never).",
                                self.last_sent)


def build(values: Mapping[str, Any], deps: Deps) -> Component | None:
    """None without ``--heartbeat-url``; else a heartbeat over every component built before it."""
    from cwkernel.server import Component  # cwkernel.server names this package's types

    if not values.get("heartbeat_url"):
        return None
    heartbeat = Heartbeat(values["heartbeat_url"], values["heartbeat_interval"], deps.components)
    return Component("heartbeat", start=heartbeat.start, stop=heartbeat.stop, collectors=[heartbeat])
