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
import math
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

    def clock_went_back(self, now: float) -> None:
        """A flush set further ahead than any timer can set it (group_wait, group_interval) was set
        by a clock that has since stepped back: due an interval from now instead of hours away."""
        opts = self.route.opts
        if self.next_flush > now + max(opts.group_wait, opts.group_interval):
            self.next_flush = now + opts.group_interval

    def take(self, now: float) -> list[Alert]:
        """Start a flush: the alerts to notify now, and the timer set for the next one."""
        self.has_flushed = True
        self.next_flush = now + self.route.opts.group_interval
        return list(self.alerts.values())

    def flushed(self, alerts: list[Alert]) -> None:
        """After a successful notification of ``alerts``: resolved ones leave the group, only if
        unchanged since (a re-fire in between must not be dropped)."""
        for alert in alerts:
            if alert.ends_at is not None and self.alerts.get(alert.fingerprint) is alert:
                del self.alerts[alert.fingerprint]


def _notify(group: AggregationGroup, alerts: list[Alert], now: float, notify: Notify) -> bool:
    try:
        return notify(group, alerts, now)
    except Exception:  # noqa: BLE001 - keep the group; the next interval tries again
        log.exception("notifying group %s failed", group.key)
        return False


class Dispatcher:
    """Groups and their timers. ``_lock`` guards the groups and is held only to change them, never
    while a group is being notified (inhibition, silences, the outbox write), so ``put`` of a new
    storm of alerts never waits for the flush of the last one."""

    def __init__(self, route: Route, notify: Notify) -> None:
        self.route = route
        self.notify = notify
        self._latest_tick = -math.inf
        # Keyed by the route object as well, as Alertmanager keys them by route pointer: sibling
        # routes with the same matchers share a group key and must still keep separate groups,
        # each notifying its own receiver.
        self.groups: dict[tuple[Route, str], AggregationGroup] = {}
        self._lock = threading.RLock()
        self._flushing = threading.Lock()  # one tick at a time

    def put(self, alerts: Iterable[Alert], now: float) -> None:
        routed = [(alert, route, route.group_labels(alert.labels)) for alert in alerts
                  for route in self.route.match(alert.labels)]
        with self._lock:
            for alert, route, labels in routed:
                key = (route, group_key(route, labels))
                group = self.groups.get(key)
                if group is None:
                    group = self.groups[key] = AggregationGroup(route, labels, now)
                group.insert(alert, now)

    def tick(self, now: float, limit: int | None = None) -> int:
        """Flush the groups due at ``now`` (at most ``limit`` of them); returns how many flushed."""
        with self._flushing:
            with self._lock:
                if now < self._latest_tick:  # the clock stepped back: once, not every tick
                    for group in self.groups.values():
                        group.clock_went_back(now)
                self._latest_tick = now
                due = [g for g in self.groups.values() if g.next_flush <= now][:limit]
                taken = [(group, group.take(now)) for group in due]
            done = [(group, alerts) for group, alerts in taken
                    if not alerts or _notify(group, sort_alerts(alerts), now, self.notify)]
            with self._lock:
                for group, alerts in done:
                    group.flushed(alerts)
                for key in [key for key, group in self.groups.items() if not group.alerts]:
                    del self.groups[key]
        return len(taken)

    def flushing(self) -> threading.Lock:
        """Held, no tick runs: a reload swaps dispatchers between two flushes."""
        return self._flushing

    def next_deadline(self) -> float | None:
        with self._lock:
            return min((g.next_flush for g in self.groups.values()), default=None)
