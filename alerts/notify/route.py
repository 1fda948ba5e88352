"""The routing tree: which receivers, grouped how and with which timers, an alert goes to.

Semantics are Alertmanager's ``dispatch/route.go``: a node matches when its matchers do; its
children are tried in order and the first match stops the walk unless that child has
``continue: true``; when no child matches the node itself is the match. Children inherit every
option they do not set.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from alerts.notify.matchers import AlertMatcher, format_matchers, matches_all

ALL_LABELS = None  # group_by: ['...'] groups by every label


@dataclass(frozen=True)
class RouteOpts:
    receiver: str
    group_by: frozenset[str] | None = frozenset()  # None = '...'
    group_wait: float = 30.0
    group_interval: float = 300.0
    repeat_interval: float = 4 * 3600.0


@dataclass(eq=False)
class Route:
    opts: RouteOpts
    matchers: list[AlertMatcher] = field(default_factory=list)
    continue_: bool = False
    routes: list["Route"] = field(default_factory=list)
    parent: "Route | None" = None

    def key(self) -> str:
        """Alertmanager's route key (the part of the group key before the colon)."""
        own = format_matchers(self.matchers)
        return f"{self.parent.key()}/{own}" if self.parent else own

    def match(self, labels: Mapping[str, str]) -> list["Route"]:
        if not matches_all(self.matchers, labels):
            return []
        found: list[Route] = []
        for child in self.routes:
            matched = child.match(labels)
            found.extend(matched)
            if matched and not child.continue_:
                break
        return found or [self]

    def group_labels(self, labels: Mapping[str, str]) -> dict[str, str]:
        if self.opts.group_by is ALL_LABELS:
            return dict(labels)
        return {name: value for name, value in labels.items() if name in self.opts.group_by}

    def walk(self):
        yield self
        for child in self.routes:
            yield from child.walk()


def group_key(route: Route, group_labels: Mapping[str, str]) -> str:
    """``{route key}:{labels}`` exactly as Alertmanager spells it (model.LabelSet.String())."""
    pairs = ", ".join(f'{name}="{_go_escape(group_labels[name])}"' for name in sorted(group_labels))
    return f"{route.key()}:{{{pairs}}}"


def _go_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
