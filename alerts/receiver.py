"""Inbound receiver: ``POST /api/v1/alertmanager/webhook`` accepts Alertmanager's webhook (v4;
0.25's fields, plus ``notification_reason`` from 0.32 and ``routeLabels`` from 0.34, neither
required) so that a production Prometheus + Alertmanager feeds the same alert store, views and
automation as the embedded evaluator.

Authentication: ``Authorization: Bearer <token>`` (Alertmanager's ``http_config.authorization``)
or ``X-ClusterWatch-Signature: sha256=<hex HMAC of the body>``; each compared in constant time.
With neither configured the endpoint refuses everything. The token is checked from the headers
before a byte of the body is read; a signed request's body is read (within the limit) and then
its signature checked.

Bounds (docs/reliability.md), chosen so that a 10,000-alert storm (~3 to 10 MB) passes:
``MAX_BODY`` bytes (413 past it, from Content-Length or while streaming), ``MAX_ALERTS`` alerts
per message, ``MAX_LABELS`` labels and annotations per alert, label values of ``MAX_LABEL_VALUE``
and annotation values of ``MAX_ANNOTATION_VALUE`` characters, JSON nested no deeper than the
interpreter's recursion limit (400, never a RecursionError). Alerts Alertmanager itself refuses
(an empty label set, a label name outside ``[a-zA-Z_][a-zA-Z0-9_]*``) are 400s naming the field.

A storm never stalls the server: the message is decoded, validated and stored on a worker thread
(never on the event loop), one message at a time (``PROCESSING``), with at most ``MAX_IN_FLIGHT``
requests admitted at once; past that the answer is 503 with Retry-After, which Alertmanager retries.
"""
from __future__ import annotations

import hmac
import json
import logging
from typing import Any, Literal

import anyio
from fastapi import APIRouter, HTTPException, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from alerts.jsonsplit import split_object
from alerts.model import Alert, label_set_problem
from alerts.notify import payload
from alerts.notify.integrations.webhook import SIGNATURE_HEADER, sign
from alerts.notify.pipeline import Pipeline
from cwkernel.admission import OWN_ADMISSION

log = logging.getLogger(__name__)

PATH = "/api/v1/alertmanager/webhook"
MAX_BODY = 16 * 1024 * 1024
MAX_ALERTS = 20_000
MAX_LABELS = 128
MAX_LABEL_VALUE = 4096
MAX_ANNOTATION_VALUE = 64 * 1024
MAX_IN_FLIGHT = 4
PROCESSING = 1  # messages decoded and stored at once
RETRY_AFTER_S = 5


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
    alerts: list[WebhookAlert] = Field(max_length=MAX_ALERTS)
    notification_reason: str | None = None
    routeLabels: dict[str, str] | None = None


_ALERT = TypeAdapter(WebhookAlert)


class Accepted(BaseModel):
    accepted: int
    fingerprints: list[str]
    # With a 429: the new alerts left out because the server holds --alerts-max, and why.
    refused: int = 0
    error: str | None = None


def _validation_error(exc: ValidationError, prefix: str = "") -> ValueError:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in (*([prefix] if prefix else []), *first["loc"])) or "(body)"
    return ValueError(f"{where}: {first['msg']} ({exc.error_count()} error(s))")


def parse_message(body: bytes) -> tuple[WebhookMessage, list[Alert]]:
    """The validated message and its alerts; ValueError with a reason a sender can act on,
    naming the field (``alerts.3.labels: ...``)."""
    try:
        document, alerts = split_object(body.decode("utf-8"), "alerts", _bounded_alert)
    except UnicodeDecodeError as exc:
        raise ValueError(f"body is not UTF-8: {exc}") from None
    except RecursionError:
        raise ValueError("body is nested too deeply to be an Alertmanager message") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"body is not JSON: {exc}") from None
    try:
        message = WebhookMessage.model_validate(document)
    except ValidationError as exc:
        raise _validation_error(exc) from None
    if alerts is None:  # the body took json.loads's path: its alerts were validated as part of it
        alerts = [_alert(i, item) for i, item in enumerate(message.alerts)]
    return message, alerts


def _bounded_alert(index: int, item: Any) -> Alert:
    if index >= MAX_ALERTS:
        raise ValueError(f"alerts: at most {MAX_ALERTS} alerts per message; lower max_alerts in the "
                         "webhook_config")
    return _alert(index, item)


def _alert(index: int, item: Any) -> Alert:
    """One alert of the message, validated (its own call per alert: no long GIL hold)."""
    where = f"alerts.{index}"
    try:
        checked = item if isinstance(item, WebhookAlert) else _ALERT.validate_python(item)
    except ValidationError as exc:
        raise _validation_error(exc, where) from None
    if not checked.labels:
        raise ValueError(f"{where}.labels: at least one label is required")
    for field, values, bound in (("labels", checked.labels, MAX_LABEL_VALUE),
                                 ("annotations", checked.annotations, MAX_ANNOTATION_VALUE)):
        if len(values) > MAX_LABELS:
            raise ValueError(f"{where}.{field}: at most {MAX_LABELS} entries ({len(values)} sent)")
        problem = label_set_problem(values, bound)
        if problem:
            key, reason = problem
            raise ValueError(f"{where}.{field}{'.' + key if key else ''}: {reason}")
    for name in ("startsAt", "endsAt"):
        try:
            payload.parse_time(getattr(checked, name))
        except ValueError as exc:
            raise ValueError(f"{where}.{name}: not an RFC 3339 time ({exc})") from None
    fields = {"status": checked.status, "labels": checked.labels, "annotations": checked.annotations,
              "startsAt": checked.startsAt, "endsAt": checked.endsAt, "generatorURL": checked.generatorURL}
    try:
        return payload.alert_from_json(fields)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None


