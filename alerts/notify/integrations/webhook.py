"""Webhook integration: POSTs Alertmanager's v4 payload.

Beyond Alertmanager: an optional HMAC-SHA256 signature of the exact body bytes
(``X-ClusterWatch-Signature: sha256=<hex>``), custom headers, and the outbox's
``Idempotency-Key`` so a receiver can drop a retry it already processed.
"""
from __future__ import annotations

import datetime
import email.utils
import hashlib
import hmac
import json
import time
from typing import Any

import httpx

from alerts.model import Alert
from alerts.notify import payload
from alerts.notify.config import IntegrationConfig
from alerts.notify.integrations import DeliveryError
from alerts.notify.stage import Context
from cwkernel.httpdeadline import deadline

SIGNATURE_HEADER = "X-ClusterWatch-Signature"
DEFAULT_TIMEOUT = 10.0  # the whole attempt, as Alertmanager's webhook timeout: a hanging or dripping receiver ends it
ERROR_TEXT = 200  # characters of a refusal's body kept in the outbox's last_error
ANSWER_READ = 64 * 1024  # bytes of an answer read at most: a receiver cannot make us hold more
RETRY_AFTER_CHARS = 64  # longer than any date or sensible number: not a Retry-After we act on


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def authorization_header(http_config: dict | None) -> str | None:
    """Prometheus common http_config: ``authorization: {type, credentials}`` or ``bearer_token``."""
    if not http_config:
        return None
    auth = http_config.get("authorization")
    if auth:
        return f"{auth.get('type', 'Bearer')} {auth.get('credentials', '')}"
    if http_config.get("bearer_token"):
        return f"Bearer {http_config['bearer_token']}"
    return None


def post(http: httpx.Client, url: str, body: bytes, headers: dict[str, str], timeout: float) -> None:
    """One attempt, ended by ``timeout`` whatever the receiver does on the wire (with a client
    from ``cwkernel.httpdeadline.client``); the error says what happened without the URL's
    secrets or the headers. Only the start of the answer is read (its status is what counts)."""
    try:
        with deadline(timeout) as extensions, \
                http.stream("POST", url, content=body, headers=headers, timeout=timeout,
                            extensions=extensions) as response:
            code = response.status_code
            answer = b"" if 200 <= code < 300 else _start_of(response)
            wait = parse_retry_after(response.headers.get("retry-after", ""), time.time())
    except httpx.HTTPError as exc:
        raise DeliveryError(f"{type(exc).__name__}: {exc}") from None
    if 200 <= code < 300:
        return
    # 429 and 5xx may pass; any other 4xx will be answered the same way next time.
    retryable = code == 429 or code >= 500 or code == 408
    # A 429 is about the sender, not the message; a 503 only says so when it names a time.
    pause = (wait or 0.0) if code == 429 else wait if code == 503 else None
    error = f"HTTP {code}: {answer.decode(errors='replace')[:ERROR_TEXT]}"
    raise DeliveryError(error if pause is None else f"{error} (the receiver asked for a pause of {pause:.0f} s)",
                        retryable, retry_after=pause)


def parse_retry_after(value: str, now: float) -> float | None:
    """The seconds a Retry-After header asks for (RFC 9110 10.2.3: delay-seconds or an HTTP-date;
    a date already past is 0), or None when it is neither. Callers bound the result."""
    text = value.strip()
    if not text or len(text) > RETRY_AFTER_CHARS:
        return None
    if text.isascii() and text.isdigit():
        return float(int(text))
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; a zone-less one is taken as such
        when = when.replace(tzinfo=datetime.timezone.utc)
    return max(0.0, when.timestamp() - now)


def _start_of(response: httpx.Response) -> bytes:
    read = b""
    for chunk in response.iter_raw():
        read += chunk
        if len(read) >= ANSWER_READ:
            break
    return read


class WebhookIntegration:
    kind = "webhook"

    def __init__(self, config: IntegrationConfig, http: httpx.Client) -> None:
        self.name = config.name
        self.send_resolved = config.send_resolved
        self.url = config.options["url"]
        self.max_alerts = int(config.options.get("max_alerts", 0))
        self.timeout = float(config.options.get("timeout", DEFAULT_TIMEOUT))
        self.secret = config.options.get("hmac_secret")
        self.headers = dict(config.options.get("headers") or {})
        auth = authorization_header(config.options.get("http_config"))
        if auth:
            self.headers["Authorization"] = auth
        self.http = http

    def render(self, ctx: Context, alerts: list[Alert], external_url: str) -> dict[str, Any]:
        return payload.build(ctx.receiver, ctx.group_key, ctx.group_labels, alerts, external_url, self.max_alerts)

    def deliver(self, body: dict[str, Any], idempotency_key: str) -> None:
        data = encode(body)
        headers = {**self.headers, "Content-Type": "application/json", "Idempotency-Key": idempotency_key,
                   "User-Agent": "ClusterWatch"}
        if self.secret:
            headers[SIGNATURE_HEADER] = sign(self.secret, data)
        post(self.http, self.url, data, headers, self.timeout)
