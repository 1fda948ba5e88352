"""The exporter's HTTP endpoint: serves the last collection, never collects on a scrape.

Anything on the node's network can connect, so connections are bounded: at most
``max_connections`` open (sized from the descriptor limit), and at the bound the connection
that has waited longest for a request is closed to make room, as ``serve``'s front door does.
A scraper's connection sends its request at once and is never the one taken, so idle or half-sent
connections can no longer take every descriptor and leave the scraper in the backlog (the node
read as down).
"""
from __future__ import annotations

import logging
import resource
import select
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST as OPENMETRICS_CONTENT_TYPE

from cwkernel.connections import ConnectionGuard
from exporter.exporter import Collection

log = logging.getLogger(__name__)

MAX_CONNECTIONS = 256  # a node has a scraper or two, a health check and an operator's curl
RESERVED_FDS = 64  # NVML's device files, procfs and textfile reads, the kubelet's socket, logs
HEADER_PEEK = 16 << 10  # a scrape's request line and headers are a few hundred bytes
IDLE_TIMEOUT_S = 120.0  # a connection with no request for this long is closed (scrapers reconnect)

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
    timeout = IDLE_TIMEOUT_S

    def handle_one_request(self) -> None:
        # Looked at before reading: once read, a request's bytes are no longer in the socket for
        # the guard to see, and a scraper's connection would look like a half-sent one.
        self.server.set_waiting(self.connection, not _request_arrived(self.connection))
        super().handle_one_request()

    def parse_request(self) -> bool:
        parsed = super().parse_request()
        if not self.server.set_waiting(self.connection, False):  # displaced while its headers trickled in
            self.close_connection = True
            return False
        return parsed

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


class _Connection:
    """One accepted socket as ``ConnectionGuard`` sees a connection."""

    admitted = False

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def displace(self) -> None:
        _shut(self.sock)  # its handler's read returns at once and the thread ends

    def request_pending(self) -> bool:
        return _request_arrived(self.sock)


def _request_arrived(conn: socket.socket) -> bool:
    """Whether a request's whole head waits in ``conn``'s buffer; never blocks (a socket with a
    timeout waits for data before even a MSG_DONTWAIT read, so readiness is polled first)."""
    poller = select.poll()
    poller.register(conn, select.POLLIN)
    if not poller.poll(0):
        return False
    try:
        pending = conn.recv(HEADER_PEEK, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except OSError:
        return False
    return b"\r\n\r\n" in pending


def _shut(conn: socket.socket) -> None:
    try:
        conn.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def connection_limit() -> int:
    """``MAX_CONNECTIONS``, or fewer where the descriptor limit leaves less after the reserve."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return MAX_CONNECTIONS
    return max(8, min(MAX_CONNECTIONS, soft - RESERVED_FDS))


class ExporterHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the listen backlog: a burst of scrapers is not refused

    def __init__(self, address: tuple[str, int], get_collection: Callable[[], Collection | None],
                 max_connections: int | None = None) -> None:
        super().__init__(address, _Handler)
        self.get_collection = get_collection
        # serve's policy for its front door (cwkernel/connections.py); the timeouts here are the
        # handlers' socket timeout instead.
        self.guard = ConnectionGuard(max_connections or connection_limit())
        self._connections: dict[socket.socket, _Connection] = {}

    def process_request(self, request: socket.socket, client_address: tuple) -> None:  # type: ignore[override]
        connection = _Connection(request)
        connection.admitted = self.guard.admit(connection)
        if not connection.admitted:
            super().shutdown_request(request)
            return
        self._connections[request] = connection
        self.guard.set_waiting(connection, True)
        super().process_request(request, client_address)

    def set_waiting(self, request: socket.socket, waiting: bool) -> bool:
        """Marks the connection as waiting for a request or not; False once it was displaced."""
        connection = self._connections.get(request)
        if connection is None or not connection.admitted:
            return False
        self.guard.set_waiting(connection, waiting)
        return True

    def shutdown_request(self, request: socket.socket) -> None:  # type: ignore[override]
        connection = self._connections.pop(request, None)
        if connection is not None:
            self.guard.release(connection)
        super().shutdown_request(request)

    def handle_error(self, request: socket.socket, client_address: tuple) -> None:  # type: ignore[override]
        # A client gone (or a connection closed to make room) is routine, not a traceback on stderr.
        error = sys.exc_info()[1]
        if isinstance(error, OSError):
            log.debug("connection from %s ended: %s", client_address[0], error)
            return
        super().handle_error(request, client_address)

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
