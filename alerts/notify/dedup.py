"""Dedup stage: pass the alerts on only when the receiver has not been told this already.

``needs_update`` is Alertmanager's DedupStage.needsUpdate, rule for rule. Alerts are identified
by fingerprint; the sets it computes are put in the context for the stages after it.
"""
from __future__ import annotations

from alerts.model import Alert
from alerts.notify.nflog import Entry, NotificationLog
from alerts.notify.stage import Context


def needs_update(entry: Entry | None, firing: frozenset[str], resolved: frozenset[str], send_resolved: bool,
                 repeat_interval: float, now: float) -> bool:
    if entry is None:
        # Never notified: only a group with something firing is news.
        return bool(firing)
    if not firing <= entry.firing:
        return True
    if not firing:
        # Everything resolved: tell the receiver only if it was told something was firing
        # (regardless of send_resolved, so that the log's firing set is cleared).
        return bool(entry.firing)
    if send_resolved and not resolved <= entry.resolved:
        return True
    return entry.sent_at <= now - repeat_interval


class DedupStage:
    name = "dedup"

    def __init__(self, nflog: NotificationLog, send_resolved: bool) -> None:
        self.nflog = nflog
        self.send_resolved = send_resolved

    def exec(self, ctx: Context, alerts: list[Alert]) -> tuple[Context, list[Alert]]:
        firing = frozenset(a.fingerprint for a in alerts if a.ends_at is None)
        resolved = frozenset(a.fingerprint for a in alerts if a.ends_at is not None)
        entry = self.nflog.get(ctx.group_key, ctx.receiver, ctx.integration)
        ctx = ctx.with_(firing=firing, resolved=resolved, previous_sent=entry.sent_at if entry else None)
        if not needs_update(entry, firing, resolved, self.send_resolved, ctx.repeat_interval, ctx.now):
            return ctx, []
        return ctx, alerts
