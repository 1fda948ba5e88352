"""Inhibition: a firing source alert mutes target alerts that share the ``equal`` labels
(Alertmanager's inhibit.go, including that an alert matching both sides of a rule is not
inhibited by another alert that also matches both sides).

Like Alertmanager's inhibitor, the firing sources are kept per rule as alerts come and go, here
indexed by their values of the rule's ``equal`` labels: whether an alert is inhibited is one
lookup per rule, whatever the number of active alerts (scanning every alert for every alert
made a flush of a storm quadratic: minutes under the pipeline's lock).
"""
from __future__ import annotations

import threading
from typing import Iterable

from alerts.model import Alert
from alerts.notify.config import InhibitRule
from alerts.notify.matchers import matches_all

EqualKey = tuple[str, ...]


class _RuleSources:
    """One rule's firing sources by equal-label values; those that also match the rule's target
    side are kept apart, since they never inhibit an alert that matches both sides."""

    def __init__(self, rule: InhibitRule) -> None:
        self.rule = rule
        self.one_sided: dict[EqualKey, dict[str, None]] = {}
        self.two_sided: dict[EqualKey, dict[str, None]] = {}

    def key(self, labels: dict[str, str]) -> EqualKey:
        return tuple(labels.get(name, "") for name in self.rule.equal)

    def add(self, alert: Alert) -> tuple[dict, EqualKey] | None:
        """Index ``alert`` if it is a source of this rule; where it went, to remove it later."""
        if not matches_all(self.rule.source, alert.labels):
            return None
        side = self.two_sided if matches_all(self.rule.target, alert.labels) else self.one_sided
        key = self.key(alert.labels)
        side.setdefault(key, {})[alert.fingerprint] = None
        return side, key

    def inhibitor_of(self, alert: Alert) -> str | None:
        """The fingerprint of a source inhibiting ``alert`` (the first indexed), or None."""
        if not matches_all(self.rule.target, alert.labels):
            return None
        key = self.key(alert.labels)
        found = next(iter(self.one_sided.get(key, ())), None)
        if found is None and not matches_all(self.rule.source, alert.labels):
            found = next(iter(self.two_sided.get(key, ())), None)
        return found


class Inhibitor:
    def __init__(self, rules: list[InhibitRule], alerts: Iterable[Alert] = ()) -> None:
        self.rules = rules
        self._lock = threading.Lock()
        self._sources = [_RuleSources(rule) for rule in rules]
        self._placed: dict[str, list[tuple[dict, EqualKey]]] = {}
        self.update(alerts)

    def update(self, alerts: Iterable[Alert]) -> None:
        """Take in the current version of each of ``alerts``: a firing one may inhibit, a
        resolved one no longer does."""
        if not self.rules:
            return
        with self._lock:
            for alert in alerts:
                self._remove(alert.fingerprint)
                if alert.ends_at is None:
                    placed = [spot for rule in self._sources if (spot := rule.add(alert)) is not None]
                    if placed:
                        self._placed[alert.fingerprint] = placed

    def _remove(self, fingerprint: str) -> None:
        for side, key in self._placed.pop(fingerprint, ()):
            group = side.get(key)
            if group is not None:
                group.pop(fingerprint, None)
                if not group:
                    del side[key]

    def muted_by(self, alert: Alert, now: float) -> list[str]:
        """Fingerprints of firing alerts inhibiting ``alert``, one per rule that inhibits it
        (Alertmanager records one too)."""
        if not self.rules:
            return []
        with self._lock:
            found = [source for rule in self._sources if (source := rule.inhibitor_of(alert)) is not None]
        return list(dict.fromkeys(found))
