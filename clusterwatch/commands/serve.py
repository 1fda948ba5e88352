"""``clusterwatch serve``: the all-in-one server: store, scheduler, alerting, automation, dashboard.

One port serves the scraper and embedded store (or reads a Prometheus URL), the scheduler
adapter, the rule evaluator, the notification pipeline, the remediation engine and the dashboard.
"""
from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import socket
import sys

from alerts.notify.options import OPTIONS as ALERTING_OPTIONS
from remediation.component import OPTIONS as REMEDIATION_OPTIONS
from cwkernel import settings
from cwkernel.errors import ConfigError
from cwkernel.frontdoor import OPTIONS as HTTP_OPTIONS
from cwkernel.gcpolicy import GCPolicy
from cwkernel.settings import Option

log = logging.getLogger(__name__)

ENV_PREFIX = "CLUSTERWATCH_SERVE_"
# The interpreter lock passes between busy threads every 1 ms instead of Python's 5 ms: the event
# loop (probes, /metrics, admission) waits at most that long behind a storm's worker thread, and a
# worker never gives the lock up voluntarily (which, under load, cost it a whole interval each
# time: a 10,000-alert webhook took 6.4 s during bench_storm with such yields, 2.9 s without).
SWITCH_INTERVAL_S = 0.001

OPTIONS = (
    Option("listen", "127.0.0.1:9464", "address to serve the API and /metrics on", settings.host_port, "HOST:PORT"),
    Option("scrape_interval", 5.0, "scrape interval", settings.duration, "DURATION"),
    Option("scrape_timeout", None, "scrape timeout (default: the interval)", settings.duration, "DURATION"),
    Option("retention", 6 * 3600.0, "how long the embedded store keeps samples", settings.duration, "DURATION"),
    Option("job", "clusterwatch", "job label of scraped targets", str, "NAME"),
    Option("snapshot", None, "file to snapshot the store to (and restore from at start)", settings.optional_path,
           "FILE"),
    Option("scheduler", "off", "workload manager to poll for jobs and nodes",
           settings.choice("off", "slurm-cli", "slurmrestd", "simulator"), "off|slurm-cli|slurmrestd|simulator"),
    Option("scheduler_url", None, "slurmrestd URL, or the simulator's Slurm face (http://HOST:PORT/slurm)",
           settings.optional_path, "URL"),
    Option("scheduler_interval", 15.0, "minimum time between two scheduler polls (protects slurmctld)",
           settings.duration, "DURATION"),
    Option("prometheus_url", None, "read every page from this Prometheus-API server; no embedded store or scraper",
           settings.optional_path, "URL"),
    Option("scheduler_token", None, "slurmrestd JWT (prefer the environment variable: flags show in ps)",
           settings.optional_path, "TOKEN"),
)
OPTIONS += ALERTING_OPTIONS  # declared beside the notification pipeline
OPTIONS += REMEDIATION_OPTIONS  # --automation, --policy: beside the remediation engine
OPTIONS += HTTP_OPTIONS  # --http-*, --scrape-max-connections: beside the front door (cwkernel/frontdoor.py)
OPTIONS += (  # the embedded engine's query limits (tsdb/promql/limits.py; docs/promql.md, "Limits")
    Option("query_timeout", 120.0, "longest a query may take, its wait for a slot included (then a 503 timeout)",
           settings.duration, "DURATION"),
    Option("query_max_samples", 50_000_000, "most samples a query may hold in memory at once (then a 422)",
           settings.positive_int, "N"),
    Option("query_max_concurrency", 20, "most /api/v1 and dashboard queries evaluating at once; 4 per slot may "
           "wait, more are refused (503). Rules and remediation never wait for these", settings.positive_int, "N"),
)
OPTIONS += (
    Option("evaluation_interval", 30.0, "interval of rule groups that set none", settings.duration, "DURATION"),
    Option("alert_state", None, "SQLite file of alert state (default: alert-state.sqlite in --state-dir; "
           "in memory without either)", settings.optional_path, "FILE"),
)
# Options that take several values: `--file-sd A B` or repeated flags; a list in the config file.
LIST_OPTIONS = (
    Option("file_sd", [], "Prometheus file_sd JSON/YAML files to scrape (re-read when they change)",
           settings.string_list, "FILE"),
    Option("targets", [], "static HOST:PORT targets to scrape", settings.string_list, "HOST:PORT"),
    Option("import_openmetrics", [], "OpenMetrics files to load at start-up (promtool's backfill format)",
           settings.string_list, "FILE"),
    Option("rules", [], "alert rule files or directories (default: the shipped pack in alerts/rules; with "
           "--prometheus-url, none: Prometheus or vmalert evaluates the exported pack)",
           settings.string_list, "DIR_OR_FILE"),
)


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("serve", help="run the server: scraper, metrics store and Prometheus API",
                                   description=__doc__.splitlines()[0].split(": ", 1)[-1])
    settings.add_flags(parser, OPTIONS, ENV_PREFIX)
    for option in LIST_OPTIONS:
        parser.add_argument(option.flag, dest=option.name, default=None, action="extend", nargs="+",
                            metavar=option.metavar,
                            help=f"{option.help} (env {option.env(ENV_PREFIX)}, comma-separated)")
    return parser


