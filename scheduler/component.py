"""The scheduler adapter as a server component: its polling and its metrics, which the embedded
store, when there is one, ingests in process as job "slurm" (without one, Prometheus scrapes
them from the server's /metrics)."""
from __future__ import annotations

from typing import Any, Mapping

from cwkernel.errors import ConfigError
from cwkernel.server import Component, Deps
from scheduler.audit import AuditLog
from scheduler.factory import build_scheduler


def build(values: Mapping[str, Any], deps: Deps) -> Component | None:
    """The adapter for ``--scheduler`` (None when off), its recent actions kept for the node page."""
    if values["scheduler"] == "off":
        return None
    deps.audit = AuditLog()
    options = {"min_interval": values["scheduler_interval"], "audit": deps.audit.sink}
    if values["scheduler_token"]:
        options["token"] = values["scheduler_token"]
    try:
        adapter = build_scheduler(values["scheduler"], values["scheduler_url"], **options)
    except ValueError as exc:
        raise ConfigError("scheduler", str(exc)) from None
    ingest = deps.ingest("scheduler", adapter.collector, values["scheduler_interval"], "slurm") \
        if deps.ingest is not None else None

    def start() -> None:
        adapter.start()
        if ingest:
            ingest.start()

    def stop() -> None:
        if ingest:
            ingest.stop()
        adapter.stop()

    deps.scheduler = adapter
    return Component("scheduler", start=start, stop=stop, collectors=[adapter.collector],
                     stalled=adapter.poller.loops.stalled)
