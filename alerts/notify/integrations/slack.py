"""Slack-compatible incoming-webhook integration (Slack, Mattermost, Rocket.Chat): ``text`` plus
one attachment, titled the way Alertmanager's default Slack template titles it."""
from __future__ import annotations

from typing import Any

import httpx

from alerts.model import Alert
from alerts.notify.config import IntegrationConfig
from alerts.notify.integrations.webhook import DEFAULT_TIMEOUT, encode, post
from alerts.notify.stage import Context

COLORS = {"firing": "danger", "resolved": "good"}


def title(status: str, alerts: list[Alert], group_labels: dict[str, str]) -> str:
    firing = sum(1 for a in alerts if a.ends_at is None)
    count = f":{firing}" if status == "firing" else ""
    name = group_labels.get("alertname") or (alerts[0].name if alerts else "")
    extra = " ".join(v for k, v in sorted(group_labels.items()) if k != "alertname")
    return f"[{status.upper()}{count}] {name} {extra}".strip()


def text(alerts: list[Alert]) -> str:
    lines = []
    for alert in alerts:
        summary = alert.annotations.get("summary") or alert.annotations.get("description") or alert.name
        where = ", ".join(f"{k}={alert.labels[k]}" for k in ("instance", "gpu", "job_id") if k in alert.labels)
        lines.append(f"• {'RESOLVED' if alert.ends_at is not None else 'FIRING'}: {summary}" +
                     (f" ({where})" if where else ""))
    return "\n".join(lines)


class SlackIntegration:
    kind = "slack"

    def __init__(self, config: IntegrationConfig, http: httpx.Client) -> None:
        self.name = config.name
        self.send_resolved = config.send_resolved
        self.options = config.options
        self.timeout = float(config.options.get("timeout", DEFAULT_TIMEOUT))
        self.http = http

    def render(self, ctx: Context, alerts: list[Alert], external_url: str) -> dict[str, Any]:
        status = "firing" if any(a.ends_at is None for a in alerts) else "resolved"
        heading = self.options.get("title") or title(status, alerts, ctx.group_labels)
        body_text = self.options.get("text") or text(alerts)
        body: dict[str, Any] = {
            "text": heading,
            "attachments": [{"color": COLORS[status], "title": heading, "text": body_text,
                             "fallback": f"{heading}\n{body_text}", "title_link": external_url or None}],
        }
        for key in ("channel", "username", "icon_emoji"):
            if key in self.options:
                body[key] = self.options[key]
        return body

    def deliver(self, body: dict[str, Any], idempotency_key: str) -> None:
        post(self.http, self.options["api_url"], encode(body),
             {"Content-Type": "application/json", "Idempotency-Key": idempotency_key}, self.timeout)
