"""Alerting rules with Prometheus 2.42's state machine (rules/alerting.go), step by step.

- Each sample of the query result becomes an alert keyed by its labels (sample labels minus
  ``__name__``, plus the rule's templated labels, plus ``alertname``). A new one is *pending*
  with ``active_at`` = now; it turns *firing* once ``now - active_at >= for`` (at once when
  ``for`` is 0).
- An alert missing from the result: pending ones are dropped; firing ones stay firing while
  ``keep_firing_for`` has not run out since they went missing, then turn *inactive* (resolved at
  that time) and are kept 15 minutes so that receivers hear that they resolved.
- A resolved alert whose labels come back starts again as pending.
- Every evaluation writes ``ALERTS{alertstate}`` and ``ALERTS_FOR_STATE`` (value: active_at in
  whole seconds) for pending and firing alerts.
- ``to_send`` applies Prometheus's resend rules: pending never; resolved since last sent, or not
  sent for ``resend_delay``, yes.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from alerts.evaluator.rulefile import Rule
from alerts.evaluator.templates import QueryFunc, Template, TemplateError, alert_template_name
from alerts.evaluator import gofmt
from alerts.evaluator.vector import RuleEvalError, Sample, as_labels
from alerts.model import Alert, fingerprint
from cwkernel.series import Labels

PENDING, FIRING, INACTIVE = "pending", "firing", "inactive"
RESOLVED_RETENTION_S = 15 * 60.0


@dataclass
class ActiveAlert:
    labels: dict[str, str]
    annotations: dict[str, str]
    value: float
    state: str
    active_at: float
    fired_at: float | None = None
    resolved_at: float | None = None
    last_sent_at: float | None = None
    valid_until: float | None = None
    keep_firing_since: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def clock_went_back(self, ts: float) -> None:
        """Times after ``ts`` came from a clock that has since stepped back: they are now. Kept,
        a pending alert would wait out its ``for`` from an hour ahead, and a firing one go unsent
        until the clock passed its last send."""
        self.active_at = min(self.active_at, ts)
        for name in ("fired_at", "resolved_at", "last_sent_at", "keep_firing_since"):
            when = getattr(self, name)
            if when is not None and when > ts:
                setattr(self, name, ts)

    def needs_sending(self, ts: float, resend_delay: float) -> bool:
        if self.state == PENDING:
            return False
        if self.resolved_at is not None and (self.last_sent_at is None or self.resolved_at > self.last_sent_at):
            return True
        return self.last_sent_at is None or self.last_sent_at + resend_delay < ts


class AlertingRule:
    def __init__(self, rule: Rule, external_labels: dict[str, str] | None = None, external_url: str = "") -> None:
        self.rule = rule
        self.external_labels = dict(external_labels or {})
        self.external_url = external_url
        self.active: dict[str, ActiveAlert] = {}
        self._latest_ts = math.inf  # the last evaluation's time; at first, alerts restored from a file
        name = alert_template_name(rule.name)
        self._labels = {k: Template(v, f"label {k}", name) for k, v in rule.labels.items()}
        self._annotations = {k: Template(v, f"annotation {k}", name) for k, v in rule.annotations.items()}

    def carry_clock(self, previous: "AlertingRule") -> None:
        """Take over the last evaluation time of the rule this one replaces (a reload)."""
        self._latest_ts = previous._latest_ts

    def _expand(self, template: Template, labels: dict[str, str], value: float, query: QueryFunc | None) -> str:
        try:
            return template.render(labels, value, self.external_labels, self.external_url, query)
        except (TemplateError, gofmt.TemplateFuncError) as exc:
            return f"<error expanding template: {exc}>"

    def eval(self, ts: float, vector: list[Sample], query: QueryFunc | None = None,
             limit: int = 0) -> list[tuple[Labels, float]]:
        """Advance the state machine to ``ts``; returns the ALERTS and ALERTS_FOR_STATE samples."""
        current: dict[str, ActiveAlert] = {}
        for sample_labels, value in vector:
            labels = {k: v for k, v in sample_labels.items() if k != "__name__"}
            for name, template in self._labels.items():
                expanded = self._expand(template, sample_labels, value, query)
                if expanded == "":
                    labels.pop(name, None)
                else:
                    labels[name] = expanded
            labels["alertname"] = self.rule.name
            annotations = {k: self._expand(t, sample_labels, value, query) for k, t in self._annotations.items()}
            key = fingerprint(labels)
            if key in current:
                raise RuleEvalError("vector contains metrics with the same labelset after applying alert labels")
            current[key] = ActiveAlert(labels, annotations, value, PENDING, ts)

        # Changed on a copy, then swapped in: readers on other threads (/metrics, the API) iterate
        # the dict they took without a lock, so a published dict is never changed.
        active = dict(self.active)
        for key, alert in current.items():
            known = active.get(key)
            if known is not None and known.state != INACTIVE:
                known.value, known.annotations = alert.value, alert.annotations
                known.keep_firing_since = None
            else:
                active[key] = alert

        out: list[tuple[Labels, float]] = []
        active_pending = 0
        if ts < self._latest_ts:  # the clock stepped back (or state restored): once, not per alert each time
            for alert in active.values():
                alert.clock_went_back(ts)
        self._latest_ts = ts
        for key, alert in list(active.items()):
            if key not in current:
                keep_firing = False
                if alert.state == FIRING and self.rule.keep_firing_for_s > 0:
                    if alert.keep_firing_since is None:
                        alert.keep_firing_since = ts
                    keep_firing = ts - alert.keep_firing_since < self.rule.keep_firing_for_s
                if alert.state == PENDING or (alert.resolved_at is not None
                                              and ts - alert.resolved_at > RESOLVED_RETENTION_S):
                    del active[key]
                if alert.state != INACTIVE and not keep_firing:
                    alert.state = INACTIVE
                    alert.resolved_at = ts
                if not keep_firing:
                    continue
            active_pending += 1
            if alert.state == PENDING and ts - alert.active_at >= self.rule.for_s:
                alert.state = FIRING
                alert.fired_at = ts
            out.append((as_labels({**alert.labels, "__name__": "ALERTS", "alertstate": alert.state}), 1.0))
            out.append((as_labels({**alert.labels, "__name__": "ALERTS_FOR_STATE"}),
                        float(math.floor(alert.active_at))))
        if limit and active_pending > limit:
            self.active = {}
            raise RuleEvalError(f"exceeded limit of {limit} with {active_pending} alerts")
        self.active = active
        return out

    def to_send(self, ts: float, resend_delay: float, interval: float) -> list[Alert]:
        """Alerts due to be sent now (Prometheus's sendAlerts), marked as sent."""
        out = []
        for alert in self.active.values():
            if not alert.needs_sending(ts, resend_delay):
                continue
            alert.last_sent_at = ts
            # Valid for four sends: two missed evaluations or deliveries do not resolve it.
            alert.valid_until = ts + 4 * max(resend_delay, interval)
            out.append(Alert(labels=dict(alert.labels), annotations=dict(alert.annotations),
                             starts_at=alert.fired_at if alert.fired_at is not None else alert.active_at,
                             ends_at=alert.resolved_at, generator_url=self.generator_url()))
        return out

    def generator_url(self) -> str:
        from urllib.parse import quote

        return f"{self.external_url.rstrip('/')}/graph?g0.expr={quote(self.rule.expr, safe='')}&g0.tab=1"

    def firing(self) -> list[ActiveAlert]:
        return [a for a in self.active.values() if a.state == FIRING]


def restore_alert(data: dict[str, Any]) -> ActiveAlert:
    return ActiveAlert(**data)
