"""The alerting JSON API (the dashboard's alert views read it; users script against it):

    GET    /api/alerts                       current alerts with state and filters (a page of them:
                                             ``limit``, ``offset``; the total in X-Total-Count)
    GET    /api/alerts/history               firing/resolved transitions
    POST   /api/alerts/{fingerprint}/ack     acknowledge (operator)
    GET    /api/silences                     list
    POST   /api/silences                     create (operator)
    DELETE /api/silences/{id}                expire (operator)
    GET    /api/notifications                the outbox: pending, delivered, failed, expired

State-changing routes depend on ``require_operator``; GETs change nothing.
"""
from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Response, status
from pydantic import BaseModel, Field

from alerts.judged import AlertState, Judged, judge
from alerts.model import Alert, rfc3339
from alerts.notify.matchers import AlertMatcher, matches_all, parse_matchers
from alerts.notify.pipeline import Pipeline
from alerts.outbox import Entry
from alerts.silences import Silence, SilenceError
from cwkernel.auth import Operator, require_operator
from cwkernel.durations import parse_duration

TOTAL_HEADER = "X-Total-Count"
DEFAULT_ALERTS_LIMIT = 1000  # a storm's 50,000 alerts are 25 MB of JSON: ask for pages
MAX_ALERTS_LIMIT = 10_000


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


class AckIn(BaseModel):
    comment: str = Field(min_length=1, max_length=2000)
    by: str | None = Field(default=None, max_length=200, description="default: the authenticated operator")


class MatcherModel(BaseModel):
    """Alertmanager API v2's matcher object."""

    name: str = Field(min_length=1)
    value: str
    isRegex: bool = False
    isEqual: bool = True


class SilenceIn(BaseModel):
    matchers: list[MatcherModel | str] = Field(min_length=1, description="matcher objects or strings like "
                                                                        "'instance=~\"node0[1-3]\"'")
    startsAt: datetime | None = None
    endsAt: datetime | None = Field(default=None, description="either endsAt or duration")
    duration: str | None = Field(default=None, description="e.g. 2h")
    createdBy: str | None = Field(default=None, min_length=1, max_length=200,
                                  description="shown with the silence; the authenticated operator is always recorded")
    comment: str = Field(min_length=1, max_length=2000)


class SilenceOut(BaseModel):
    id: str
    matchers: list[MatcherModel]
    startsAt: str
    endsAt: str
    createdBy: str
    comment: str
    updatedAt: str
    state: Literal["pending", "active", "expired"]


class NotificationOut(BaseModel):
    id: int
    idempotencyKey: str
    receiver: str
    integration: str
    groupKey: str
    status: str
    state: Literal["pending", "delivered", "failed", "expired"]
    attempts: int
    createdAt: str
    nextAttempt: str | None
    deliveredAt: str | None
    lastError: str | None
    alerts: int


def render_alert(pipeline: Pipeline, judged: Judged) -> AlertOut:
    alert, ack = judged.alert, judged.ack
    stored = pipeline.store.get(alert.fingerprint)
    return AlertOut(
        fingerprint=alert.fingerprint, labels=alert.labels, annotations=alert.annotations,
        startsAt=rfc3339(alert.starts_at), endsAt=rfc3339(alert.ends_at) if alert.ends_at is not None else None,
        generatorURL=alert.generator_url, status=alert.status, state=judged.state, silencedBy=judged.silenced_by,
        inhibitedBy=judged.inhibited_by, source=stored.source if stored else "",
        acknowledged=AckOut(by=ack.acked_by, comment=ack.comment, at=rfc3339(ack.acked_at)) if ack else None,
    )


def alert_view(pipeline: Pipeline, alert: Alert, now: float) -> AlertOut:
    """One alert as the API and the dashboard show it; the state is computed now, not stored."""
    return render_alert(pipeline, judge(pipeline, alert, now))


def _author(claimed: str | None, operator: Operator) -> str:
    """Who created a silence: the authenticated operator, whatever name the body claims."""
    if not claimed or claimed == operator.name:
        return operator.name
    return f"{claimed} (via {operator.name})"


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


def _matcher(item: MatcherModel | str) -> list[AlertMatcher]:
    if isinstance(item, str):
        return parse_matchers(item)
    op = {(False, True): "=", (False, False): "!=", (True, True): "=~", (True, False): "!~"}[(item.isRegex,
                                                                                            item.isEqual)]
    return [AlertMatcher(item.name, op, item.value)]


def _bad_request(message: str) -> HTTPException:
    return HTTPException(status.HTTP_400_BAD_REQUEST, message)


