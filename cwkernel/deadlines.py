"""Whole-exchange deadlines for blocking network clients: one thread shuts down the socket of any
exchange still running past its deadline.

A socket's timeout bounds one read, so a peer sending a byte at a time holds a blocking client
for as long as it keeps sending. Shutting the socket down wakes the read blocked on it at once;
the client then finds its exchange expired (``release``) and says so. The scraper's fetches
(tsdb/fetch.py) and the outbound HTTP clients (cwkernel/httpdeadline.py) use it.
"""
from __future__ import annotations

import math
import socket
import threading
import time
from typing import Protocol

EXPIRED_RECHECK_S = 0.1  # an expired exchange still connecting has no socket to shut down yet


class Exchange(Protocol):
    """What is watched: anything with the socket it is blocked on, once it has one."""

    sock: socket.socket | None


class Deadlines:
    """Exchanges in flight and their deadlines."""

    def __init__(self, name: str = "deadlines") -> None:
        self._name = name
        self._changed = threading.Condition()
        self._running: dict[int, tuple[Exchange, float]] = {}
        self._expired: set[int] = set()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._wake_at = math.inf  # when the thread next looks; a later deadline need not wake it

    def watch(self, exchange: Exchange, deadline: float) -> None:
        with self._changed:
            self._running[id(exchange)] = (exchange, deadline)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
                self._thread.start()
            if deadline < self._wake_at:
                self._changed.notify()

    def release(self, exchange: Exchange) -> bool:
        """Stops watching ``exchange``; True when its deadline had passed (its socket is shut)."""
        with self._changed:
            self._running.pop(id(exchange), None)
            if id(exchange) in self._expired:
                self._expired.discard(id(exchange))
                return True
            return False

    def close(self) -> None:
        with self._changed:
            self._closed = True
            self._changed.notify()

    def _loop(self) -> None:
        with self._changed:
            while not self._closed:
                now = time.monotonic()
                for ident, (exchange, deadline) in self._running.items():
                    if deadline <= now:
                        self._expired.add(ident)
                        _shut(exchange)  # again on each pass: a connect still under way has no socket yet
                waiting = [deadline for ident, (_, deadline) in self._running.items() if ident not in self._expired]
                pause = min(waiting) - now if waiting else None
                if self._expired & self._running.keys():
                    pause = EXPIRED_RECHECK_S if pause is None else min(pause, EXPIRED_RECHECK_S)
                self._wake_at = math.inf if pause is None else now + pause
                self._changed.wait(pause)


def _shut(exchange: Exchange) -> None:
    sock = exchange.sock
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
