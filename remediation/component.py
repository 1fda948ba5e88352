"""The remediation engine as a server component, and its ``serve`` settings.

``--automation off|dry-run|auto`` and ``--policy FILE``: with a policy and no mode the engine
runs in dry-run (decisions shown, nothing done); without either it is off. The engine registers
itself as the pipeline's ``remediation`` hook, the receiver that the shipped alerting.yml routes
remediable alerts to; with automation off that hook only drops what it is handed, so the
pipeline's outbox does not retry a receiver that will never come.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from cwkernel import settings
from cwkernel.settings import Option

if TYPE_CHECKING:
    from cwkernel.server import Component, Deps

log = logging.getLogger(__name__)

HOOK_NAME = "remediation"
DB_FILE = "remediation.db"
OPTIONS = (
    Option("automation", None, "remediation: off, dry-run (decide and show, act on nothing) or auto "
           "(default: dry-run with --policy, else off)", settings.choice("off", "dry-run", "auto"),
           "off|dry-run|auto"),
    Option("policy", None, "remediation policy file (default: the shipped remediation/default-policy.yml)",
           settings.optional_path, "FILE"),
)


def resolve_mode(values: dict) -> str:
    if values.get("automation"):
        return values["automation"]
    return "dry-run" if values.get("policy") else "off"


def build(values: Mapping[str, Any], deps: Deps) -> Component | None:
    """The component (or None when automation is off) from ``serve``'s resolved settings, acting
    through the scheduler adapter and querying through ``deps.query``."""
    from cwkernel.errors import ConfigError

    adapter, pipeline, config_file = deps.scheduler, deps.pipeline, deps.config_file
    mode = resolve_mode(values)
    if mode == "off":
        if pipeline is not None:
            pipeline.register_hook(HOOK_NAME, lambda notification: log.debug(
                "automation off: %d alert(s) not acted on", len(notification.alerts)))
        return None
    if adapter is None:
        raise ConfigError("automation", f"{mode} needs a scheduler (--scheduler slurm-cli|slurmrestd|simulator)",
                          config_file)
    from alerts.statedb import MEMORY, StateCollector
    from cwkernel.server import Component
    from remediation import api, policy
    from remediation.engine import RemediationEngine
    from remediation.metrics import RemediationCollector
    from remediation.store import RemediationStore

    loaded = policy.load(values.get("policy"))
    state_dir = values.get("state_dir")
    # A corrupt or unwritable file degrades automation (reported by the health hook), never the server.
    store = RemediationStore(Path(state_dir) / DB_FILE if state_dir else MEMORY)
    from remediation.suppress import SilenceSuppressor

    suppressor = SilenceSuppressor(pipeline.silences) if pipeline is not None else None
    engine = RemediationEngine(loaded, adapter, store, deps.query, mode=mode, suppressor=suppressor)
    if pipeline is not None:
        pipeline.register_hook(HOOK_NAME, engine.handle)
    deps.remediation = engine

    def stop() -> None:
        engine.stop()
        store.close()

    return Component("remediation", routers=[api.build_router(engine)], start=engine.start, stop=stop,
                     collectors=[RemediationCollector(engine), StateCollector(store.db, "clusterwatch_remediation")],
                     health=store.problems, stalled=engine.loops.stalled)
