"""Compressed responses for the dashboard's pages and JSON (``route_class=GzipRoute``).

The overview of a 16,384-node cluster is about 1.5 MB of JSON per refresh (one number, one job
index per GPU, a name per node): repetitive text that gzip shrinks about tenfold. The server's
components can only add routers, not app-wide middleware, so each dashboard router compresses
its own responses (cwkernel/compress.py, off the event loop).
"""
from __future__ import annotations

from typing import Any, Callable, Coroutine

from fastapi import Request, Response
from fastapi.routing import APIRoute

from cwkernel.compress import accepts_gzip, gzipped

__all__ = ["GzipRoute", "accepts_gzip"]


class GzipRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def compressed(request: Request) -> Response:
            return await gzipped(request, await handler(request))

        return compressed