def build_router(pipeline: Pipeline) -> APIRouter:
    router = APIRouter(prefix="/api", tags=["alerts"])

    @router.get("/alerts", response_model=list[AlertOut])
    def list_alerts(
        response: Response,
        state: list[AlertState] = Query(default=[], description="keep only these states"),
        filter: list[str] = Query(default=[], description="label matchers, e.g. severity=\"critical\""),
        source: str | None = Query(default=None, description="evaluator, or alertmanager:<receiver>"),
        limit: int = Query(default=DEFAULT_ALERTS_LIMIT, ge=1, le=MAX_ALERTS_LIMIT,
                           description=f"at most this many (the total is in the {TOTAL_HEADER} header)"),
        offset: int = Query(default=0, ge=0, le=10_000_000, description="skip this many first"),
    ) -> list[AlertOut]:
        """Firing first, then by start; a page of ``limit`` from ``offset``."""
        try:
            matchers = [m for text in filter for m in parse_matchers(text)]
        except ValueError as exc:
            raise _bad_request(f"filter: {exc}") from None
        sources = pipeline.store.sources() if source is not None else {}
        judged = [j for j in pipeline.judged.current()  # in sort_key order
                  if matches_all(matchers, j.alert.labels) and (not state or j.state in state)
                  and (source is None or sources.get(j.alert.fingerprint) == source)]
        response.headers[TOTAL_HEADER] = str(len(judged))
        return [render_alert(pipeline, j) for j in judged[offset:offset + limit]]

    @router.get("/alerts/history", response_model=list[HistoryOut])
    def alert_history(limit: int = Query(default=100, ge=1, le=10000), since: datetime | None = None,
                      fingerprint: str | None = None) -> list[HistoryOut]:
        rows = pipeline.store.history(limit, since.timestamp() if since else None, fingerprint)
        return [HistoryOut(**{**{k: r[k] for k in ("fingerprint", "alertname", "status", "labels", "annotations",
                                                   "source")}, "at": rfc3339(r["at"])}) for r in rows]

    @router.post("/alerts/{fingerprint}/ack", response_model=AlertOut)
    def acknowledge(fingerprint: str, body: AckIn, operator: Operator = Depends(require_operator)) -> AlertOut:
        try:
            pipeline.store.ack(fingerprint, body.by or operator.name, body.comment, pipeline.clock())
        except KeyError:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no current alert with fingerprint {fingerprint}") from None
        return alert_view(pipeline, pipeline.store.get(fingerprint).alert, pipeline.clock())

    @router.get("/silences", response_model=list[SilenceOut])
    def list_silences(state: Literal["pending", "active", "expired"] | None = None) -> list[SilenceOut]:
        now = pipeline.clock()
        return [silence_view(s, now) for s in pipeline.silences.list(state)]

    @router.post("/silences", response_model=SilenceOut, status_code=status.HTTP_201_CREATED)
    def create_silence(body: SilenceIn, operator: Operator = Depends(require_operator)) -> SilenceOut:
        try:
            matchers = [m for item in body.matchers for m in _matcher(item)]
            starts = body.startsAt.timestamp() if body.startsAt else None
            if body.endsAt is not None and body.duration is not None:
                raise SilenceError("give endsAt or duration, not both")
            if body.endsAt is not None:
                ends = body.endsAt.timestamp()
            elif body.duration is not None:
                ends = (starts or pipeline.clock()) + parse_duration(body.duration)
            else:
                raise SilenceError("endsAt or duration is required")
            silence = pipeline.silences.create(matchers, ends, _author(body.createdBy, operator), body.comment, starts)
        except ValueError as exc:
            raise _bad_request(str(exc)) from None
        return silence_view(silence, pipeline.clock())

    @router.delete("/silences/{silence_id}", response_model=SilenceOut)
    def expire_silence(silence_id: str, operator: Operator = Depends(require_operator)) -> SilenceOut:
        try:
            silence = pipeline.silences.expire(silence_id)
        except KeyError:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no silence {silence_id}") from None
        except SilenceError as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
        return silence_view(silence, pipeline.clock())

    @router.get("/notifications", response_model=list[NotificationOut])
    def notifications(state: Literal["pending", "delivered", "failed", "expired"] | None = None,
                      receiver: str | None = None,
                      limit: int = Query(default=100, ge=1, le=10000)) -> list[NotificationOut]:
        return [notification_view(e) for e in pipeline.outbox.list(state, receiver, limit)]

    return router