def load_config(args: argparse.Namespace, environ: dict[str, str] | None = None):
    from tsdb.component import TSDBConfig
    from tsdb.promql.limits import QueryLimits

    values = settings.resolve(OPTIONS + LIST_OPTIONS, config_file=args.config, flags=vars(args),
                              environ=environ, env_prefix=ENV_PREFIX)
    for name in ("file_sd", "import_openmetrics"):
        for path in values[name]:
            if not os.path.isfile(path):
                raise ConfigError(name, f"no such file: {path}", args.config)
    for target in values["targets"]:
        try:
            settings.host_port(target)
        except ValueError as exc:
            raise ConfigError("targets", str(exc), args.config) from None
    config = TSDBConfig(
        retention_s=values["retention"], scrape_interval_s=values["scrape_interval"],
        scrape_timeout_s=values["scrape_timeout"], static_targets=values["targets"], file_sd=values["file_sd"],
        job=values["job"], import_openmetrics=values["import_openmetrics"], snapshot_path=values["snapshot"],
        scrape_max_connections=values["scrape_max_connections"],
        query_limits=QueryLimits(values["query_timeout"], values["query_max_samples"], values["query_max_concurrency"]),
    )
    if config.scrape_timeout_s and config.scrape_timeout_s > config.scrape_interval_s:
        raise ConfigError("scrape_timeout", "must not be longer than scrape_interval", args.config)
    if values["scheduler"] in ("slurmrestd", "simulator") and not values["scheduler_url"]:
        raise ConfigError("scheduler_url", f"required with scheduler {values['scheduler']}", args.config)
    return values["listen"], config, values


def scheduler_components(values: dict, tsdb, audit=None) -> tuple[list, object]:
    """The scheduler adapter (or None) and its components: the adapter's polling and, with an
    embedded store, the in-process ingestion of its metrics."""
    if values["scheduler"] == "off":
        return [], None
    from cwkernel.server import Component
    from scheduler import build_scheduler
    from tsdb.local import LocalSource

    options = {"min_interval": values["scheduler_interval"]}
    if values["scheduler_token"]:
        options["token"] = values["scheduler_token"]
    if audit is not None:
        options["audit"] = audit
    try:
        adapter = build_scheduler(values["scheduler"], values["scheduler_url"], **options)
    except ValueError as exc:
        raise ConfigError("scheduler", str(exc)) from None
    # Without an embedded store (--prometheus-url) Prometheus scrapes these metrics from /metrics.
    ingest = LocalSource(tsdb.store, "scheduler", adapter.collector, values["scheduler_interval"], "slurm") \
        if tsdb is not None else None

    def start() -> None:
        adapter.start()
        if ingest:
            ingest.start()

    def stop() -> None:
        if ingest:
            ingest.stop()
        adapter.stop()

    return [Component("scheduler", start=start, stop=stop, collectors=[adapter.collector])], adapter


class _Collectors:
    """Several prometheus_client collectors seen as one."""

    def __init__(self, collectors: list) -> None:
        self.collectors = collectors

    def collect(self):
        for collector in self.collectors:
            yield from collector.collect()


def self_ingest_component(tsdb, components: list, interval: float):
    """The server's own health (rule evaluation, notification delivery, automation, the store)
    ingested into its embedded store, so the monitoring rules (NotificationsFailing,
    RuleEvaluationFailing...) can fire without a Prometheus scraping the server. The scheduler's
    metrics have their own source (job "slurm")."""
    from cwkernel.server import Component
    from tsdb.local import LocalSource

    collectors = [c for component in components if component.name != "scheduler" for c in component.collectors]
    source = LocalSource(tsdb.store, "server", _Collectors(collectors), interval, "clusterwatch-server")
    return Component("self-ingest", start=source.start, stop=source.stop)


def rules_evaluator(values: dict, tsdb, query, config_file: str | None = None):
    """The rule evaluator over the embedded store (writing ALERTS and recorded series back into
    it) or, with --prometheus-url, reading only. ``evaluator.notify`` is the pipeline's hook."""
    from alerts.evaluator.component import build_evaluator
    from alerts.evaluator.rulefile import RuleFileError

    state = values["alert_state"] or (os.path.join(values["state_dir"], "alert-state.sqlite")
                                      if values.get("state_dir") else None)
    try:
        return build_evaluator(values["rules"] or None, query, tsdb.store.append_rule_output if tsdb else None,
                               state, values["evaluation_interval"])
    except RuleFileError as exc:
        raise ConfigError("rules", str(exc), config_file) from None


