"""Set-notifies stage: record in the notification log what was just handed to the outbox."""
from __future__ import annotations

from alerts.model import Alert
from alerts.notify.nflog import NotificationLog
from alerts.notify.stage import Context


class SetNotifiesStage:
    name = "set-notifies"

    def __init__(self, nflog: NotificationLog) -> None:
        self.nflog = nflog

    def exec(self, ctx: Context, alerts: list[Alert]) -> tuple[Context, list[Alert]]:
        self.nflog.log(ctx.group_key, ctx.receiver, ctx.integration, ctx.firing, ctx.resolved, ctx.now)
        return ctx, alerts
