"""``/static/...``: the dashboard's own scripts and styles, plotly.js's cartesian partial bundle
(``plotly-cartesian.min.js``, the npm package ``plotly.js-cartesian-dist-min``, MIT, vendored: what
the pages load) and the full plotly.min.js from the installed plotly package (for scripts that want
every trace type). No CDN: the dashboard must work on an air-gapped cluster.

Every file is gzip-compressed once per process (plotly's cartesian bundle 1.5 MB -> 0.5 MB) and
kept in memory, and pages link ``/static/NAME?v=VERSION`` (``asset_url``), where VERSION changes
with any static file or the plotly release, so a browser keeps them for a year without asking
again (``immutable``) and a new release is fetched at once. Unversioned URLs get an ETag.
"""
from __future__ import annotations

import gzip
import hashlib
import threading
from functools import lru_cache
from importlib import resources
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request, Response

from dashboard.compress import accepts_gzip

STATIC = Path(__file__).resolve().parent.parent / "static"
TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
IMMUTABLE = "public, max-age=31536000, immutable"


def plotly_js() -> Path:
    return Path(str(resources.files("plotly") / "package_data" / "plotly.min.js"))


def static_files() -> dict[str, Path]:
    files = {p.name: p for p in STATIC.iterdir() if p.suffix in TYPES}
    files["plotly.min.js"] = plotly_js()
    return files


class _Asset:
    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self.etag = '"' + hashlib.sha1(raw).hexdigest()[:16] + '"'
        self._gzip: bytes | None = None
        self._lock = threading.Lock()

    @property
    def gzip(self) -> bytes:
        with self._lock:  # compressed once, by whichever request comes first
            if self._gzip is None:
                self._gzip = gzip.compress(self.raw, 6)
            return self._gzip


_loaded: dict[str, _Asset] = {}
_loading = threading.Lock()


def _assets() -> dict[str, _Asset]:
    with _loading:  # read once per process, whichever thread comes first
        if not _loaded:
            _loaded.update({name: _Asset(path.read_bytes()) for name, path in static_files().items()})
        return _loaded


@lru_cache(maxsize=None)
def asset_version() -> str:
    digest = hashlib.sha1()
    for name, asset in sorted(_assets().items()):
        digest.update(name.encode() + asset.etag.encode())
    return digest.hexdigest()[:12]


def asset_url(name: str) -> str:
    return f"/static/{name}?v={asset_version()}"


_warmed = threading.Event()


def _warm() -> None:
    """Compress what the pages link (not the full plotly.min.js) before the first visitor asks."""
    for name, asset in _assets().items():
        if name != "plotly.min.js":
            asset.gzip  # noqa: B018 - computed and kept
    asset_version()


def build_router() -> APIRouter:
    router = APIRouter(include_in_schema=False)
    if not _warmed.is_set():
        _warmed.set()
        threading.Thread(target=_warm, name="dashboard-static-gzip", daemon=True).start()

    @router.get("/static/{name}")
    def static(name: str, request: Request) -> Response:
        # Only the files listed at start-up: a name is a key, never a path.
        asset = _assets().get(name)
        if asset is None:
            raise HTTPException(404, f"no static file {name[:60]!r}")
        versioned = request.query_params.get("v") == asset_version()
        headers = {"Cache-Control": IMMUTABLE if versioned else "no-cache", "ETag": asset.etag,
                   "Vary": "Accept-Encoding"}
        if asset.etag in request.headers.get("if-none-match", ""):
            return Response(status_code=304, headers=headers)
        if accepts_gzip(request):
            headers["Content-Encoding"] = "gzip"
            return Response(asset.gzip, media_type=TYPES[Path(name).suffix], headers=headers)
        return Response(asset.raw, media_type=TYPES[Path(name).suffix], headers=headers)

    return router