def _bind(listen: str) -> socket.socket:
    host, _, port = listen.rpartition(":")
    try:
        # proto must be IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on such sockets,
        # and without it keep-alive clients wait 40 ms per request on delayed ACKs.
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM,
                             socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host.strip("[]"), int(port)))
    except OSError as exc:
        raise ConfigError("listen", f"cannot listen on {listen}: {exc.strerror}") from None
    return sock


def build_components(values: dict, config, config_file: str | None = None) -> list:
    """Every component of the server for these settings, not yet started (docs/metrics.md is
    generated from their collectors, so this is the one place that assembles them)."""
    from alerts.evaluator.component import evaluator_component
    from alerts.notify import component as alerting
    from remediation.component import from_settings as remediation_component
    from cwkernel import frontdoor
    from dashboard.audit import AuditLog
    from dashboard.component import dashboard_component
    from dashboard.context import DashboardContext
    from tsdb.client import HTTPQueryClient
    from tsdb.component import EmbeddedTSDB
    from tsdb.exposition import ExpositionError

    components = []
    if values["prometheus_url"]:
        tsdb = None
        query = HTTPQueryClient(values["prometheus_url"])
    else:
        tsdb = EmbeddedTSDB(config)
        try:
            tsdb.load()
        except (OSError, ValueError, ExpositionError) as exc:
            raise ConfigError("import_openmetrics", str(exc), config_file) from None
        components.append(tsdb.component())
        query = tsdb.client
    audit = AuditLog()
    scheduler, adapter = scheduler_components(values, tsdb, audit.sink)
    alerting_component, pipeline = alerting.from_settings(values, config_file)
    # In production Prometheus or vmalert evaluates the pack and Alertmanager delivers it to the
    # inbound receiver; evaluating it here too would record every alert twice.
    evaluate_here = tsdb is not None or bool(values["rules"])
    evaluator = rules_evaluator(values, tsdb, query, config_file) if evaluate_here else None
    if evaluator is not None:
        evaluator.notify = pipeline.notify  # firing and resolved alerts enter the notification pipeline
    remediation = remediation_component(values, adapter, query, pipeline, config_file)
    components += [*scheduler, *([evaluator_component(evaluator)] if evaluator else []), alerting_component,
                   *([remediation] if remediation else []),
                   dashboard_component(DashboardContext(tsdb.request_client if tsdb else query, adapter, audit,
                                                        alerting=pipeline))]
    components.append(frontdoor.http_component(values))
    components.append(health_component(components))
    if tsdb is not None:
        components.append(self_ingest_component(tsdb, components, config.scrape_interval_s))
    components.append(GCPolicy().component())  # last: what the others built at start is frozen
    return components


def health_component(components: list):
    """The other components' health hooks as metrics (and so, self-ingested, as alerts)."""
    from cwkernel.health import HealthCollector
    from cwkernel.server import Component

    return Component("health", collectors=[HealthCollector(components)])


def run(args: argparse.Namespace) -> int:
    from alerts.notify import component as alerting
    from cwkernel import auth, frontdoor, logthrottle
    from cwkernel.server import build_app

    listen, config, values = load_config(args)
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    operators = auth.operators_from_env()  # a malformed CLUSTERWATCH_OPERATORS stops here, not per action
    logthrottle.install(logthrottle.Throttle())
    budget = frontdoor.apply_descriptor_budget(values, config)
    components = build_components(values, config, args.config)
    sock = _bind(listen)
    app = build_app(components)
    auth.install(app, operators)
    alerting.install_operator_token(app, values["operator_token"])
    server = _graceful_server(frontdoor.uvicorn_config(app, frontdoor.guard_of(components), budget))
    print(f"clusterwatch serve on http://{listen} (Prometheus API at /api/v1, metrics at /metrics)", flush=True)
    server.run(sockets=[sock])
    return 0


def _graceful_server(config):
    """A uvicorn server; imported lazily so that `clusterwatch --help` stays quick."""
    import uvicorn

    class GracefulServer(uvicorn.Server):
        """On SIGTERM/SIGINT: stop accepting, finish requests, run the lifespan shutdown (scraper
        stopped, snapshot written), then exit 0. uvicorn's own handler would re-raise the signal
        after shutdown, so the process would end "killed by SIGTERM" instead."""

        @contextlib.contextmanager
        def capture_signals(self):
            previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGTERM, signal.SIGINT)}
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

    return GracefulServer(config)
