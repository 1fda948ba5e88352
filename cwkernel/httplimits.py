"""Request bodies bounded, and operator credentials checked, before a byte of the body is read.

FastAPI reads and parses a JSON body before it solves a route's dependencies, so a route that
``Depends(require_operator)`` used to read a 400 MB body from anyone before saying 401; nothing
bounded bodies at all. This ASGI middleware runs before routing, for every route:

- an **operator route** (one whose dependency tree includes ``require_operator``, found from the
  app's routes) has the request's credentials checked from its headers first: 401/403 exactly as
  ``require_operator`` answers, and the body is never read;
- a declared ``Content-Length`` over the route's limit is a **413** before anything is read;
- a body without a declared length (chunked) is counted as the route reads it, and stopped with a
  **413** at the limit;
- a refused request's connection is closed, so no unread body is read afterwards.

Limits per route class (docs/operations.md, "Limits"): a route may declare its own with FastAPI's
``max_body_size=N`` (which FastAPI enforces too; the Alertmanager webhook does, alerts/receiver.py);
else operator actions 64 KiB, the rest (the /api/v1 forms included) 1 MiB. Errors take the
route's shape: Prometheus's JSON on the Prometheus API, FastAPI's ``{"detail": ...}`` elsewhere.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from fastapi import HTTPException
from starlette.routing import Match

from cwkernel.auth import auth_of, needs_operator
from cwkernel.routes import served_routes

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

KIB = 1024
MIB = 1024 * KIB
OPERATOR_BODY = 64 * KIB
DEFAULT_BODY = 1 * MIB
PROMETHEUS_TAG = "prometheus-api"  # tsdb/api.py's routes answer in Prometheus's error shape
BODYLESS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class RoutePolicy:
    limit: int
    operator: bool
    prometheus: bool
    what: str  # the route class, for error messages
    route: Any = None  # the route that will answer; None when none matches (a 404 or 405 follows)


DEFAULT = RoutePolicy(DEFAULT_BODY, False, False, "this server")


def policy_of(route) -> RoutePolicy:
    """What the middleware enforces for ``route``, one of ``served_routes(app)``."""
    dependant = getattr(route, "dependant", None)
    operator = dependant is not None and needs_operator(dependant)
    prometheus = PROMETHEUS_TAG in (getattr(route, "tags", None) or ())
    declared = getattr(route, "max_body_size", None)
    if declared is not None:
        return RoutePolicy(declared, operator, prometheus, "this route", route)
    if operator:
        return RoutePolicy(OPERATOR_BODY, True, prometheus, "operator actions", route)
    return RoutePolicy(DEFAULT_BODY, False, prometheus, "this server", route)


class BodyTooLarge(Exception):
    """Raised from ``receive`` when a streamed body passes its limit."""


class BodyLimitMiddleware:
    """ASGI middleware; ``app.add_middleware(BodyLimitMiddleware)`` (``build_app`` does)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        has_body = "content-length" in headers or "transfer-encoding" in headers
        if scope["method"] in BODYLESS and not has_body:
            await self.app(scope, receive, send)
            return
        policy = route_policy(scope)
        if policy.operator:
            try:
                auth_of(scope["app"]).authenticate(headers.get("authorization"))
            except HTTPException as exc:
                await _refuse(send, policy, exc.status_code, str(exc.detail), exc.headers)
                return
        if not has_body:
            await self.app(scope, receive, send)
            return
        declared = _content_length(headers.get("content-length"))
        if declared is None and "content-length" in headers:
            await _refuse(send, policy, 400, "Content-Length is not a whole number")
            return
        if declared is not None and declared > policy.limit:
            await _refuse(send, policy, 413, _too_large(policy))
            return
        await self._bounded(scope, receive, send, policy)

    async def _bounded(self, scope: Scope, receive: Receive, send: Send, policy: RoutePolicy) -> None:
        """The app with a receive that stops at the limit; past it the app's answer, whatever
        it is, is replaced by the 413."""
        received = 0
        exceeded = False
        started = False

        async def bounded_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > policy.limit:
                    exceeded = True
                    raise BodyTooLarge(_too_large(policy))
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded:
                return  # the 413 is sent below instead
            started = True
            await send(message)

        try:
            await self.app(scope, bounded_receive, guarded_send)
        except BodyTooLarge:
            pass
        except Exception:
            if not exceeded:
                raise
        if exceeded and not started:
            await _refuse(send, policy, 413, _too_large(policy))


def _headers(scope: Scope) -> dict[str, str]:
    return {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]}


def _content_length(value: str | None) -> int | None:
    if value is None or not value.strip().isdigit():
        return None
    return int(value)


def route_policy(scope: Scope) -> RoutePolicy:
    """The policy of the route that will answer: the first that matches the path and method;
    none (a 404 or 405 follows) gets the default."""
    for route, policy in _policies(scope.get("app")):
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return policy
    return DEFAULT


def _policies(app: Any) -> list[tuple[Any, RoutePolicy]]:
    """Every served route with its policy, worked out once per app (routes do not change once
    it serves): two middlewares ask for every request."""
    cached = getattr(getattr(app, "state", None), "route_policies", None)
    if cached is None:
        cached = [(route, policy_of(route)) for route in served_routes(app)]
        if getattr(app, "state", None) is not None and getattr(app, "router", None) is not None:
            app.state.route_policies = cached
    return cached


def _too_large(policy: RoutePolicy) -> str:
    return f"request body larger than {policy.limit} bytes, the limit of {policy.what}"


async def _refuse(send: Send, policy: RoutePolicy, status: int, message: str,
                  extra_headers: dict[str, str] | None = None) -> None:
    """Answer in the route's error shape and close the connection (its body stays unread)."""
    if policy.prometheus:
        error_type = "bad_data" if status < 500 else "internal"
        body = {"status": "error", "errorType": error_type, "error": message}
    else:
        body = {"detail": message}
    data = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()),
               (b"connection", b"close")]
    headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (extra_headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})
