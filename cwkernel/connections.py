"""The inbound connection guard: a cap on open connections and deadlines for reading requests.

uvicorn (h11) arms no timer until a first response has been sent, and its keep-alive timer stops
at the first byte of the next request, so a client that connects and sends half a request line
holds a connection, and a file descriptor, for ever. 1,100 of them took every descriptor of the
process: the health check died and the scraper could not open sockets. The guard:

- **caps open connections** at ``max_connections`` (below the descriptor limit, see
  cwkernel/fdbudget.py). At the cap a new connection displaces the connection that has waited
  longest for a request's headers (idle keep-alive or half-sent: it has nothing in progress), so a
  flood of idle connections cannot lock out a health check; when every connection has a request
  in progress, the new one gets a 503 and is closed;
- gives each request **``header_timeout``** to deliver its request line and headers (counted from
  the connection's opening or the end of the previous response) and **``body_timeout``** for its
  body once the headers are in. Past either the connection is closed (with a 408 when part of a
  request had arrived).

Counted in ``clusterwatch_http_connections_closed_total{reason}``; connections displaced or
refused at the cap within the last minute are a health problem of the ``http`` component.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from typing import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

log = logging.getLogger(__name__)

HEADER_TIMEOUT = "header_timeout"
BODY_TIMEOUT = "body_timeout"
DISPLACED = "displaced_at_cap"
REFUSED = "refused_at_cap"
CAP_REPORT_S = 60.0


def _closing_response(status: str, text: str) -> bytes:
    """A whole HTTP/1.1 response, written straight to a connection that is being closed."""
    body = text.encode() + b"\n"
    return (f"HTTP/1.1 {status}\r\ncontent-type: text/plain; charset=utf-8\r\nconnection: close\r\n"
            f"content-length: {len(body)}\r\n\r\n").encode() + body


_REFUSED_RESPONSE = _closing_response("503 Service Unavailable", "too many open connections, try again later")
_TIMEOUT_RESPONSE = _closing_response("408 Request Timeout", "the request was not sent in time")


class ConnectionGuard:
    """Shared state of every guarded connection: serve's, on its event loop, and the node
    exporter's, from its accept and handler threads (the bookkeeping holds a lock).

    A connection is any object with an ``admitted`` flag (set from ``admit``'s answer),
    ``displace()`` (close it now) and ``request_pending()``: whether a whole request already waits
    in its buffer unread (a threaded server reads a connection only once its thread runs; such a
    connection is busy, not idle, and is never displaced)."""

    def __init__(self, max_connections: int = 4096, header_timeout: float = 10.0, body_timeout: float = 60.0) -> None:
        self.max_connections = max_connections
        self.header_timeout = header_timeout
        self.body_timeout = body_timeout
        self.open = 0
        self._waiting: dict = {}  # connections waiting for a request's headers, oldest first
        self._closed: Counter[str] = Counter()
        self._last_cap_event = 0.0
        self._lock = threading.RLock()

    # ---- on the event loop, or the threads of a threaded server ---------------------------
    def admit(self, connection) -> bool:
        """Whether ``connection`` may stay open; at the cap the longest-waiting idle one makes room."""
        with self._lock:
            if self.open >= self.max_connections:
                victim = next((c for c in self._waiting if not c.request_pending()), None)
                if victim is None:
                    self._count(REFUSED, cap=True)
                    return False
                self.release(victim)
                victim.displace()
                self._count(DISPLACED, cap=True)
            self.open += 1
            return True

    def release(self, connection) -> None:
        """``connection`` no longer counts (closed, or being closed)."""
        with self._lock:
            if connection.admitted:
                connection.admitted = False
                self.open -= 1
                self._waiting.pop(connection, None)

    def set_waiting(self, connection, waiting: bool) -> None:
        """Whether ``connection`` waits for a request (the longest waiting is displaced first)."""
        with self._lock:
            if not connection.admitted:
                return
            if waiting:
                self._waiting.setdefault(connection, None)
            else:
                self._waiting.pop(connection, None)

    def timed_out(self, reason: str) -> None:
        self._count(reason)

    def _count(self, reason: str, cap: bool = False) -> None:
        with self._lock:
            self._closed[reason] += 1
            if cap:
                self._last_cap_event = time.time()
        if cap:
            log.warning("connection %s: %d connections open, the cap is %d", reason.replace("_", " "),
                        self.open, self.max_connections)

    # ---- from any thread ---------------------------------------------------------------
    def closed(self) -> dict[str, int]:
        with self._lock:
            return dict(self._closed)

    def problems(self) -> dict[str, str]:
        with self._lock:
            recent = time.time() - self._last_cap_event < CAP_REPORT_S
            displaced, refused = self._closed[DISPLACED], self._closed[REFUSED]
        if not recent:
            return {}
        return {"connection_cap_reached": f"the cap of {self.max_connections} open connections was reached in the "
                                          f"last minute ({displaced} idle connections closed to make room, "
                                          f"{refused} refused in all): a flood of clients or of idle connections?"}

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("clusterwatch_http_connections", "Inbound HTTP connections open now.", self.open)
        yield GaugeMetricFamily("clusterwatch_http_connections_limit",
                                "Most inbound HTTP connections open at once (--http-max-connections, lowered "
                                "to fit the file descriptor limit).", self.max_connections)
        closed = CounterMetricFamily("clusterwatch_http_connections_closed",
                                     "Inbound connections the server closed: request headers or body not sent in "
                                     "time, or displaced/refused at the connection cap.", labels=["reason"])
        counts = self.closed()
        for reason in (HEADER_TIMEOUT, BODY_TIMEOUT, DISPLACED, REFUSED):
            closed.add_metric([reason], counts.get(reason, 0))
        yield closed

def guarded_protocol(guard: ConnectionGuard) -> type:
    """uvicorn's h11 protocol class, bound to ``guard`` (pass it as ``uvicorn.Config(http=...)``)."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class GuardedH11Protocol(H11Protocol):
        admitted = False
        _phase: str | None = None
        _deadline = None

        def connection_made(self, transport) -> None:  # type: ignore[override]
            self.admitted = guard.admit(self)
            if not self.admitted:
                transport.write(_REFUSED_RESPONSE)
                transport.close()
                return
            super().connection_made(transport)
            self._watch()

        def connection_lost(self, exc: Exception | None) -> None:
            self._set_phase(None)
            if self.transport is None:  # refused in connection_made: uvicorn never saw it
                return
            guard.release(self)
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            if self.transport is None:  # refused: its bytes are not read
                return
            super().data_received(data)
            self._watch()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._watch()

        def displace(self) -> None:
            self._set_phase(None)
            self.transport.abort()

        def request_pending(self) -> bool:
            return False  # the event loop reads what arrives at once: a waiting one holds nothing

        def _watch(self) -> None:
            """Arm the deadline of what is awaited from the client: headers, then the body."""
            if self.transport.is_closing():
                phase = None
            elif self.conn.their_state is h11.IDLE:
                phase = HEADER_TIMEOUT
            elif self.conn.their_state is h11.SEND_BODY:
                phase = BODY_TIMEOUT
            else:
                phase = None
            if phase != self._phase:
                self._set_phase(phase)

        def _set_phase(self, phase: str | None) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None
            self._phase = phase
            guard.set_waiting(self, phase == HEADER_TIMEOUT)
            if phase is not None:
                seconds = guard.header_timeout if phase == HEADER_TIMEOUT else guard.body_timeout
                self._deadline = self.loop.call_later(seconds, self._expire, phase)

        def _expire(self, phase: str) -> None:
            self._deadline = None
            guard.timed_out(phase)
            if phase == HEADER_TIMEOUT and self.conn.trailing_data[0]:
                self.transport.write(_TIMEOUT_RESPONSE)  # part of a request arrived: say why
            guard.release(self)
            self._set_phase(None)
            self.transport.close()

    return GuardedH11Protocol
