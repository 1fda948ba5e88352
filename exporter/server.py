"""The exporter's HTTP endpoint: serves the last collection, never collects on a scrape."""
from __future__ import annotations

import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST as OPENMETRICS_CONTENT_TYPE

from exporter.exporter import Collection

log = logging.getLogger(__name__)

LANDING_PAGE = b"""<!doctype html><html><head><title>ClusterWatch exporter</title></head>
<body><h1>ClusterWatch exporter</h1><p><a href="/metrics">Metrics</a></p></body></html>"""


def wants_openmetrics(accept: str) -> bool:
    return "application/openmetrics-text" in accept


def wants_gzip(accept_encoding: str) -> bool:
    return "gzip" in accept_encoding


def write_collection(handler: BaseHTTPRequestHandler, collection: Collection | None) -> None:
    """Answer a scrape with ``collection`` in the format and encoding the scraper asked for."""
    if collection is None:
        # Missing data is never healthy: say so instead of serving an empty 200.
        handler.send_error(503, "no collection has completed yet")
        return
    openmetrics = wants_openmetrics(handler.headers.get("Accept", ""))
    gzipped = wants_gzip(handler.headers.get("Accept-Encoding", ""))
    body = collection.render(openmetrics=openmetrics, gzipped=gzipped)
    handler.send_response(200)
    handler.send_header("Content-Type", OPENMETRICS_CONTENT_TYPE if openmetrics else CONTENT_TYPE_LATEST)
    if gzipped:
        handler.send_header("Content-Encoding", "gzip")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    if handler.command != "HEAD":
        handler.wfile.write(body)


class _Handler(BaseHTTPRequestHandler):
    server: "ExporterHTTPServer"
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle on, a kept-alive scraper then waits
    # ~40 ms for the delayed ACK on every response.
    disable_nagle_algorithm = True

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            write_collection(self, self.server.get_collection())
        elif path == "/":
            self._plain(200, LANDING_PAGE, "text/html; charset=utf-8")
        elif path in ("/-/healthy", "/-/ready"):
            ready = path == "/-/healthy" or self.server.get_collection() is not None
            self._plain(200 if ready else 503, b"OK\n" if ready else b"not ready\n", "text/plain")
        else:
            self.send_error(404, "not found")

    do_HEAD = do_GET

    def _plain(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - signature of the base class
        log.debug("%s - %s", self.address_string(), format % args)


class ExporterHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], get_collection: Callable[[], Collection | None]) -> None:
        super().__init__(address, _Handler)
        self.get_collection = get_collection

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def start_in_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, name="exporter-http", daemon=True)
        thread.start()
        return thread


def parse_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host.strip("[]") or "0.0.0.0", int(port)
