"""The pipeline's self-metrics, kept as plain counts and yielded as families on collect().

``clusterwatch_notifications_failed_total{receiver}`` and
``clusterwatch_notifications_dropped_total{receiver,integration,reason}`` are alerted on by the
rule pack: keep their names and label sets. Nothing here reads the database: /metrics must answer
while the pipeline is busy with a storm.
"""
from __future__ import annotations

import threading
from collections import defaultdict
from typing import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class NotifyMetrics:
    def __init__(self, pending: Callable[[], dict[tuple[str, str], int]] = dict,
                 alerts_refused: Callable[[], int] = lambda: 0) -> None:
        self._lock = threading.Lock()
        self.pending = pending
        self.alerts_refused = alerts_refused
        self.attempts: dict[tuple[str, str], int] = defaultdict(int)
        self.delivered: dict[tuple[str, str], int] = defaultdict(int)
        self.failed: dict[str, int] = defaultdict(int)
        self.expired: dict[str, int] = defaultdict(int)
        self.dropped: dict[tuple[str, str, str], int] = defaultdict(int)
        self.holds: dict[tuple[str, str], int] = defaultdict(int)
        self.latency: dict[str, list[int]] = defaultdict(lambda: [0] * (len(LATENCY_BUCKETS) + 1))
        self.latency_sum: dict[str, float] = defaultdict(float)
        self.loops: dict[str, dict[str, float]] = defaultdict(lambda: {"duration": 0.0, "errors": 0, "last_success": 0.0})

    def attempt(self, receiver: str, integration: str, seconds: float, ok: bool) -> None:
        with self._lock:
            self.attempts[(receiver, integration)] += 1
            if ok:
                self.delivered[(receiver, integration)] += 1
            else:
                self.failed[receiver] += 1
            counts = self.latency[integration]
            for i, bound in enumerate(LATENCY_BUCKETS):
                if seconds <= bound:
                    counts[i] += 1
            counts[-1] += 1
            self.latency_sum[integration] += seconds

    def hold(self, receiver: str, integration: str) -> None:
        """The receiver asked for a pause (HTTP 429, or 503 with Retry-After) and its lane waits."""
        with self._lock:
            self.holds[(receiver, integration)] += 1

    def expire(self, receiver: str, integration: str, count: int = 1) -> None:
        with self._lock:
            self.expired[receiver] += count
        self.drop(receiver, integration, "expired", count)

    def drop(self, receiver: str, integration: str, reason: str, count: int = 1) -> None:
        """Notifications given up without delivery: ``queue_full`` (the receiver's cap) or
        ``expired`` (older than the outbox's maximum age)."""
        with self._lock:
            self.dropped[(receiver, integration, reason)] += count

    def dropped_by_target(self) -> dict[tuple[str, str], int]:
        with self._lock:
            found: dict[tuple[str, str], int] = defaultdict(int)
            for (receiver, integration, _), value in self.dropped.items():
                found[(receiver, integration)] += value
            return dict(found)

    def loop(self, name: str, seconds: float, ok: bool, now: float) -> None:
        with self._lock:
            state = self.loops[name]
            state["duration"] = seconds
            if ok:
                state["last_success"] = now
            else:
                state["errors"] += 1

    def collect(self) -> Iterator:
        with self._lock:
            total = CounterMetricFamily("clusterwatch_notifications", "Notification delivery attempts.",
                                        labels=["receiver", "integration"])
            for (receiver, integration), value in sorted(self.attempts.items()):
                total.add_metric([receiver, integration], value)
            delivered = CounterMetricFamily("clusterwatch_notifications_delivered",
                                            "Notifications delivered (2xx or hook returned).",
                                            labels=["receiver", "integration"])
            for (receiver, integration), value in sorted(self.delivered.items()):
                delivered.add_metric([receiver, integration], value)
            failed = CounterMetricFamily("clusterwatch_notifications_failed",
                                         "Failed notification delivery attempts.", labels=["receiver"])
            for receiver, value in sorted(self.failed.items()):
                failed.add_metric([receiver], value)
            expired = CounterMetricFamily("clusterwatch_notification_outbox_expired",
                                          "Notifications given up after their maximum age.", labels=["receiver"])
            for receiver, value in sorted(self.expired.items()):
                expired.add_metric([receiver], value)
            dropped = CounterMetricFamily("clusterwatch_notifications_dropped",
                                          "Notifications given up without delivery: reason queue_full (the "
                                          "receiver's pending cap) or expired (past the outbox's maximum age).",
                                          labels=["receiver", "integration", "reason"])
            for key, value in sorted(self.dropped.items()):
                dropped.add_metric(list(key), value)
            held = CounterMetricFamily("clusterwatch_notifications_held",
                                       "Times a receiver asked for a pause (HTTP 429, or 503 with Retry-After) and "
                                       "everything queued for it waited as long (at most the backoff's cap).",
                                       labels=["receiver", "integration"])
            for key, value in sorted(self.holds.items()):
                held.add_metric(list(key), value)
            latency = HistogramMetricFamily("clusterwatch_notification_latency_seconds",
                                            "Duration of one delivery attempt.", labels=["integration"])
            for integration, counts in sorted(self.latency.items()):
                buckets = [(str(b), counts[i]) for i, b in enumerate(LATENCY_BUCKETS)] + [("+Inf", counts[-1])]
                latency.add_metric([integration], buckets, self.latency_sum[integration])
            loops = [
                GaugeMetricFamily("clusterwatch_notifier_loop_duration_seconds", "Duration of the last loop run.",
                                  labels=["loop"]),
                CounterMetricFamily("clusterwatch_notifier_loop_errors", "Loop runs that raised.", labels=["loop"]),
                GaugeMetricFamily("clusterwatch_notifier_loop_last_success_timestamp_seconds",
                                  "When the loop last completed without error.", labels=["loop"]),
            ]
            for name, state in sorted(self.loops.items()):
                for family, key in zip(loops, ("duration", "errors", "last_success")):
                    family.add_metric([name], state[key])
        pending = GaugeMetricFamily("clusterwatch_notification_outbox_pending",
                                    "Notifications in the outbox not yet delivered, per receiver integration.",
                                    labels=["receiver", "integration"])
        for (receiver, integration), value in sorted(self.pending().items()):
            pending.add_metric([receiver, integration], value)
        refused = CounterMetricFamily("clusterwatch_alerts_refused",
                                      "New alerts from the inbound webhook refused: the server held --alerts-max.")
        refused.add_metric([], self.alerts_refused())
        yield from (total, delivered, failed, expired, dropped, held, latency, pending, refused, *loops)
