"""The alerting JSON API (users script against it; the dashboard's alerts page shows the same
models through the same reader, ``alerts.reader.AlertingReader``):

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

from fastapi import APIRouter, Depends, HTTPException, Query, Response, status
from pydantic import BaseModel, Field

from alerts.judged import AlertState
from alerts.notify.matchers import AlertMatcher, matches_all, parse_matchers
from alerts.notify.pipeline import Pipeline
from alerts.reader import (AlertingReader, AlertOut, HistoryOut, MatcherModel, NotificationOut, NotificationState,
                           SilenceOut, SilenceState, silence_view)
from alerts.silences import SilenceError
from cwkernel.auth import Operator, require_operator
from cwkernel.durations import parse_duration

TOTAL_HEADER = "X-Total-Count"
DEFAULT_ALERTS_LIMIT = 1000  # a storm's 50,000 alerts are 25 MB of JSON: ask for pages
MAX_ALERTS_LIMIT = 10_000


class AckIn(BaseModel):
    comment: str = Field(min_length=1, max_length=2000)
    by: str | None = Field(default=None, max_length=200, description="default: the authenticated operator")


class SilenceIn(BaseModel):
    matchers: list[MatcherModel | str] = Field(min_length=1, description="matcher objects or strings like "
                                                                        "'instance=~\"node0[1-3]\"'")
    startsAt: datetime | None = None
    endsAt: datetime | None = Field(default=None, description="either endsAt or duration")
    duration: str | None = Field(default=None, description="e.g. 2h")
    createdBy: str | None = Field(default=None, min_length=1, max_length=200,
                                  description="shown with the silence; the authenticated operator is always recorded")
    comment: str = Field(min_length=1, max_length=2000)


def _author(claimed: str | None, operator: Operator) -> str:
    """Who created a silence: the authenticated operator, whatever name the body claims."""
    if not claimed or claimed == operator.name:
        return operator.name
    return f"{claimed} (via {operator.name})"


def _matcher(item: MatcherModel | str) -> list[AlertMatcher]:
    if isinstance(item, str):
        return parse_matchers(item)
    op = {(False, True): "=", (False, False): "!=", (True, True): "=~", (True, False): "!~"}[(item.isRegex,
                                                                                            item.isEqual)]
    return [AlertMatcher(item.name, op, item.value)]


def _bad_request(message: str) -> HTTPException:
    return HTTPException(status.HTTP_400_BAD_REQUEST, message)


def build_router(pipeline: Pipeline) -> APIRouter:
    """The routes over ``pipeline``: GETs through its reader, changes through the pipeline."""
    reader = AlertingReader(pipeline)
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
        sources = reader.sources() if source is not None else {}
        judged = [j for j in reader.current()  # in sort_key order
                  if matches_all(matchers, j.alert.labels) and (not state or j.state in state)
                  and (source is None or sources.get(j.alert.fingerprint) == source)]
        response.headers[TOTAL_HEADER] = str(len(judged))
        return [reader.alert(j) for j in judged[offset:offset + limit]]

    @router.get("/alerts/history", response_model=list[HistoryOut])
    def alert_history(limit: int = Query(default=100, ge=1, le=10000), since: datetime | None = None,
                      fingerprint: str | None = None) -> list[HistoryOut]:
        return reader.history(limit, since.timestamp() if since else None, fingerprint)

    @router.post("/alerts/{fingerprint}/ack", response_model=AlertOut)
    def acknowledge(fingerprint: str, body: AckIn, operator: Operator = Depends(require_operator)) -> AlertOut:
        try:
            pipeline.store.ack(fingerprint, body.by or operator.name, body.comment, pipeline.clock())
        except KeyError:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no current alert with fingerprint {fingerprint}") from None
        return reader.alert_now(fingerprint)

    @router.get("/silences", response_model=list[SilenceOut])
    def list_silences(state: SilenceState | None = None) -> list[SilenceOut]:
        return reader.silences(state)

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
    def notifications(state: NotificationState | None = None,
                      receiver: str | None = None,
                      limit: int = Query(default=100, ge=1, le=10000)) -> list[NotificationOut]:
        return reader.notifications(state, receiver, limit)

    return router
