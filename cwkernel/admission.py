"""Request work admitted a few at a time, so that the watcher's own loops keep the interpreter.

Why: one interpreter lock serves every thread of the process, and it is shared out roughly by
thread. Fifty dashboard users asking at once ran fifty handler threads, each with as large a
share as a scrape worker or the rule evaluator: under that load scrapes fell seconds behind,
a webhook waited 20 s and even ``/metrics`` waited for a free thread (bench/bench_storm.py).
More handlers at once never bought throughput (the lock runs one at a time); it only took CPU
from the work the server exists for.

So each class of request that computes something (``view``: pages, the dashboard's JSON and the
alerting API; ``query``: the Prometheus API, whose queries also pass the engine's own gate) runs
at most ``max_active`` handlers at once. The others wait in arrival order on the event loop
(holding no thread) up to ``max_queued`` of them and up to ``queue_timeout`` each; past either,
503 with ``Retry-After``, in the route's error shape. A class's queue never delays another's.

Refused at once while the process is short of memory (cwkernel/memguard.py, reason ``memory``).

Never queued: the probes (``/-/healthy``, ``/-/ready``), ``/metrics``, static files, operator
actions (authenticated and rare: a drain must get through during the incident that causes the
load) and routes that run their own admission (the Alertmanager webhook, alerts/receiver.py).
"""
from __future__ import annotations

import asyncio
import json
import time
from collections import Counter, deque
from typing import Any, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from cwkernel.httplimits import Message, Receive, Scope, Send, route_policy
from cwkernel.memguard import MemoryGuard

OWN_ADMISSION = {"x-clusterwatch-admission": "own"}  # openapi_extra of a route that admits its own requests
UNQUEUED_PREFIXES = ("/-/", "/metrics", "/static/")
SHED_REPORT_S = 60.0
RETRY_AFTER_S = 5


class Admission:
    """The queues of request work; also the collector of their metrics and the health of shedding."""

    def __init__(self, max_active: int = 2, max_queued: int = 200, queue_timeout: float = 10.0,
                 memory: MemoryGuard | None = None) -> None:
        self.max_active = max_active
        self.memory = memory
        self.memory_reason = ""  # the sentence of the latest refusal for memory
        self.max_queued = max_queued
        self.queue_timeout = queue_timeout
        self._active: Counter[str] = Counter()
        self._waiting: dict[str, deque[asyncio.Future]] = {}
        self.shed: Counter[tuple[str, str]] = Counter()  # (class, reason) -> requests refused
        self.admitted: Counter[str] = Counter()
        self._last_shed = 0.0

    async def enter(self, kind: str) -> str | None:
        """Wait for a place; None once admitted (call ``leave``), else the reason it was refused."""
        short = self.memory.pressure() if self.memory is not None else None
        if short:
            self.memory_reason = short
            return self._refuse(kind, "memory")
        if self._active[kind] < self.max_active and not self._waiting.get(kind):
            self._active[kind] += 1
            self.admitted[kind] += 1
            return None
        waiting = self._waiting.setdefault(kind, deque())
        if len(waiting) >= self.max_queued:
            return self._refuse(kind, "queue_full")
        turn = asyncio.get_running_loop().create_future()
        waiting.append(turn)
        try:
            await asyncio.wait_for(asyncio.shield(turn), self.queue_timeout)
        except asyncio.TimeoutError:
            if turn.done() and not turn.cancelled():
                self.leave(kind)  # granted just as the wait ran out: pass it on
            else:
                turn.cancel()
                waiting.remove(turn)
            return self._refuse(kind, "queue_timeout")
        except asyncio.CancelledError:  # the client went away while waiting
            if turn.done() and not turn.cancelled():
                self.leave(kind)
            else:
                turn.cancel()
                waiting.remove(turn)
            raise
        self.admitted[kind] += 1
        return None

    def leave(self, kind: str) -> None:
        """A place is free: the oldest waiter of the class takes it (the count stays), else it is
        given back."""
        waiting = self._waiting.get(kind)
        while waiting:
            turn = waiting.popleft()
            if not turn.done():
                turn.set_result(None)
                return
        self._active[kind] -= 1

    def _refuse(self, kind: str, reason: str) -> str:
        self.shed[(kind, reason)] += 1
        self._last_shed = time.monotonic()
        return reason

    def problems(self) -> dict[str, str]:
        if time.monotonic() - self._last_shed > SHED_REPORT_S or not self.shed:
            return {}
        total = sum(self.shed.values())
        return {"requests_shed": f"requests refused with 503 because the server was busy ({total} since start; "
                                 f"at most {self.max_active} at once per class, {self.max_queued} waiting, "
                                 f"{self.queue_timeout:g}s wait)"}

    def collect(self) -> Iterator[Any]:
        active = GaugeMetricFamily("clusterwatch_http_requests_active",
                                   "Requests of a class being handled now (at most --http-max-active-requests)",
                                   labels=["class"])
        queued = GaugeMetricFamily("clusterwatch_http_requests_queued",
                                   "Requests of a class waiting for their turn", labels=["class"])
        shed = CounterMetricFamily("clusterwatch_http_requests_shed",
                                   "Requests refused with 503 because their class's queue was full, their wait "
                                   "ran out or the server was short of memory", labels=["class", "reason"])
        for kind in ("view", "query"):
            active.add_metric([kind], float(self._active[kind]))
            queued.add_metric([kind], float(len(self._waiting.get(kind, ()))))
            for reason in ("queue_full", "queue_timeout", "memory"):
                shed.add_metric([kind, reason], float(self.shed[(kind, reason)]))
        yield from (active, queued, shed)


def request_class(scope: Scope) -> str | None:
    """``view``, ``query``, or None for what is never queued."""
    path = scope.get("path", "")
    if path.startswith(UNQUEUED_PREFIXES):
        return None
    policy = route_policy(scope)
    if policy.route is None or policy.operator:
        return None  # a 404/405 costs nothing; operator actions must get through
    if (getattr(policy.route, "openapi_extra", None) or {}).get("x-clusterwatch-admission") == "own":
        return None
    return "query" if policy.prometheus else "view"


class AdmissionMiddleware:
    """ASGI middleware: ``app.add_middleware(AdmissionMiddleware, admission=...)``."""

    def __init__(self, app, admission: Admission) -> None:
        self.app = app
        self.admission = admission

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = request_class(scope) if scope["type"] == "http" else None
        if kind is None:
            await self.app(scope, receive, send)
            return
        refused = await self.admission.enter(kind)
        if refused is not None:
            await _busy(send, kind, refused, self.admission)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            self.admission.leave(kind)


async def _busy(send: Send, kind: str, reason: str, admission: Admission) -> None:
    if reason == "memory":
        message = f"server short of memory: {admission.memory_reason}; try again in {RETRY_AFTER_S}s"
    else:
        why = ("too many requests waiting" if reason == "queue_full"
               else f"waited {admission.queue_timeout:g}s without a turn")
        message = f"server busy: {why}; try again in {RETRY_AFTER_S}s"
    body: dict[str, Any] = ({"status": "error", "errorType": "unavailable", "error": message} if kind == "query"
                            else {"detail": message})
    data = json.dumps(body).encode()
    start: Message = {"type": "http.response.start", "status": 503, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()),
        (b"retry-after", str(RETRY_AFTER_S).encode())]}
    await send(start)
    await send({"type": "http.response.body", "body": data})
