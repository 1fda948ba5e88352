"""The one server process's FastAPI app, assembled from components.

Each area of ClusterWatch (the embedded store today; the scheduler adapter, alerting and the
dashboard later) contributes a ``Component``: its routers, the background work to start and
stop with the server, and the collectors of its self-metrics for the server's own /metrics.
Adding an area is adding one component to the list handed to ``build_app``.
"""
from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Callable, Iterable, Mapping, Sequence

from fastapi import APIRouter, FastAPI
from fastapi.responses import PlainTextResponse, Response
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from clusterwatch import __version__, httperrors
from clusterwatch.health import HealthCollector, problems_of, ready_text
from clusterwatch.admission import Admission, AdmissionMiddleware
from clusterwatch.httplimits import BodyLimitMiddleware
from clusterwatch.secheaders import SecurityHeadersMiddleware

log = logging.getLogger(__name__)


@dataclass
class Component:
    """What one area adds to the server. ``start``/``stop`` run in the app's lifespan (stop in
    reverse order); ``collectors`` are prometheus_client collectors (objects with collect());
    ``health`` returns the problems the area has worked around and still has, reason code ->
    one sentence, empty when healthy (clusterwatch/health.py reports them)."""

    name: str
    routers: Sequence[APIRouter] = ()
    start: Callable[[], Any] | None = None
    stop: Callable[[], Any] | None = None
    collectors: Sequence[Any] = field(default_factory=tuple)
    health: Callable[[], Mapping[str, str]] | None = None


def build_app(components: Iterable[Component], title: str = "ClusterWatch") -> FastAPI:
    """A FastAPI app serving every component's routers plus /metrics, /-/healthy and /-/ready."""
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

    @app.get("/-/ready", include_in_schema=False)
    def ready() -> PlainTextResponse:
        # 200 while degraded: the server still serves and monitors (clusterwatch/health.py).
        return PlainTextResponse(ready_text(problems_of(components)))

    app.state.components = {c.name: c for c in components}
    return app
