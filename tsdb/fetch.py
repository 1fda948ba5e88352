"""HTTP GET of scrape pages over persistent connections, one per (worker thread, host).

http.client rather than httpx: a scrape is one plain GET, and at 140 targets every 5 s httpx's
per-request overhead alone cost about 3% of a core (measured by bench/bench_tsdb.py).
"""
from __future__ import annotations

import http.client
import socket
import threading
from dataclasses import dataclass
from urllib.parse import urlsplit


class FetchError(Exception):
    """The page could not be fetched; the message says why, Prometheus-style."""


@dataclass
class Page:
    status: int
    reason: str
    content_type: str
    text: str


class Fetcher:
    def __init__(self, accept: str) -> None:
        self.accept = accept
        self._local = threading.local()

    def get(self, url: str, timeout: float) -> Page:
        parts = urlsplit(url)
        key = (parts.scheme, parts.netloc)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        for attempt in (0, 1):
            conn = self._connection(key, timeout)
            try:
                conn.request("GET", path or "/", headers={"Accept": self.accept})
                response = conn.getresponse()
                body = response.read()
                return Page(response.status, response.reason, response.getheader("Content-Type", ""),
                            body.decode("utf-8", errors="replace"))
            except (socket.timeout, TimeoutError):
                self._drop(key)
                raise FetchError(f'Get "{url}": context deadline exceeded') from None
            except (http.client.HTTPException, OSError) as exc:
                self._drop(key)
                # A kept-alive connection the server closed fails on first use: retry once, fresh.
                if attempt == 0 and isinstance(exc, (http.client.RemoteDisconnected, ConnectionResetError,
                                                     BrokenPipeError, http.client.CannotSendRequest)):
                    continue
                raise FetchError(f'Get "{url}": {exc}') from None
        raise FetchError(f'Get "{url}": connection closed')

    def _connection(self, key: tuple[str, str], timeout: float) -> http.client.HTTPConnection:
        pool = self._local.__dict__.setdefault("pool", {})
        conn = pool.get(key)
        if conn is None:
            cls = http.client.HTTPSConnection if key[0] == "https" else http.client.HTTPConnection
            conn = pool[key] = cls(key[1], timeout=timeout)
        conn.timeout = timeout
        if conn.sock is not None:
            conn.sock.settimeout(timeout)
        return conn

    def _drop(self, key: tuple[str, str]) -> None:
        conn = self._local.__dict__.get("pool", {}).pop(key, None)
        if conn is not None:
            conn.close()
