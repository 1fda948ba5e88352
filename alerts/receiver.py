"""Inbound receiver: ``POST /api/v1/alertmanager/webhook`` accepts Alertmanager's webhook (v4;
0.25's fields, plus ``notification_reason`` from 0.32 and ``routeLabels`` from 0.34, neither
required) so that a production Prometheus + Alertmanager feeds the same alert store, views and
automation as the embedded evaluator.

Authentication: ``Authorization: Bearer <token>`` (Alertmanager's ``http_config.authorization``)
or ``X-ClusterWatch-Signature: sha256=<hex HMAC of the body>``; each compared in constant time.
With neither configured the endpoint refuses everything.
"""
from __future__ import annotations

import hmac
import json
import logging
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Request, status
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from alerts.notify import payload
from alerts.notify.integrations.webhook import SIGNATURE_HEADER, sign
from alerts.notify.pipeline import Pipeline

log = logging.getLogger(__name__)

PATH = "/api/v1/alertmanager/webhook"
MAX_BODY = 4 * 1024 * 1024


class WebhookAlert(BaseModel):
    model_config = ConfigDict(extra="allow")
    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: str
    endsAt: str = payload.ZERO_TIME
    generatorURL: str = ""
    fingerprint: str = ""


class WebhookMessage(BaseModel):
    """Alertmanager's webhook body, version 4."""

    model_config = ConfigDict(extra="allow")
    version: Literal["4"]
    groupKey: str
    truncatedAlerts: int = 0
    status: Literal["firing", "resolved"]
    receiver: str
    groupLabels: dict[str, str]
    commonLabels: dict[str, str]
    commonAnnotations: dict[str, str]
    externalURL: str
    alerts: list[WebhookAlert]
    notification_reason: str | None = None
    routeLabels: dict[str, str] | None = None


class Accepted(BaseModel):
    accepted: int
    fingerprints: list[str]


def parse_message(body: bytes) -> WebhookMessage:
    """The validated message; ValueError with a reason a sender can act on."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"body is not JSON: {exc}") from None
    try:
        message = WebhookMessage.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(body)"
        raise ValueError(f"{where}: {first['msg']} ({exc.error_count()} error(s))") from None
    for i, alert in enumerate(message.alerts):
        for name in ("startsAt", "endsAt"):
            try:
                payload.parse_time(getattr(alert, name))
            except ValueError as exc:
                raise ValueError(f"alerts.{i}.{name}: not an RFC 3339 time ({exc})") from None
    return message


def _bearer(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _same(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


class InboundAuth:
    def __init__(self, token: str | None = None, hmac_secret: str | None = None) -> None:
        self.token = token or None
        self.hmac_secret = hmac_secret or None

    def check(self, request: Request, body: bytes) -> None:
        if not self.token and not self.hmac_secret:
            raise HTTPException(status.HTTP_403_FORBIDDEN, "inbound webhook disabled: no --webhook-token configured")
        if self.token and _same(_bearer(request), self.token):
            return
        signature = request.headers.get(SIGNATURE_HEADER)
        if self.hmac_secret and _same(signature, sign(self.hmac_secret, body)):
            return
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "bad or missing bearer token or signature",
                            headers={"WWW-Authenticate": "Bearer"})


def request_schema() -> dict[str, Any]:
    """WebhookMessage's JSON schema with its nested definitions inlined."""
    schema = WebhookMessage.model_json_schema()
    definitions = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return inline(definitions[ref.rsplit("/", 1)[1]])
            return {k: inline(v) for k, v in node.items()}
        if isinstance(node, list):
            return [inline(v) for v in node]
        return node

    return inline(schema)


def build_router(pipeline: Pipeline, auth: InboundAuth) -> APIRouter:
    router = APIRouter(tags=["alertmanager receiver"])

    # The body is read raw (the HMAC is over the exact bytes, and a bad body is a 400 with a
    # reason rather than FastAPI's 422), so its schema is declared for the OpenAPI document here.
    @router.post(PATH, response_model=Accepted, status_code=200, openapi_extra={
        "requestBody": {"required": True, "content": {"application/json": {"schema": request_schema()}}}})
    async def alertmanager_webhook(request: Request) -> Any:
        """Alertmanager's webhook (version 4); the alerts enter the alert store and the pipeline."""
        body = await request.body()
        auth.check(request, body)
        if len(body) > MAX_BODY:
            raise HTTPException(status.HTTP_413_REQUEST_ENTITY_TOO_LARGE, f"body larger than {MAX_BODY} bytes")
        try:
            message = parse_message(body)
            alerts = [payload.alert_from_json(a.model_dump()) for a in message.alerts]
        except ValueError as exc:
            client = request.client.host if request.client else "?"
            log.warning("inbound webhook from %s rejected: %s", client, exc)
            raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from None
        stored = pipeline.receive(alerts, source=f"alertmanager:{message.receiver}")
        return Accepted(accepted=len(stored), fingerprints=[a.fingerprint for a in stored])

    return router
