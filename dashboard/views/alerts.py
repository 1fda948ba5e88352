"""Alerts: what fires now (with its silence, inhibition or acknowledgement), what is pending, the
firing/resolved history over the range, the silences, and the filter choices.

Two sources, each the authority on its part: the notification pipeline owns alert state,
acknowledgements, silences and history, read through its reader (``ctx.alerting``,
``alerts.reader.AlertingReader``), the one the alerting API reads through, in that API's models,
so that the page and ``/api/alerts`` can never disagree; pending alerts exist only
in the rule evaluator, which writes them as ``ALERTS{alertstate="pending"}`` series, so they come
through PromQL (and so from a real Prometheus's rules too in ``--prometheus-url`` mode).

Filters are label matchers built here from validated parameters and applied in Python to both
sources: nothing from the URL goes into a PromQL query.

A storm leaves tens of thousands of alerts current: every one is judged (its state, for the
counts; cheap with the indexed inhibitor), but only the first ``ALERTS_SHOWN`` are rendered and
sent, with the total; the filter menus offer at most ``CHOICES_SHOWN`` values each.
"""
from __future__ import annotations

import heapq

from pydantic import BaseModel, Field

from alerts.judged import Judged
from alerts.reader import AlertOut, HistoryOut, ReceiverQueue, SilenceOut
from alerts.notify.matchers import AlertMatcher, matches_all
from dashboard.context import DashboardContext
from dashboard.params import TimeRange
from dashboard.promql import split_by_name
from tsdb.client import QueryResult

HISTORY_LIMIT = 500
ALERTS_SHOWN = 500
CHOICES_SHOWN = 500
# The rule evaluator's own labels on ALERTS series; not the alert's.
_SERIES_LABELS = {"__name__", "alertstate"}


class AlertFilters(BaseModel):
    severity: str | None = None
    alertname: str | None = None
    instance: str | None = Field(None, description="a regular expression matched against the whole instance")

    def matchers(self) -> list[AlertMatcher]:
        """ValueError (a bad instance regex) names the problem."""
        found = [AlertMatcher(name, "=", value) for name, value in (("severity", self.severity),
                                                                    ("alertname", self.alertname)) if value]
        if self.instance:
            found.append(AlertMatcher("instance", "=~", self.instance))
        return found


class PendingAlert(BaseModel):
    labels: dict[str, str]
    active_since: float | None = Field(description="when the condition started to hold (Unix s)")


class AlertChoices(BaseModel):
    """Values seen now, for the filter menus."""

    severity: list[str]
    alertname: list[str]
    instance: list[str]


class AlertsView(BaseModel):
    time: float
    start: float
    end: float
    filters: AlertFilters
    connected: bool = Field(description="false when serve runs without the notification pipeline: then "
                                        "only the evaluator's ALERTS series are known (pending here)")
    counts: dict[str, int] = Field(description="current alerts by state (firing, silenced, inhibited, "
                                               "acknowledged) plus pending, after the filters")
    firing_by_severity: dict[str, int] = Field(description="alerts in state firing, by severity")
    alerts: list[AlertOut] = Field(description=f"current alerts, as GET /api/alerts returns them: the first "
                                               f"{ALERTS_SHOWN} (criticals first, then oldest)")
    alerts_total: int = Field(0, description="current alerts after the filters (`alerts` may hold fewer)")
    pending: list[PendingAlert] = Field(description=f"the first {ALERTS_SHOWN}; counts.pending has them all")
    history: list[HistoryOut] = Field(description="firing/resolved transitions in the range, newest first")
    silences: list[SilenceOut] = Field(description="pending and active silences, and those expired in the range")
    choices: AlertChoices
    receivers: list[ReceiverQueue] = Field(default_factory=list, description="the notification queues")
    automation: bool = Field(description="whether this server runs the remediation engine, whose own API "
                                         "(/api/automation/cases, /audit) is the automation log")


def series_of(parts: dict[str, QueryResult], name: str) -> list:
    return parts[name].series if name in parts else []


def _pending(ctx: DashboardContext, at: float) -> list[PendingAlert]:
    parts = split_by_name(ctx.query.instant('{__name__=~"ALERTS|ALERTS_FOR_STATE"}', at))
    since = {frozenset(s.labels.items() - {("__name__", "ALERTS_FOR_STATE")}): s.value
             for s in series_of(parts, "ALERTS_FOR_STATE")}
    out = []
    for series in series_of(parts, "ALERTS"):
        if series.labels.get("alertstate") != "pending":
            continue
        labels = {k: v for k, v in series.labels.items() if k not in _SERIES_LABELS}
        out.append(PendingAlert(labels=labels, active_since=since.get(frozenset(labels.items()))))
    return sorted(out, key=lambda p: (p.labels.get("alertname", ""), sorted(p.labels.items())))


def _page_order(judged: Judged) -> tuple:
    alert = judged.alert
    return alert.labels.get("severity") != "critical", alert.starts_at, alert.fingerprint


def alerts_page(ctx: DashboardContext, tr: TimeRange, filters: AlertFilters) -> AlertsView:
    matchers = filters.matchers()
    pending_all = _pending(ctx, tr.end)
    alerting = ctx.alerting
    current: list[Judged] = []
    history: list[HistoryOut] = []
    silences: list[SilenceOut] = []
    receivers: list[ReceiverQueue] = []
    if alerting is not None:
        current = [j for j in alerting.current() if j.alert.ends_at is None]
        history = alerting.history(HISTORY_LIMIT, tr.start)
        silences = alerting.silences(ended_since=tr.start)
        receivers = alerting.receiver_queues()
    seen = [j.alert.labels for j in current] + [p.labels for p in pending_all]
    choices = AlertChoices(**{name: sorted({labels[name] for labels in seen if labels.get(name)})[:CHOICES_SHOWN]
                              for name in AlertChoices.model_fields})

    matching = [j for j in current if matches_all(matchers, j.alert.labels)]
    shown = [alerting.alert(j) for j in heapq.nsmallest(ALERTS_SHOWN, matching, key=_page_order)]
    pending = [p for p in pending_all if matches_all(matchers, p.labels)]
    counts: dict[str, int] = {"pending": len(pending)}
    by_severity: dict[str, int] = {}
    for judged in matching:
        counts[judged.state] = counts.get(judged.state, 0) + 1
        if judged.state == "firing":
            severity = judged.alert.labels.get("severity") or "none"
            by_severity[severity] = by_severity.get(severity, 0) + 1
    return AlertsView(
        time=ctx.clock(), start=tr.start, end=tr.end, filters=filters, connected=alerting is not None,
        counts=counts, firing_by_severity=by_severity, alerts=shown, alerts_total=len(matching),
        pending=pending[:ALERTS_SHOWN], history=[h for h in history if matches_all(matchers, h.labels)],
        silences=silences, choices=choices, receivers=receivers, automation=ctx.automation,
    )
