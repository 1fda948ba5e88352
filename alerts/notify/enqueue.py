"""Retry stage, made durable: render the notification and write it to the outbox, where the
deliverer retries it with backoff (Alertmanager retries in memory inside this stage; here the
stage only has to reach the disk). Resolved alerts are dropped first for integrations without
``send_resolved``, and nothing is queued when nothing is left, as Alertmanager's RetryStage does."""
from __future__ import annotations

from typing import Callable

from alerts.model import Alert
from alerts.outbox import Outbox, idempotency_key
from alerts.notify.integrations import Integration
from alerts.notify.stage import Context


class EnqueueStage:
    name = "retry"

    def __init__(self, outbox: Outbox, integration: Integration, external_url: str,
                 wake: Callable[[], None] = lambda: None) -> None:
        self.outbox = outbox
        self.integration = integration
        self.external_url = external_url
        self.wake = wake

    def exec(self, ctx: Context, alerts: list[Alert]) -> tuple[Context, list[Alert]]:
        sent = alerts if self.integration.send_resolved else [a for a in alerts if a.ends_at is None]
        if not sent:
            return ctx, alerts
        body = self.integration.render(ctx, sent, self.external_url)
        status = "firing" if ctx.firing else "resolved"
        key = idempotency_key(ctx.group_key, ctx.receiver, ctx.integration, status, ctx.firing, ctx.resolved,
                              ctx.previous_sent)
        if self.outbox.enqueue(key, ctx.receiver, ctx.integration, ctx.group_key, status, body, ctx.now):
            self.wake()
        return ctx, alerts
