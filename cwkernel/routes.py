"""The routes an app serves, flattened, across FastAPI versions.

FastAPI 0.165 keeps each included router as one entry of ``app.routes`` (without a ``path``), so
code that looked for a path there stopped finding any; ``fastapi.routing.iter_route_contexts``
yields the routes as served (prefixes, tags and dependencies of their routers applied). Older
versions flattened ``app.routes`` themselves.
"""
from __future__ import annotations

from typing import Any

try:
    from fastapi.routing import iter_route_contexts
except ImportError:  # FastAPI before 0.165: app.routes is already flat
    def iter_route_contexts(routes):  # type: ignore[no-redef]
        return iter(routes)


def served_routes(app: Any) -> list:
    """Every route of ``app`` with its effective ``path``, ``methods``, ``tags`` and ``dependant``."""
    return list(iter_route_contexts(getattr(app, "routes", ())))
