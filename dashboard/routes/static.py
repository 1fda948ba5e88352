"""``/static/...``: the dashboard's own scripts and styles, and plotly.js from the installed plotly
package (no CDN: the dashboard must work on an air-gapped cluster)."""
from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse

STATIC = Path(__file__).resolve().parent.parent / "static"
TYPES = {".js": "text/javascript", ".css": "text/css"}


def plotly_js() -> Path:
    return Path(str(resources.files("plotly") / "package_data" / "plotly.min.js"))


def build_router() -> APIRouter:
    router = APIRouter(include_in_schema=False)
    files = {p.name: p for p in STATIC.iterdir() if p.suffix in TYPES}
    files["plotly.min.js"] = plotly_js()

    @router.get("/static/{name}")
    def static(name: str) -> FileResponse:
        # Only the files listed at start-up: a name is a key, never a path.
        path = files.get(name)
        if path is None:
            raise HTTPException(404, f"no static file {name[:60]!r}")
        return FileResponse(path, media_type=TYPES[path.suffix], headers={"Cache-Control": "max-age=3600"})

    return router
