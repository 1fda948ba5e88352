"""In-process receiver: hands the notification to a registered Python callable (the remediation
engine). It goes through the outbox like any webhook, so a hook that raises is retried with
backoff and a restart does not lose or repeat what it was handed."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from alerts.model import Alert
from alerts.notify import payload
from alerts.notify.config import IntegrationConfig
from alerts.notify.integrations import DeliveryError, HookRegistry
from alerts.notify.stage import Context


@dataclass(frozen=True)
class Notification:
    """What a hook receives: the v4 payload's facts, alerts as ``Alert`` objects."""

    receiver: str
    status: str
    group_key: str
    group_labels: dict[str, str]
    alerts: list[Alert]
    idempotency_key: str
    payload: dict[str, Any]


class HookIntegration:
    kind = "hook"

    def __init__(self, config: IntegrationConfig, hooks: HookRegistry) -> None:
        self.name = config.name
        self.send_resolved = config.send_resolved
        self.hook_name = config.options["name"]
        self.hooks = hooks

    def render(self, ctx: Context, alerts: list[Alert], external_url: str) -> dict[str, Any]:
        return payload.build(ctx.receiver, ctx.group_key, ctx.group_labels, alerts, external_url)

    def deliver(self, body: dict[str, Any], idempotency_key: str) -> None:
        fn = self.hooks.get(self.hook_name)
        if fn is None:
            raise DeliveryError(f"hook {self.hook_name!r} is not registered (yet)")
        notification = Notification(body["receiver"], body["status"], body["groupKey"], body["groupLabels"],
                                    [payload.alert_from_json(a) for a in body["alerts"]], idempotency_key, body)
        try:
            fn(notification)
        except Exception as exc:  # noqa: BLE001 - the hook's failure becomes a retry, not a crash
            raise DeliveryError(f"hook {self.hook_name!r} raised {type(exc).__name__}: {exc}") from None
