"""The one signature every stage of the pipeline has, and the two ways of composing stages.

As in Alertmanager's notify.go: ``exec(ctx, alerts) -> (ctx, alerts)``; a stage drops alerts,
annotates the context or hands the alerts on. A ``MultiStage`` runs stages in order and stops
as soon as nothing is left; a ``FanoutStage`` hands the same alerts to each branch (one per
integration) so that one integration failing does not stop the others.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import Protocol, Sequence

from alerts.model import Alert

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Context:
    """What a notification is about; stages further down read what earlier ones set."""

    receiver: str
    group_key: str
    group_labels: dict[str, str]
    now: float
    repeat_interval: float
    integration: str = ""
    firing: frozenset[str] = frozenset()
    resolved: frozenset[str] = frozenset()
    # The notification log's timestamp of what was last sent for this group, receiver and
    # integration (None: never): it makes a repeat a different notification from the original.
    previous_sent: float | None = None
    extra: dict = field(default_factory=dict)

    def with_(self, **changes) -> "Context":
        return replace(self, **changes)


class Stage(Protocol):
    name: str

    def exec(self, ctx: Context, alerts: list[Alert]) -> tuple[Context, list[Alert]]: ...


class MultiStage:
    def __init__(self, name: str, stages: Sequence[Stage]) -> None:
        self.name = name
        self.stages = list(stages)

    def exec(self, ctx: Context, alerts: list[Alert]) -> tuple[Context, list[Alert]]:
        for stage in self.stages:
            if not alerts:
                break
            ctx, alerts = stage.exec(ctx, alerts)
        return ctx, alerts


class FanoutStage:
    def __init__(self, name: str, stages: Sequence[Stage]) -> None:
        self.name = name
        self.stages = list(stages)

    def exec(self, ctx: Context, alerts: list[Alert]) -> tuple[Context, list[Alert]]:
        errors: list[Exception] = []
        for stage in self.stages:
            try:
                stage.exec(ctx, list(alerts))
            except Exception as exc:  # noqa: BLE001 - every integration gets its turn
                log.exception("stage %s failed for %s", stage.name, ctx.group_key)
                errors.append(exc)
        if errors:
            # The group keeps its resolved alerts and tries again at the next interval.
            raise errors[0]
        return ctx, alerts
