"""Half-sent HTTP requests held open against a server (issue 14, finding 6): what
bench_idle_connections.py floods `serve` with, and tests/test_connection_flood.py too."""
from __future__ import annotations

import socket
import threading
import time

HALF_REQUEST = b"GET /api/overview HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Never-Finished: "


class HalfOpenFlood:
    """``count`` connections each holding half a request; those the server closes are reopened
    until ``stop()`` (or a hard deadline: the loop is bounded in time)."""

    def __init__(self, port: int, count: int, max_seconds: float = 120.0) -> None:
        self.port = port
        self.count = count
        self.deadline = time.monotonic() + max_seconds
        self.opened = 0
        self._stop = threading.Event()
        self._socks: list[socket.socket | None] = [None] * count
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "HalfOpenFlood":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(30)
        for sock in self._socks:
            if sock is not None:
                sock.close()

    def _open(self) -> socket.socket | None:
        try:
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=2)
            sock.sendall(HALF_REQUEST)
            self.opened += 1
            return sock
        except OSError:
            return None

    @staticmethod
    def _closed_by_server(sock: socket.socket) -> bool:
        # Anything to read (a 408 or 503, or the end of the stream) means the server let it go.
        try:
            sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except BlockingIOError:
            return False
        except OSError:
            return True
        return True

    def _run(self) -> None:
        while not self._stop.is_set() and time.monotonic() < self.deadline:
            for i, sock in enumerate(self._socks):
                if self._stop.is_set():
                    return
                if sock is None or self._closed_by_server(sock):
                    if sock is not None:
                        sock.close()
                    self._socks[i] = self._open()
            self._stop.wait(0.2)
