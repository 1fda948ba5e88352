"""Dispatch and group: routes each alert through the tree into aggregation groups and flushes
each group on Alertmanager's timers (dispatch.go):

- a new group waits ``group_wait`` before its first notification, so alerts that start together
  go out together; an alert that started more than ``group_wait`` ago flushes a not yet flushed
  group at once;
- after a flush the group flushes again every ``group_interval`` (the dedup stage decides
  whether that flush sends anything; ``repeat_interval`` is the dedup stage's business);
- after a successful flush, resolved alerts that did not change meanwhile leave the group; an
  empty group is removed.

Time comes from ``tick(now)``, so tests drive the timers with a fake clock and no sleeping.
"""
from __future__ import annotations

import logging
import threading
from typing import Callable, Iterable

from alerts.model import Alert
from alerts.notify.payload import sort_alerts
from alerts.notify.route import Route, group_key

log = logging.getLogger(__name__)

# (group, alerts, now) -> True if the notification was handed on (for every receiver integration).
Notify = Callable[["AggregationGroup", list[Alert], float], bool]


class AggregationGroup:
    def __init__(self, route: Route, labels: dict[str, str], now: float) -> None:
        self.route = route
        self.labels = labels
        self.key = group_key(route, labels)
        self.alerts: dict[str, Alert] = {}
        self.next_flush = now + route.opts.group_wait
        self.has_flushed = False

    def insert(self, alert: Alert, now: float) -> None:
        self.alerts[alert.fingerprint] = alert
        if not self.has_flushed and alert.starts_at + self.route.opts.group_wait < now:
            self.next_flush = min(self.next_flush, now)

    def flush(self, now: float, notify: Notify) -> bool:
        self.has_flushed = True
        self.next_flush = now + self.route.opts.group_interval
        alerts = sort_alerts(self.alerts.values())
        if not alerts:
            return True
        try:
            ok = notify(self, alerts, now)
        except Exception:  # noqa: BLE001 - keep the group; the next interval tries again
            log.exception("notifying group %s failed", self.key)
            ok = False
        if ok:
            for alert in alerts:
                # Only if unchanged since the flush: a re-fire in between must not be dropped.
                if alert.ends_at is not None and self.alerts.get(alert.fingerprint) is alert:
                    del self.alerts[alert.fingerprint]
        return ok


class Dispatcher:
    def __init__(self, route: Route, notify: Notify) -> None:
        self.route = route
        self.notify = notify
        self.groups: dict[str, AggregationGroup] = {}
        self._lock = threading.RLock()

    def put(self, alerts: Iterable[Alert], now: float) -> None:
        with self._lock:
            for alert in alerts:
                for route in self.route.match(alert.labels):
                    labels = route.group_labels(alert.labels)
                    key = group_key(route, labels)
                    group = self.groups.get(key)
                    if group is None:
                        group = self.groups[key] = AggregationGroup(route, labels, now)
                    group.insert(alert, now)

    def tick(self, now: float) -> int:
        """Flush every group that is due at ``now``; returns how many flushed."""
        flushed = 0
        with self._lock:
            for key, group in list(self.groups.items()):
                if group.next_flush <= now:
                    group.flush(now, self.notify)
                    flushed += 1
                if not group.alerts:
                    del self.groups[key]
        return flushed

    def next_deadline(self) -> float | None:
        with self._lock:
            return min((g.next_flush for g in self.groups.values()), default=None)
