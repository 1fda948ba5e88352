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
from cwkernel import settings
from cwkernel.errors import ConfigError
from cwkernel.frontdoor import OPTIONS as HTTP_OPTIONS
from cwkernel.settings import Option
from exporter.fabric import FABRIC_JOB
from dashboard.options import OPTIONS as DASHBOARD_OPTIONS
from remediation.component import OPTIONS as REMEDIATION_OPTIONS
from tsdb.client import DEFAULT_MAX_ANSWER_BYTES
from tsdb.store import Limits

log = logging.getLogger(__name__)

ENV_PREFIX = "CLUSTERWATCH_SERVE_"
# A fabric of about 10,000 cables from one collector; a larger one belongs in Prometheus (docs/operations.md).
FABRIC_SERIES_LIMIT = 500_000
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
    Option("max_series", 2_000_000, "most series the embedded store holds (about 2 KB of memory each); near it the "
           "targets holding the most are refused new series first (docs/operations.md, \"Limits\")",
           settings.positive_int, "N"),
    Option("job", "clusterwatch", "job label of scraped targets", str, "NAME"),
    Option("scrape_label_limit", Limits.max_labels_per_series, "most labels a scraped series may have, target "
           "labels and __name__ included; past it the scrape fails (Prometheus's label_limit; 0: none)",
           settings.limit, "N"),
    Option("scrape_label_name_length_limit", Limits.max_label_name_length, "longest label name of a scraped "
           "series, in bytes; past it the scrape fails (label_name_length_limit; 0: none)", settings.limit, "N"),
    Option("scrape_label_value_length_limit", Limits.max_label_value_length, "longest label value of a scraped "
           "series (the metric name included), in bytes; past it the scrape fails (label_value_length_limit; "
           "0: none)", settings.limit, "N"),
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
    Option("prometheus_max_answer_bytes", DEFAULT_MAX_ANSWER_BYTES, "with --prometheus-url: the largest answer read from that "
           "server; a query past it is refused (a 422) before the rest is read", settings.positive_int, "BYTES"),
    Option("scheduler_token", None, "slurmrestd JWT (prefer the environment variable: flags show in ps)",
           settings.optional_path, "TOKEN"),
)
OPTIONS += ALERTING_OPTIONS  # declared beside the notification pipeline
OPTIONS += REMEDIATION_OPTIONS  # --automation, --policy: beside the remediation engine
OPTIONS += DASHBOARD_OPTIONS  # --banner: beside the dashboard
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
    Option("gpu_source", "clusterwatch", "what writes the GPU series: ClusterWatch's exporters, or dcgm-exporter "
           "(then the dcgm bridge's recording rules run with the pack, docs/migration.md)",
           settings.choice("clusterwatch", "dcgm"), "clusterwatch|dcgm"),
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
    Option("scrape_series_limit", [], "JOB=N: the most series one target of that scrape job may expose, instead "
           f"of 50,000 (a larger one is refused whole); {FABRIC_JOB}={FABRIC_SERIES_LIMIT} unless given (one fabric "
           "collector exposes about 47 series per cable)", settings.string_list, "JOB=N"),
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
        limits=Limits(max_series_total=values["max_series"],
                      series_per_target_by_job=tuple(series_limits(values["scrape_series_limit"], args.config).items()),
                      max_labels_per_series=values["scrape_label_limit"],
                      max_label_name_length=values["scrape_label_name_length_limit"],
                      max_label_value_length=values["scrape_label_value_length_limit"]),
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


def series_limits(entries: list[str], config_file: str | None = None) -> dict[str, int]:
    """--scrape-series-limit's JOB=N entries over the default for the fabric collectors' job."""
    limits = {FABRIC_JOB: FABRIC_SERIES_LIMIT}
    for entry in entries:
        job, _, number = entry.partition("=")
        if not job or not number.isdigit() or int(number) < 1:
            raise ConfigError("scrape_series_limit", f"{entry!r}: expected JOB=N with N a positive integer",
                              config_file)
        limits[job] = int(number)
    return limits


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
    generated from their collectors, so this is the one place that assembles them). Each
    component module has one factory, ``build(values, deps) -> Component | None``
    (cwkernel/server.py): called in the order the components start, each reads from ``deps``
    what those before it provide and records there what it provides."""
    from alerts.evaluator import component as rules
    from alerts.notify import component as alerting, heartbeat
    from cwkernel import frontdoor, gcpolicy, health, reload, sdnotify
    from cwkernel.server import Builder, Deps
    from dashboard import component as dashboard
    from remediation import component as remediation
    from scheduler import component as scheduler
    from tsdb import component as tsdb, selfingest

    builders: tuple[Builder, ...] = (
        tsdb.build,  # the embedded store, or the query client of --prometheus-url
        scheduler.build,
        rules.build,
        alerting.build,  # the evaluator's alerts go to the pipeline
        remediation.build,  # the pipeline's remediation hook
        dashboard.build,
        frontdoor.build,  # connection and request admission
        reload.build,  # SIGHUP and POST /-/reload: the reload hooks of all the above (the rule files)
        health.build,  # the health hooks of all the above
        heartbeat.build,  # a dead man's switch told, while the loops of all the above come round
        sdnotify.build,  # under systemd: ready once all the above started, its watchdog pinged likewise
        selfingest.build,  # the collectors of all the above, into the embedded store
        gcpolicy.build,  # last: what the others built at start is frozen
    )
    from cwkernel.memguard import MemoryGuard

    # One bound for the process: the store's queries (built first) and the front door share it.
    deps = Deps(config_file=config_file, tsdb_config=config,
                memory=MemoryGuard.for_setting(values.get("memory_limit", 0)))
    for build in builders:
        component = build(values, deps)
        if component is not None:
            deps.components.append(component)
    return deps.components


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
