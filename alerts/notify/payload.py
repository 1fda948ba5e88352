"""Alertmanager's webhook payload, version 4: built for outbound notifications and parsed from
inbound ones, so both directions agree on one shape (the 0.25 fixtures in tests/fixtures)."""
from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Iterable, Mapping

from alerts.model import FIRING, RESOLVED, Alert

ZERO_TIME = "0001-01-01T00:00:00Z"
_FRACTION = re.compile(r"\.(\d+)")


def sort_alerts(alerts: Iterable[Alert]) -> list[Alert]:
    """Alertmanager's types.AlertSlice order: by job, then instance, then the whole label set."""
    def key(alert: Alert):
        parts = []
        for name in ("job", "instance"):
            value = alert.labels.get(name)
            # Alerts lacking the label sort after those that have it.
            parts.append((0, value) if value is not None else (1, ""))
        return (*parts, sorted(alert.labels.items()))
    return sorted(alerts, key=key)


def build(receiver: str, group_key: str, group_labels: Mapping[str, str], alerts: list[Alert],
          external_url: str = "", max_alerts: int = 0) -> dict[str, Any]:
    status = FIRING if any(a.ends_at is None for a in alerts) else RESOLVED
    shown = alerts[:max_alerts] if max_alerts else alerts
    return {
        "receiver": receiver,
        "status": status,
        "alerts": [a.to_json() for a in shown],
        "groupLabels": dict(group_labels),
        "commonLabels": _common(a.labels for a in alerts),
        "commonAnnotations": _common(a.annotations for a in alerts),
        "externalURL": external_url,
        "version": "4",
        "groupKey": group_key,
        "truncatedAlerts": len(alerts) - len(shown),
    }


def _common(maps: Iterable[Mapping[str, str]]) -> dict[str, str]:
    common: dict[str, str] | None = None
    for mapping in maps:
        common = dict(mapping) if common is None else {k: v for k, v in common.items() if mapping.get(k) == v}
    return common or {}


def parse_time(text: str | None) -> float | None:
    """RFC 3339 with up to nanoseconds (Go's output) to epoch seconds; the zero time is None."""
    if not text or text.startswith("0001-01-01"):
        return None
    value = text.strip().replace("z", "Z")
    if value.endswith("Z"):
        value = value[:-1] + "+00:00"
    fraction = _FRACTION.search(value)
    if fraction:
        # Go writes up to nanoseconds; Python takes microseconds.
        value = f"{value[:fraction.start()]}.{fraction.group(1)[:6].ljust(6, '0')}{value[fraction.end():]}"
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError(f"time without a time zone: {text!r}")
    return parsed.timestamp()


def alert_from_json(item: Mapping[str, Any]) -> Alert:
    """One alert of a v4 payload. A resolved alert keeps its endsAt; a firing one has none."""
    ends_at = parse_time(item.get("endsAt"))
    if item.get("status") == FIRING:
        # Alertmanager may send a future endsAt (the expected resolution) for a firing alert.
        ends_at = None
    elif ends_at is None and item.get("status") == RESOLVED:
        raise ValueError("resolved alert without endsAt")
    return Alert(labels=dict(item["labels"]), annotations=dict(item.get("annotations") or {}),
                 starts_at=parse_time(item.get("startsAt")) or 0.0, ends_at=ends_at,
                 generator_url=item.get("generatorURL") or "")
