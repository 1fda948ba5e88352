"""Mute stage: drops the alerts a muter mutes. Inhibition and silencing are this one stage over
two muters, as in Alertmanager (``mute.go``)."""
from __future__ import annotations

from typing import Protocol

from alerts.model import Alert
from alerts.notify.stage import Context


class Muter(Protocol):
    def muted_by(self, alert: Alert, now: float) -> list[str]:
        """Ids of what mutes ``alert`` (silence ids, inhibiting fingerprints); empty: not muted."""
        ...


class MuteStage:
    def __init__(self, name: str, muter: Muter) -> None:
        self.name = name
        self.muter = muter

    def exec(self, ctx: Context, alerts: list[Alert]) -> tuple[Context, list[Alert]]:
        return ctx, [a for a in alerts if not self.muter.muted_by(a, ctx.now)]
