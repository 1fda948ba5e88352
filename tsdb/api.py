"""The Prometheus HTTP API (``/api/v1/...``) over the store and engine, as a FastAPI router.

Answers GET query strings and POST form bodies alike (Grafana posts forms), with Prometheus's
JSON envelope: ``{"status": "success", "data": ...}`` or ``{"status": "error", "errorType",
"error"}`` with 400 for bad_data, 422 for execution errors and 503 for timeouts and for queries
the engine's gate cannot admit (``unavailable``: its queue is full).

``/query`` and ``/query_range`` come from outside, so they pass the engine's gate
(``tsdb.promql.gate``): at most ``--query-max-concurrency`` evaluate at once, the rest wait in a
bounded queue, and each has ``--query-timeout`` from its arrival, its encoding included.
Answers are gzipped for a client that accepts it, as Prometheus's are (cwkernel/compress.py).
"""
from __future__ import annotations

import functools
import math
import time
from typing import Any, AsyncIterator, Callable

import anyio
import promql_parser as pp
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from cwkernel.compress import gzipped
from cwkernel.promapi import failure, success
from tsdb.apiparams import Params, parse_time
from tsdb.memory import release_free_memory
from tsdb.promql.engine import END_BEFORE_START, ZERO_STEP, Engine, parse_query
from tsdb.promql.evaluator import selector_matchers
from tsdb.promql.gate import Ticket
from tsdb.promql.limits import timed_out
from tsdb.promql.values import PromQLError, bad_data
from tsdb.results import QueryResult
from tsdb.store import Store

# A larger answer is streamed in its pieces rather than joined into one more copy.
_STREAM_OVER_BYTES = 1 << 20

TargetsProvider = Callable[[], list[dict[str, Any]]]
MetadataProvider = Callable[[], dict[str, list[dict[str, str]]]]


def success_encoded(data: list[bytes]) -> Response:
    """The success envelope around ``data`` already encoded (``QueryResult.data_json``)."""
    chunks = [b'{"status":"success","data":', *data, b"}"]
    if sum(map(len, chunks)) <= _STREAM_OVER_BYTES:
        return Response(b"".join(chunks), media_type="application/json")

    async def pieces() -> AsyncIterator[bytes]:
        chunks.reverse()
        while chunks:
            yield chunks.pop()  # each piece is freed once sent
    # Once sent, what the answer took is handed back to the system (tsdb/memory.py).
    return StreamingResponse(pieces(), media_type="application/json", background=BackgroundTask(release_free_memory))


def error(exc: PromQLError) -> JSONResponse:
    return failure(exc.error_type, exc.message, getattr(exc, "status", None))


def _series_matchers(params: Params, required: bool) -> list[list]:
    selectors = params.all("match[]")
    if required and not selectors:
        raise bad_data("no match[] parameter provided")
    out = []
    for text in selectors:
        try:
            expr = parse_query(text)
            if not isinstance(expr, pp.VectorSelector):
                raise bad_data(f"parse error: {text!r} is not a series selector")
            out.append(selector_matchers(expr))
        except PromQLError as exc:
            raise bad_data(f'invalid parameter "match[]": {exc.message}') from None
    return out


def _add_route(router: APIRouter, path: str, endpoint: Callable, name: str) -> None:
    """GET and POST (Grafana posts forms) as two operations, each with its own OpenAPI id."""
    endpoint.__name__ = name
    for method in ("GET", "POST"):
        router.add_api_route(path, endpoint, methods=[method], operation_id=f"prometheus_{name}_{method.lower()}")