def _bearer(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _same(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


class InboundAuth:
    def __init__(self, token: str | None = None, hmac_secret: str | None = None) -> None:
        self.token = token or None
        self.hmac_secret = hmac_secret or None

    def admit(self, request: Request) -> bool:
        """From the headers alone: True when the bearer token admits the request, False when
        only its signature can (``check_signature`` once the body is read); else 401/403."""
        if not self.token and not self.hmac_secret:
            raise HTTPException(status.HTTP_403_FORBIDDEN, "inbound webhook disabled: no --webhook-token configured")
        if self.token and _same(_bearer(request), self.token):
            return True
        if self.hmac_secret and request.headers.get(SIGNATURE_HEADER):
            return False
        raise _unauthorized()

    def check_signature(self, request: Request, body: bytes) -> None:
        if not (self.hmac_secret and _same(request.headers.get(SIGNATURE_HEADER), sign(self.hmac_secret, body))):
            raise _unauthorized()


def _unauthorized() -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, "bad or missing bearer token or signature",
                         headers={"WWW-Authenticate": "Bearer"})


def _too_large() -> HTTPException:
    return HTTPException(status.HTTP_413_REQUEST_ENTITY_TOO_LARGE, f"body larger than {MAX_BODY} bytes")


async def read_body(request: Request, limit: int = MAX_BODY) -> bytes:
    """The body, refused (413) from its declared length or as soon as it passes ``limit``."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large()
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large()
        chunks.append(chunk)
    return b"".join(chunks)


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


class Admission:
    """At most ``limit`` webhook requests inside the handler at once (their bodies are in
    memory); used from the event loop only, so a plain count suffices."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.inside = 0

    def __enter__(self) -> "Admission":
        if self.inside >= self.limit:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE,
                                f"receiver busy with {self.inside} webhook messages; retry",
                                headers={"Retry-After": str(RETRY_AFTER_S)})
        self.inside += 1
        return self

    def __exit__(self, *exc: object) -> None:
        self.inside -= 1


def build_router(pipeline: Pipeline, auth: InboundAuth) -> APIRouter:
    router = APIRouter(tags=["alertmanager receiver"])
    admission = Admission(MAX_IN_FLIGHT)
    processing = anyio.CapacityLimiter(PROCESSING)

    def accept(body: bytes, client: str) -> Response:
        try:
            message, alerts = parse_message(body)
        except ValueError as exc:
            log.warning("inbound webhook from %s rejected: %s", client, exc)
            raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from None
        stored = pipeline.receive(alerts, source=f"alertmanager:{message.receiver}")
        # Encoded here, on the worker thread: FastAPI would check and encode the 10,000
        # fingerprints of a storm's answer on the event loop.
        answer = Accepted(accepted=len(stored), fingerprints=[a.fingerprint for a in stored])
        refused = len(alerts) - len(stored)
        if not refused:
            return Response(answer.model_dump_json(exclude={"refused", "error"}), media_type="application/json")
        # The sender (Alertmanager logs a 429 as a failed notification) learns that some were not
        # taken; those stored stay stored, so a retry of the whole message is harmless.
        answer.refused = refused
        answer.error = (f"{refused:,} new alert(s) refused: this server holds {pipeline.store.max_alerts:,} "
                        "alerts (--alerts-max); alerts it holds are still updated and resolved")
        log.warning("inbound webhook from %s: %s", client, answer.error)
        return Response(answer.model_dump_json(), status_code=status.HTTP_429_TOO_MANY_REQUESTS,
                        media_type="application/json")

    # The body is read raw (the HMAC is over the exact bytes, and a bad body is a 400 with a
    # reason rather than FastAPI's 422), so its schema is declared for the OpenAPI document here.
    # It admits its own requests (at most MAX_IN_FLIGHT, then 503), so the server's queue of request
    # work (cwkernel/admission.py) leaves it alone.
    @router.post(PATH, response_model=Accepted, status_code=200, max_body_size=MAX_BODY, openapi_extra={
        **OWN_ADMISSION,
        "requestBody": {"required": True, "content": {"application/json": {"schema": request_schema()}}}})
    async def alertmanager_webhook(request: Request) -> Any:
        """Alertmanager's webhook (version 4); the alerts enter the alert store and the pipeline."""
        by_token = auth.admit(request)
        with admission:
            body = await read_body(request)
            if not by_token:
                auth.check_signature(request, body)
            client = request.client.host if request.client else "?"
            return await anyio.to_thread.run_sync(accept, body, client, limiter=processing)

    return router
