"""The pipeline as a server component: its routers (JSON API, inbound receiver), its loops and
its self-metrics."""
from __future__ import annotations

from pathlib import Path

from alerts import api, receiver
from alerts.notify import config as alerting_config
from alerts.notify.pipeline import Pipeline
from clusterwatch.server import Component

DB_FILE = "alerting.db"


def build_pipeline(config_path: str | None, state_dir: str | None, **options) -> Pipeline:
    """The pipeline from ``alerting.yml`` (or the shipped default) with its SQLite file in
    ``state_dir`` (in memory without one: nothing then survives a restart)."""
    config = alerting_config.load(config_path)
    db = str(Path(state_dir) / DB_FILE) if state_dir else ":memory:"
    return Pipeline(config, db, **options)


def component(pipeline: Pipeline, webhook_token: str | None = None, webhook_hmac_secret: str | None = None) -> Component:
    def stop() -> None:
        pipeline.stop()
        pipeline.close()

    return Component(
        "alerting",
        routers=[api.build_router(pipeline),
                 receiver.build_router(pipeline, receiver.InboundAuth(webhook_token, webhook_hmac_secret))],
        start=pipeline.start, stop=stop, collectors=[pipeline.metrics], health=pipeline.health,
    )


def from_settings(values: dict, config_file: str | None = None) -> tuple[Component, Pipeline]:
    """The component from ``serve``'s resolved settings (``alerts.notify.options.OPTIONS``);
    configuration mistakes are ConfigErrors naming the field and file."""
    from clusterwatch.errors import ConfigError

    try:
        pipeline = build_pipeline(values.get("alerting_config"), values.get("state_dir"),
                                  **({"max_pending_per_receiver": values["notification_queue_max"]}
                                     if "notification_queue_max" in values else {}))
    except OSError as exc:
        raise ConfigError("state_dir", f"cannot open the state database: {exc}", config_file) from None
    return component(pipeline, values.get("webhook_token")), pipeline


def install_operator_token(app, token: str | None) -> None:
    """``--operator-token`` as the one operator named "operator" (else the environment's)."""
    if token:
        from clusterwatch.auth import OperatorAuth, install

        install(app, OperatorAuth({"operator": token}))