def build_router(engine: Engine, store: Store, targets: TargetsProvider | None = None,
                 metadata: MetadataProvider | None = None) -> APIRouter:
    """The ``/api/v1`` routes answering from ``engine`` and ``store``."""
    router = APIRouter(prefix="/api/v1", tags=["prometheus-api"])
    # Threads for admitted queries, apart from the shared pool the dashboard's routes run in.
    evaluating = anyio.CapacityLimiter(engine.limits.max_concurrency)

    def route(path: str):
        def register(handler: Callable[[Params], Any]):
            async def endpoint(request: Request) -> JSONResponse:
                try:
                    params = await Params.of(request)
                    return await gzipped(request, success(await _call(handler, params, request)))
                except PromQLError as exc:
                    return error(exc)
            _add_route(router, path, endpoint, handler.__name__)
            return handler
        return register

    def gated_route(path: str, respond: Callable[[Any], Response]):
        """A route whose work reads the store as a query does (a query, or a walk over matching
        series): admitted by the engine's gate first (a full queue is refused at once; the wait
        happens on the event loop, holding no thread), then done in a thread of its own, within
        the request's deadline (the ticket's), and answered by ``respond``."""
        def register(handler: Callable[[Params, Ticket], Any]):
            async def endpoint(request: Request) -> Response:
                try:
                    params = await Params.of(request)
                    ticket = engine.gate.enter(params.timeout())
                    try:
                        await ticket.wait_async()
                        work = functools.partial(handler, params, ticket, **request.path_params)
                        data = await anyio.to_thread.run_sync(work, limiter=evaluating)
                    finally:
                        ticket.leave()
                    return await gzipped(request, respond(data))
                except PromQLError as exc:
                    return error(exc)
            _add_route(router, path, endpoint, handler.__name__)
            return handler
        return register

    @gated_route("/query", success_encoded)
    def query(params: Params, ticket: Ticket) -> list[bytes]:
        at = params.time("time", time.time())
        return _encoded(engine.instant(params.required("query"), at, ticket), ticket)

    @gated_route("/query_range", success_encoded)
    def query_range(params: Params, ticket: Ticket) -> list[bytes]:
        text = params.required("query")
        start, end = params.time("start", math.nan), params.time("end", math.nan)
        if math.isnan(start) or math.isnan(end):
            raise bad_data(f'invalid parameter "{"start" if math.isnan(start) else "end"}": missing')
        if end < start:
            raise bad_data(f'invalid parameter "end": {END_BEFORE_START}')
        params.required("step")
        step = params.duration("step")
        if not step > 0:  # NaN too, as Go's conversion of it is negative
            raise bad_data(f'invalid parameter "step": {ZERO_STEP}')
        return _encoded(engine.range(text, start, end, step, ticket), ticket)

    # The metadata routes read as queries do (Grafana's template variables ask them on every
    # dashboard load, and one selector can name every series): through the gate, by the deadline.
    @gated_route("/series", success)
    def series(params: Params, ticket: Ticket) -> Any:
        window = _window(params)
        seen: dict[tuple, dict[str, str]] = {}
        for matchers in _series_matchers(params, required=True):
            for labels in store.series_labels(matchers, *window, check=_deadline_check(ticket, "series walk")):
                seen.setdefault(tuple(sorted(labels.items())), labels)
        return [seen[key] for key in sorted(seen)]

    @gated_route("/labels", success)
    def labels(params: Params, ticket: Ticket) -> Any:
        selected = _selected_labels(store, params, ticket)
        if selected is None:
            return store.label_names()
        return sorted({name for labels in selected for name in labels})

    @gated_route("/label/{name}/values", success)
    def label_values(params: Params, ticket: Ticket, name: str = "") -> Any:
        selected = _selected_labels(store, params, ticket)
        if selected is None:
            return store.label_values(name)
        return sorted({labels[name] for labels in selected if name in labels})

    @route("/targets")
    def active_targets(params: Params) -> Any:
        return {"activeTargets": targets() if targets else [], "droppedTargets": []}

    @route("/metadata")
    def metric_metadata(params: Params) -> Any:
        data = metadata() if metadata else {}
        wanted = params.get("metric")
        if wanted:
            data = {k: v for k, v in data.items() if k == wanted}
        limit = params.limit()
        if limit is not None:
            data = dict(list(data.items())[:limit])
        return data

    @route("/status/buildinfo")
    def buildinfo(params: Params) -> Any:
        # Grafana asks for this to pick its query features; we speak the 2.42 dialect.
        return {"version": "2.42.0", "revision": "clusterwatch", "branch": "", "buildUser": "",
                "buildDate": "", "goVersion": ""}

    return router


def _deadline_check(ticket: Ticket, where: str) -> Callable[[], None]:
    def check() -> None:
        if time.monotonic() > ticket.deadline:
            raise timed_out(where)
    return check


def _encoded(result: QueryResult, ticket: Ticket) -> list[bytes]:
    return result.data_json(_deadline_check(ticket, "result encoding"))


async def _call(handler: Callable, params: Params, request: Request) -> Any:
    # Queries are CPU-bound: run them off the event loop so one slow query does not stall the rest.
    return await run_in_threadpool(handler, params, **request.path_params)


def _window(params: Params) -> tuple[int | None, int | None]:
    start, end = params.get("start"), params.get("end")
    return (round(parse_time(start, "start") * 1000) if start else None,
            round(parse_time(end, "end") * 1000) if end else None)


def _selected_labels(store: Store, params: Params, ticket: Ticket) -> list[dict[str, str]] | None:
    window = _window(params)  # checked even where it does not narrow the answer
    matcher_sets = _series_matchers(params, required=False)
    if not matcher_sets:
        return None
    check = _deadline_check(ticket, "series walk")
    return [labels for matchers in matcher_sets for labels in store.series_labels(matchers, *window, check=check)]
