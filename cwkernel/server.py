"""The one server process's FastAPI app, assembled from components.

Each area of ClusterWatch (the embedded store, the scheduler adapter, the rule evaluator, the
notification pipeline, remediation, the dashboard...) contributes a ``Component``: its routers,
the background work to start and stop with the server, and the collectors of its self-metrics for
the server's own /metrics. Adding an area is adding one component to the list handed to
``build_app``.

Every component module has one factory shape, ``build(values, deps) -> Component | None``:
``values`` are ``serve``'s resolved settings (option name -> value), ``deps`` what the components
built before it provide (``Deps``); None means not wanted with these settings.
"""
from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, AsyncIterator, Callable, Iterable, Mapping, Sequence

from fastapi import APIRouter, FastAPI
from fastapi.responses import PlainTextResponse, Response
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from cwkernel import httperrors
from cwkernel.admission import Admission, AdmissionMiddleware
from cwkernel.health import HealthCollector, problems_of, ready_text, stalled_in
from cwkernel.httplimits import BodyLimitMiddleware
from cwkernel.memguard import MemoryGuard
from cwkernel.secheaders import SecurityHeadersMiddleware
from cwkernel.version import __version__

if TYPE_CHECKING:  # the types of what components hand each other; the kernel imports none of them
    from alerts.evaluator.manager import RuleEvaluator, Writer
    from alerts.notify.pipeline import Pipeline
    from alerts.reader import AlertingReader
    from scheduler.adapter import SchedulerAdapter
    from scheduler.audit import AuditLog
    from tsdb.client import QueryClient
    from tsdb.component import TSDBConfig
    from remediation.engine import RemediationEngine
    from tsdb.local import LocalSource

log = logging.getLogger(__name__)


@dataclass
class Component:
    """What one area adds to the server. ``start``/``stop`` run in the app's lifespan (stop in
    reverse order); ``collectors`` are prometheus_client collectors (objects with collect());
    ``health`` returns the problems the area has worked around and still has, reason code ->
    one sentence, empty when healthy (cwkernel/health.py reports them); ``stalled`` its
    background loops that have stopped coming round, loop -> one sentence (cwkernel/loopwatch.py);
    ``reload`` re-reads its configuration files without a restart."""

    name: str
    routers: Sequence[APIRouter] = ()
    start: Callable[[], Any] | None = None
    stop: Callable[[], Any] | None = None
    collectors: Sequence[Any] = field(default_factory=tuple)
    health: Callable[[], Mapping[str, str]] | None = None
    stalled: Callable[[], Mapping[str, str]] | None = None
    # Reads its files again (SIGHUP, POST /-/reload: cwkernel/reload.py) and applies them when
    # they are all good; raises ConfigError naming the file and field, keeping what runs, when not.
    reload: Callable[[], Any] | None = None


@dataclass
class Deps:
    """What a component's ``build(values, deps)`` gets besides the settings: where they came from,
    and what the components built before it provide. ``serve`` builds the components in the
    order they start; a factory reads here what it needs and records here what it provides."""

    config_file: str | None = None  # the settings' file, named in ConfigErrors
    tsdb_config: TSDBConfig | None = None  # the embedded store's settings (load_config, then the descriptor budget)
    # Provided by the store (tsdb.component): PromQL for rules and remediation (the embedded
    # engine's reserved lane, or --prometheus-url), PromQL for requests (the dashboard, through the
    # engine's gate), and, with the embedded store only, in-process ingestion of a collector and
    # the writer of recorded series and ALERTS.
    query: QueryClient | None = None
    request_query: QueryClient | None = None
    ingest: Callable[[str, Any, float, str], LocalSource] | None = None  # (name, collector, interval, job)
    rule_writer: Writer | None = None
    scheduler: SchedulerAdapter | None = None  # scheduler.component; None without --scheduler
    audit: AuditLog | None = None  # the adapter's recent actions, for the node page
    evaluator: RuleEvaluator | None = None  # alerts.evaluator.component
    pipeline: Pipeline | None = None  # alerts.notify.component
    alerting: AlertingReader | None = None  # the pipeline, read (alerts.notify.component)
    remediation: RemediationEngine | None = None  # remediation.component; None with automation off
    memory: MemoryGuard | None = None  # the process's memory bound (serve makes it; the front door reports it)
    components: list[Component] = field(default_factory=list)  # built so far, in order


Builder = Callable[[Mapping[str, Any], Deps], "Component | None"]


def build_app(components: Iterable[Component], title: str = "ClusterWatch") -> FastAPI:
    """A FastAPI app serving every component's routers plus /metrics, /-/healthy, /-/live and /-/ready."""
    components = list(components)
    registry = CollectorRegistry(auto_describe=False)
    for component in components:
        for collector in component.collectors:
            registry.register(collector)
    if not any(isinstance(c, HealthCollector) for component in components for c in component.collectors):
        registry.register(HealthCollector(components))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        started: list[Component] = []
        try:
            for component in components:
                if component.start:
                    component.start()
                started.append(component)
                log.info("started %s", component.name)
            yield
        finally:
            for component in reversed(started):
                if component.stop:
                    try:
                        component.stop()
                    except Exception:  # noqa: BLE001 - stop the others even if one fails
                        log.exception("stopping %s failed", component.name)

    # No /docs or /redoc: FastAPI's pages load Swagger UI from a CDN, which an air-gapped cluster
    # cannot reach; the OpenAPI document stays at /openapi.json for any local viewer.
    app = FastAPI(title=title, version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None)
    for component in components:
        for router in component.routers:
            app.include_router(router)
    httperrors.install(app)  # a 422 echoing NaN or bytes must not become a 500
    admission = next((c for component in components for c in component.collectors if isinstance(c, Admission)),
                     None)
    if admission is not None:
        app.add_middleware(AdmissionMiddleware, admission=admission)  # inside the body limits: refused bodies never wait
    app.add_middleware(BodyLimitMiddleware)  # credentials and body size before any body is read
    app.add_middleware(SecurityHeadersMiddleware)  # outermost: on every answer, refusals included

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/-/healthy", include_in_schema=False)
    async def healthy() -> PlainTextResponse:  # on the event loop: needs no free thread to answer
        return PlainTextResponse("OK\n")

    @app.get("/-/live", include_in_schema=False)
    async def live() -> PlainTextResponse:
        # A liveness probe: 503 while a loop is stalled, so that a kubelet restarts a wedged server
        # as systemd's watchdog does (cwkernel/sdnotify.py). Degraded but moving is alive. On the
        # event loop, as /-/healthy: a server busy in every thread must not look dead.
        stalled = stalled_in(components)
        if stalled:
            return PlainTextResponse("Stalled\n" + "".join(f"{where}: {why}\n" for where, why in stalled.items()),
                                     status_code=503)
        return PlainTextResponse("OK\n")

    @app.get("/-/ready", include_in_schema=False)
    def ready() -> PlainTextResponse:
        # 200 while degraded: the server still serves and monitors (cwkernel/health.py).
        return PlainTextResponse(ready_text(problems_of(components)))

    app.state.components = {c.name: c for c in components}
    return app
