"""Inhibition: a firing source alert mutes target alerts that share the ``equal`` labels
(Alertmanager's inhibit.go, including that an alert matching both sides of a rule is not
inhibited by another alert that also matches both sides)."""
from __future__ import annotations

from typing import Callable, Iterable

from alerts.model import Alert
from alerts.notify.config import InhibitRule
from alerts.notify.matchers import matches_all


class Inhibitor:
    def __init__(self, rules: list[InhibitRule], alerts: Callable[[], Iterable[Alert]]) -> None:
        self.rules = rules
        self.alerts = alerts

    def muted_by(self, alert: Alert, now: float) -> list[str]:
        if not self.rules:
            return []
        current = [a for a in self.alerts() if a.ends_at is None or a.ends_at > now]
        found: list[str] = []
        for rule in self.rules:
            if not matches_all(rule.target, alert.labels):
                continue
            two_sided = matches_all(rule.source, alert.labels)
            for source in current:
                if source.fingerprint == alert.fingerprint or source.ends_at is not None:
                    continue
                if not matches_all(rule.source, source.labels):
                    continue
                if two_sided and matches_all(rule.target, source.labels):
                    continue
                if all(source.labels.get(name, "") == alert.labels.get(name, "") for name in rule.equal):
                    found.append(source.fingerprint)
        return found
