"""The pipeline as a server component: its routers (JSON API, inbound receiver), its loops and
its self-metrics."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from alerts import api, receiver
from alerts.notify import config as alerting_config
from alerts.notify.pipeline import Pipeline
from alerts.reader import AlertingReader
from alerts.statedb import MEMORY, Database, StateCollector
from cwkernel.reload import ReloadHook
from cwkernel.server import Component, Deps

DB_FILE = "alerting.db"


def build_pipeline(config_path: str | None, state_dir: str | None, **options) -> Pipeline:
    """The pipeline from ``alerting.yml`` (or the shipped default) with its SQLite file in
    ``state_dir`` (in memory without one: nothing then survives a restart). A file that is
    corrupt, or cannot be written, degrades the pipeline instead of stopping it (alerts.statedb)."""
    config = alerting_config.load(config_path)
    return Pipeline(config, Database(Path(state_dir) / DB_FILE if state_dir else MEMORY), **options)


def component(pipeline: Pipeline, webhook_token: str | None = None, webhook_hmac_secret: str | None = None,
              config_path: str | None = None) -> Component:
    def stop() -> None:
        pipeline.stop()
        pipeline.close()

    # alerting.yml read again on a reload (the shipped default has nothing to read again).
    reload = ReloadHook(lambda: pipeline.reload(alerting_config.load(config_path)), "the alerting configuration") \
        if config_path else None

    return Component(
        "alerting",
        routers=[api.build_router(pipeline),
                 receiver.build_router(pipeline, receiver.InboundAuth(webhook_token, webhook_hmac_secret))],
        start=pipeline.start, stop=stop,
        collectors=[pipeline.metrics, StateCollector(pipeline.db, "clusterwatch_alerting")],
        health=lambda: {**pipeline.db.problems(), **pipeline.health(), **(reload.problems() if reload else {})},
        stalled=pipeline.loops.stalled,
        reload=reload,
    )


def from_settings(values: dict, config_file: str | None = None) -> tuple[Component, Pipeline]:
    """The component from ``serve``'s resolved settings (``alerts.notify.options.OPTIONS``);
    configuration mistakes are ConfigErrors naming the field and file. A state directory that
    cannot be used is no configuration mistake: the component works around it and reports it
    through its health hook (alerts.statedb)."""
    passed = {"notification_queue_max": "max_pending_per_receiver", "silences_max": "max_silences",
              "alerts_max": "max_alerts"}
    pipeline = build_pipeline(values.get("alerting_config"), values.get("state_dir"),
                              **{keyword: values[name] for name, keyword in passed.items() if name in values})
    return component(pipeline, values.get("webhook_token"), config_path=values.get("alerting_config")), pipeline


def build(values: Mapping[str, Any], deps: Deps) -> Component:
    """The pipeline from ``serve``'s settings; the evaluator built before it (if any) hands it
    its firing and resolved alerts, remediation, built after it, registers its hook, and the
    dashboard reads it through its reader."""
    built, pipeline = from_settings(values, deps.config_file)
    if deps.evaluator is not None:
        deps.evaluator.notify = pipeline.notify
    deps.pipeline = pipeline
    deps.alerting = AlertingReader(pipeline)
    return built


def install_operator_token(app, token: str | None) -> None:
    """``--operator-token`` as the one operator named "operator" (else the environment's)."""
    if token:
        from cwkernel.auth import OperatorAuth, install

        install(app, OperatorAuth({"operator": token}))
