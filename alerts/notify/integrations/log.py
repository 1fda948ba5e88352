"""Log-only integration: the default receiver until the admin configures a real one."""
from __future__ import annotations

import logging
from typing import Any

from alerts.model import Alert
from alerts.notify import payload
from alerts.notify.config import IntegrationConfig
from alerts.notify.stage import Context

log = logging.getLogger("clusterwatch.notifications")


class LogIntegration:
    kind = "log"

    def __init__(self, config: IntegrationConfig, receiver: str) -> None:
        self.name = config.name
        self.send_resolved = config.send_resolved
        self.level = logging.getLevelName(str(config.options.get("level", "info")).upper())
        if not isinstance(self.level, int):
            self.level = logging.INFO

    def render(self, ctx: Context, alerts: list[Alert], external_url: str) -> dict[str, Any]:
        return payload.build(ctx.receiver, ctx.group_key, ctx.group_labels, alerts, external_url)

    def deliver(self, body: dict[str, Any], idempotency_key: str) -> None:
        names = sorted({a["labels"].get("alertname", "") for a in body["alerts"]})
        log.log(self.level, "notification %s to %s: %s %d alert(s) %s group %s", idempotency_key[:12],
                body["receiver"], body["status"], len(body["alerts"]), ",".join(names), body["groupKey"])
