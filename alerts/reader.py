"""The notification pipeline, read: what the alerting API's GETs and the dashboard's alerts page
show (every current alert judged, the firing/resolved history, silences, the outbox and the
receivers' queues), in the API's models, so that ``/api/alerts`` and the page can never disagree.

Readers get an ``AlertingReader``, never the pipeline: its stores, silences and inhibitor stay the
pipeline's own. What changes alert state (acknowledge, silence, expire) is the alerting API's
authenticated routes (alerts/api.py), not this.
"""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from alerts.judged import AlertState, Judged, judge
from alerts.model import rfc3339
from alerts.notify.pipeline import Pipeline
from alerts.outbox import Entry
from alerts.silences import Silence

SilenceState = Literal["pending", "active", "expired"]
NotificationState = Literal["pending", "delivered", "failed", "expired"]


class AckOut(BaseModel):
    by: str
    comment: str
    at: str


class AlertOut(BaseModel):
    fingerprint: str
    labels: dict[str, str]
    annotations: dict[str, str]
    startsAt: str
    endsAt: str | None
    generatorURL: str
    status: Literal["firing", "resolved"]
    state: AlertState
    silencedBy: list[str]
    inhibitedBy: list[str]
    acknowledged: AckOut | None
    source: str


class HistoryOut(BaseModel):
    at: str
    fingerprint: str
    alertname: str
    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str]
    source: str


class MatcherModel(BaseModel):
    """Alertmanager API v2's matcher object."""

    name: str = Field(min_length=1)
    value: str
    isRegex: bool = False
    isEqual: bool = True


class SilenceOut(BaseModel):
    id: str
    matchers: list[MatcherModel]
    startsAt: str
    endsAt: str
    createdBy: str
    comment: str
    updatedAt: str
    state: SilenceState


class NotificationOut(BaseModel):
    id: int
    idempotencyKey: str
    receiver: str
    integration: str
    groupKey: str
    status: str
    state: NotificationState
    attempts: int
    createdAt: str
    nextAttempt: str | None
    deliveredAt: str | None
    lastError: str | None
    alerts: int


class ReceiverQueue(BaseModel):
    """One receiver integration's notification queue (the outbox)."""

    receiver: str
    integration: str
    pending: int = Field(description="notifications waiting for delivery (bounded per receiver)")
    dropped: int = Field(description="notifications given up without delivery since the server started "
                                     "(queue full or expired)")


class AlertingReader:
    """Read-only access to one pipeline's alert state, in the alerting API's models."""

    def __init__(self, pipeline: Pipeline) -> None:
        self._pipeline = pipeline

    def now(self) -> float:
        """The pipeline's clock: the moment alert and silence states are judged at."""
        return self._pipeline.clock()

    def current(self) -> list[Judged]:
        """Every alert the pipeline holds, judged now, in ``Judged.sort_key`` order (firing
        first, then by start); shared by every reader until something it depends on changes."""
        return self._pipeline.judged.current()

    def sources(self) -> dict[str, str]:
        """Fingerprint -> where the alert came from (evaluator, or alertmanager:<receiver>)."""
        return self._pipeline.store.sources()

    def alert(self, judged: Judged) -> AlertOut:
        alert, ack = judged.alert, judged.ack
        stored = self._pipeline.store.get(alert.fingerprint)
        return AlertOut(
            fingerprint=alert.fingerprint, labels=alert.labels, annotations=alert.annotations,
            startsAt=rfc3339(alert.starts_at), endsAt=rfc3339(alert.ends_at) if alert.ends_at is not None else None,
            generatorURL=alert.generator_url, status=alert.status, state=judged.state, silencedBy=judged.silenced_by,
            inhibitedBy=judged.inhibited_by, source=stored.source if stored else "",
            acknowledged=AckOut(by=ack.acked_by, comment=ack.comment, at=rfc3339(ack.acked_at)) if ack else None,
        )

    def alert_now(self, fingerprint: str) -> AlertOut | None:
        """One current alert judged now (not from the shared judgement), or None."""
        stored = self._pipeline.store.get(fingerprint)
        return self.alert(judge(self._pipeline, stored.alert, self.now())) if stored is not None else None

    def history(self, limit: int, since: float | None = None, fingerprint: str | None = None) -> list[HistoryOut]:
        """Firing/resolved transitions, newest first."""
        rows = self._pipeline.store.history(limit, since, fingerprint)
        return [HistoryOut(at=rfc3339(r["at"]), **{k: r[k] for k in ("fingerprint", "alertname", "status", "labels",
                                                                      "annotations", "source")}) for r in rows]

    def silences(self, state: SilenceState | None = None, ended_since: float | None = None) -> list[SilenceOut]:
        """The silences (in ``state``); with ``ended_since``, expired ones only if they ended
        then or later."""
        now = self.now()
        return [silence_view(s, now) for s in self._pipeline.silences.list(state)
                if ended_since is None or s.state(now) != "expired" or s.ends_at >= ended_since]

    def notifications(self, state: NotificationState | None = None, receiver: str | None = None,
                      limit: int = 100) -> list[NotificationOut]:
        return [notification_view(e) for e in self._pipeline.outbox.list(state, receiver, limit)]

    def receiver_queues(self) -> list[ReceiverQueue]:
        """Each receiver integration's pending and dropped notifications, by name."""
        pending = self._pipeline.pending_by_target()
        dropped = self._pipeline.metrics.dropped_by_target()
        return [ReceiverQueue(receiver=receiver, integration=integration,
                              pending=pending.get((receiver, integration), 0),
                              dropped=dropped.get((receiver, integration), 0))
                for receiver, integration in sorted(set(pending) | set(dropped))]


def silence_view(silence: Silence, now: float) -> SilenceOut:
    return SilenceOut(
        id=silence.id, startsAt=rfc3339(silence.starts_at), endsAt=rfc3339(silence.ends_at),
        matchers=[MatcherModel(name=m.name, value=m.value, isRegex=m.is_regex, isEqual=m.is_equal)
                  for m in silence.matchers],
        createdBy=silence.created_by, comment=silence.comment, updatedAt=rfc3339(silence.updated_at),
        state=silence.state(now),
    )


def notification_view(entry: Entry) -> NotificationOut:
    return NotificationOut(
        id=entry.id, idempotencyKey=entry.key, receiver=entry.receiver, integration=entry.integration,
        groupKey=entry.group_key, status=entry.status, state=entry.state, attempts=entry.attempts,
        createdAt=rfc3339(entry.created_at), lastError=entry.last_error,
        nextAttempt=rfc3339(entry.next_attempt) if entry.state == "pending" else None,
        deliveredAt=rfc3339(entry.delivered_at) if entry.delivered_at else None,
        alerts=len(entry.body.get("alerts", [])) if isinstance(entry.body.get("alerts"), list) else 0,
    )
