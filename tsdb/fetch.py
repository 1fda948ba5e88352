"""HTTP GET of scrape pages over persistent connections, from a pool with a fixed size.

http.client rather than httpx: a scrape is one plain GET, and at 140 targets every 5 s httpx's
per-request overhead alone cost about 3% of a core (measured by bench/bench_tsdb.py).

The pool holds at most ``max_connections`` sockets, idle and in use together (the least recently
used idle one is closed to make room), so scraping has a known share of the process's file
descriptors and never competes with inbound HTTP connections for them (cwkernel/fdbudget.py
sizes both). A fetch that fails because this process lacks a resource (descriptors, socket
buffers, local ports) raises ``LocalResourceError``: the target is not at fault and must not be
recorded as down.

A fetch ends by its deadline, as a Prometheus scrape ends by its context: a socket's timeout
bounds one read, so ``Deadlines`` shuts down the socket of a fetch still running at its deadline
(a target dripping its answer a byte at a time would otherwise hold a scrape worker for as long
as it drips). A page over ``max_bytes`` is refused before more of it is read.
"""
from __future__ import annotations

import errno
import http.client
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from urllib.parse import urlsplit

from cwkernel.deadlines import Deadlines

# errno -> the reason label of clusterwatch_scrape_skipped_total.
LOCAL_ERRNOS = {
    errno.EMFILE: "fd_exhausted", errno.ENFILE: "fd_exhausted", errno.ENOBUFS: "no_buffer_space",
    errno.ENOMEM: "no_memory", errno.EADDRNOTAVAIL: "no_local_port",
}
_STALE_KEEPALIVE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError,
                    http.client.CannotSendRequest)


READ_CHUNK = 1 << 16
BODY_TOO_LARGE = "body size limit exceeded"  # Prometheus's words for its body_size_limit


class FetchError(Exception):
    """The page could not be fetched; the message says why, Prometheus-style."""


class LocalResourceError(FetchError):
    """This process, not the target, lacked a resource; ``reason`` is a short code."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass
class Page:
    status: int
    reason: str
    content_type: str
    text: str


Key = tuple[str, str]


class BodyTooLarge(Exception):
    pass


def read_body(response: http.client.HTTPResponse, max_bytes: int) -> bytes:
    """The whole body, or ``BodyTooLarge`` as soon as it is known to pass ``max_bytes`` (0: no limit)."""
    if not max_bytes or (response.length is not None and response.length <= max_bytes):
        return response.read()
    if response.length is not None:
        raise BodyTooLarge()
    chunks, size = [], 0
    while chunk := response.read(READ_CHUNK):
        size += len(chunk)
        if size > max_bytes:
            raise BodyTooLarge()
        chunks.append(chunk)
    return b"".join(chunks)


class Fetcher:
    def __init__(self, accept: str, max_connections: int = 1024) -> None:
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        self.accept = accept
        self.max_connections = max_connections
        self._lock = threading.Lock()
        self._idle: dict[Key, list[http.client.HTTPConnection]] = {}
        self._idle_order: OrderedDict[int, Key] = OrderedDict()  # id(conn), least recently used first
        self._open = 0  # sockets (or connections about to open one) held by this pool
        self._deadlines = Deadlines("fetch-deadlines")

    @property
    def open_connections(self) -> int:
        with self._lock:
            return self._open

    def get(self, url: str, timeout: float, max_bytes: int = 0) -> Page:
        """The page at ``url`` within ``timeout`` seconds in all, of at most ``max_bytes`` (0: any)."""
        parts = urlsplit(url)
        key = (parts.scheme, parts.netloc)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        deadline = time.monotonic() + timeout
        for attempt in (0, 1):
            conn = self._take(key, max(deadline - time.monotonic(), 0.001))
            self._deadlines.watch(conn, deadline)
            try:
                conn.request("GET", path or "/", headers={"Accept": self.accept})
                response = conn.getresponse()
                body = read_body(response, max_bytes)
            except (BodyTooLarge, http.client.HTTPException, OSError) as exc:
                expired = self._deadlines.release(conn)
                self._discard(conn)
                if isinstance(exc, BodyTooLarge):
                    raise FetchError(f"{BODY_TOO_LARGE} ({max_bytes:,} bytes)") from None
                if expired or isinstance(exc, TimeoutError):  # socket.timeout is TimeoutError
                    raise FetchError(f'Get "{url}": context deadline exceeded') from None
                local = LOCAL_ERRNOS.get(getattr(exc, "errno", None) or 0)
                if local:
                    raise LocalResourceError(f'Get "{url}": {exc}', local) from None
                # A kept-alive connection the server closed fails on first use: retry once, fresh.
                if attempt == 0 and isinstance(exc, _STALE_KEEPALIVE):
                    continue
                raise FetchError(f'Get "{url}": {exc}') from None
            if self._deadlines.release(conn):  # the page arrived whole as its deadline passed
                self._discard(conn)
                raise FetchError(f'Get "{url}": context deadline exceeded')
            self._give_back(key, conn)
            return Page(response.status, response.reason, response.getheader("Content-Type", ""),
                        body.decode("utf-8", errors="replace"))
        raise FetchError(f'Get "{url}": connection closed')

    def close(self) -> None:
        self._deadlines.close()
        with self._lock:
            idle = [conn for conns in self._idle.values() for conn in conns]
            self._idle.clear()
            self._idle_order.clear()
            self._open -= len(idle)
        for conn in idle:
            conn.close()

    def _take(self, key: Key, timeout: float) -> http.client.HTTPConnection:
        """An idle connection to ``key`` or a new (not yet connected) one, within the budget."""
        evicted = None
        with self._lock:
            idle = self._idle.get(key)
            if idle:
                conn = idle.pop()
                del self._idle_order[id(conn)]
            else:
                if self._open >= self.max_connections and self._idle_order:
                    evicted = self._pop_idle(*self._idle_order.popitem(last=False))
                    self._open -= 1
                self._open += 1
                cls = http.client.HTTPSConnection if key[0] == "https" else http.client.HTTPConnection
                conn = cls(key[1], timeout=timeout)
        if evicted is not None:
            evicted.close()
        conn.timeout = timeout
        if conn.sock is not None:
            conn.sock.settimeout(timeout)
        return conn

    def _give_back(self, key: Key, conn: http.client.HTTPConnection) -> None:
        if conn.sock is None:  # the server asked to close (HTTP/1.0, Connection: close)
            self._discard(conn)
            return
        with self._lock:
            self._idle.setdefault(key, []).append(conn)
            self._idle_order[id(conn)] = key

    def _pop_idle(self, ident: int, key: Key) -> http.client.HTTPConnection:
        conns = self._idle[key]
        conn = next(c for c in conns if id(c) == ident)
        conns.remove(conn)
        if not conns:
            del self._idle[key]
        return conn

    def _discard(self, conn: http.client.HTTPConnection) -> None:
        conn.close()
        with self._lock:
            self._open -= 1
