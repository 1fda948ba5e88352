"""Webhook integration: POSTs Alertmanager's v4 payload.

Beyond Alertmanager: an optional HMAC-SHA256 signature of the exact body bytes
(``X-ClusterWatch-Signature: sha256=<hex>``), custom headers, and the outbox's
``Idempotency-Key`` so a receiver can drop a retry it already processed.
"""
from __future__ import annotations

import hashlib
import hmac
import json
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
    except httpx.HTTPError as exc:
        raise DeliveryError(f"{type(exc).__name__}: {exc}") from None
    if 200 <= code < 300:
        return
    # 429 and 5xx may pass; any other 4xx will be answered the same way next time.
    retryable = code == 429 or code >= 500 or code == 408
    raise DeliveryError(f"HTTP {code}: {answer.decode(errors='replace')[:ERROR_TEXT]}", retryable)


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
