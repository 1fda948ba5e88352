"""Integrations: how a notification leaves the pipeline. Each renders the body that is stored
in the outbox (``render``) and later sends that stored body (``deliver``), so a notification
that waits in the outbox across a restart is sent exactly as it was rendered.

``build`` maps a receiver's config entry to its integration; adding a kind is adding a module
and one line in ``KINDS``.
"""
from __future__ import annotations

from typing import Any, Callable, Protocol

from alerts.model import Alert
from alerts.notify.config import IntegrationConfig
from alerts.notify.stage import Context


class DeliveryError(Exception):
    """A failed attempt; ``retryable`` False for answers that a retry cannot change (4xx).

    ``retry_after`` is set when the receiver asked for a pause (HTTP 429, or 503 with
    Retry-After): the seconds it asked for, 0 when it named none. The pause is the receiver's, so
    the deliverer holds everything queued for it, not just this notification."""

    def __init__(self, message: str, retryable: bool = True, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after


class Integration(Protocol):
    kind: str
    name: str
    send_resolved: bool

    def render(self, ctx: Context, alerts: list[Alert], external_url: str) -> dict[str, Any]: ...

    def deliver(self, body: dict[str, Any], idempotency_key: str) -> None: ...


def build(receiver: str, config: IntegrationConfig, hooks: "HookRegistry", http) -> Integration:
    from alerts.notify.integrations import hook, log, slack, webhook

    kinds: dict[str, Callable[..., Integration]] = {
        "webhook": lambda: webhook.WebhookIntegration(config, http),
        "slack": lambda: slack.SlackIntegration(config, http),
        "log": lambda: log.LogIntegration(config, receiver),
        "hook": lambda: hook.HookIntegration(config, hooks),
    }
    return kinds[config.kind]()


class HookRegistry:
    """Named in-process receivers (``hook_configs: [{name: remediation}]``); registered by the
    component that owns them, e.g. the remediation engine, before or after the pipeline starts."""

    def __init__(self) -> None:
        self._hooks: dict[str, Callable[..., None]] = {}

    def register(self, name: str, fn: Callable[..., None]) -> None:
        self._hooks[name] = fn

    def get(self, name: str) -> Callable[..., None] | None:
        return self._hooks.get(name)
