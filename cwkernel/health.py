"""Degraded-but-running: what each server component reports about itself, in one place.

A watcher must keep watching when part of it is broken (a corrupt state database set aside, a
full disk, a dead receiver): the component carries on in the best mode it has and says what it
lost through its ``Component.health`` hook, a mapping of short reason codes to one sentence each
(empty when healthy). This module turns those reports into:

- ``/-/ready``'s body (the status stays 200 while the server serves: a readiness probe that
  failed here would take the one watcher out of service for a problem it has worked around);
- ``clusterwatch_component_problems{component}`` (0 when healthy, so a missing series is never
  read as healthy) and ``clusterwatch_component_problem_info{component,reason}``, which the
  shipped rule pack alerts on (``ClusterWatchDegraded``).

A hook that raises is itself a problem (``health_check_failed``), never a crash of the probe.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Mapping

from prometheus_client.core import GaugeMetricFamily

if TYPE_CHECKING:
    from cwkernel.server import Component, Deps

log = logging.getLogger(__name__)


def problems_of(components: Iterable) -> dict[str, dict[str, str]]:
    """component name -> {reason: sentence} for every component that reports a problem now; a
    stalled loop (``Component.stalled``) is the problem ``loop_stalled``."""
    found: dict[str, dict[str, str]] = {}
    for component in components:
        problems = _asked(component, "health", "health_check_failed")
        stalled = stalled_loops(component)
        if stalled:
            problems["loop_stalled"] = "; ".join(stalled.values())
        if problems:
            found[component.name] = problems
    return found


def stalled_in(components: Iterable[Any]) -> dict[str, str]:
    """"component: loop" -> sentence for every stalled loop of ``components``: what the heartbeat
    and the systemd watchdog withhold their pings for."""
    return {f"{component.name}: {loop}": sentence for component in components
            for loop, sentence in stalled_loops(component).items()}


def stalled_loops(component: Any) -> dict[str, str]:
    """The component's stalled loops, loop -> sentence (a hook that raises counts as one)."""
    return _asked(component, "stalled", "stall_check_failed")


def _asked(component: Any, hook_name: str, failure: str) -> dict[str, str]:
    hook = getattr(component, hook_name, None)
    if hook is None:
        return {}
    try:
        return dict(hook() or {})
    except Exception as exc:  # noqa: BLE001 - a broken check is a problem to report, not to raise
        log.exception("%s check of %s failed", hook_name, component.name)
        return {failure: f"{type(exc).__name__}: {exc}"}


def ready_text(problems: Mapping[str, Mapping[str, str]]) -> str:
    """``/-/ready``'s body: ``OK`` or ``Degraded`` followed by one line per problem."""
    if not problems:
        return "OK\n"
    lines = ["Degraded: serving and monitoring, with these problems:"]
    lines += [f"- {component}: {reason}: {sentence}" for component, reasons in sorted(problems.items())
              for reason, sentence in sorted(reasons.items())]
    return "\n".join(lines) + "\n"


class HealthCollector:
    """The components' health hooks as metrics (registered and self-ingested like any collector)."""

    def __init__(self, components: Iterable) -> None:
        self.components = [c for c in components
                           if getattr(c, "health", None) is not None or getattr(c, "stalled", None) is not None]

    def collect(self) -> Iterator[GaugeMetricFamily]:
        problems = problems_of(self.components)
        count = GaugeMetricFamily("clusterwatch_component_problems",
                                  "Problems a server component reports now (0: healthy); /-/ready lists them",
                                  labels=["component"])
        info = GaugeMetricFamily("clusterwatch_component_problem_info",
                                 "One series per problem a component reports now (reason: a short code)",
                                 labels=["component", "reason"])
        for component in self.components:
            reasons = problems.get(component.name, {})
            count.add_metric([component.name], float(len(reasons)))
            for reason in sorted(reasons):
                info.add_metric([component.name, reason], 1.0)
        yield count
        yield info


def build(values: Mapping[str, Any], deps: Deps) -> Component:
    """The components built before it, their health hooks as metrics (and so, self-ingested, as
    alerts)."""
    from cwkernel.server import Component  # cwkernel.server imports this module

    return Component("health", collectors=[HealthCollector(deps.components)])
