"""For tests of what a client does against a server that misbehaves on the wire (drips, never
ends, answers half): ``raw_server`` answers every connection with a function over the raw
socket, and ``outcome_in_a_thread`` runs the client call so that a client with no bound fails the
test instead of hanging the suite."""
from __future__ import annotations

import socket
import threading
from contextlib import contextmanager
from typing import Callable, Iterator

Answer = Callable[[socket.socket, threading.Event], None]


@contextmanager
def raw_server(answer: Answer) -> Iterator[str]:
    """``HOST:PORT`` of a server on 127.0.0.1 that reads each request and calls ``answer(conn,
    stop)``; ``stop`` is set (and the listener closed) when the block ends."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    def handle(conn: socket.socket) -> None:
        with conn:
            try:
                conn.recv(65536)
                answer(conn, stop)
            except OSError:
                pass

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield f"127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        # Closing a socket does not wake a thread blocked in accept() on it (Linux): shutting it
        # down does, so the serving thread ends with the block instead of outliving the test.
        try:
            listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        listener.close()


def drip_headers(conn: socket.socket, stop: threading.Event) -> None:
    """An answer whose status line comes, then a header line that never ends, a byte every 0.1 s."""
    conn.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
    while not stop.wait(0.1):
        conn.sendall(b"a")


def drip_body(conn: socket.socket, stop: threading.Event) -> None:
    """A JSON answer whose headers come whole and whose chunked body then comes a byte every 0.1 s."""
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n{\r\n")
    while not stop.wait(0.1):
        conn.sendall(b"1\r\n \r\n")


def endless_body(conn: socket.socket, stop: threading.Event) -> None:
    """A JSON answer whose chunked body never ends: 64 KiB chunks for as long as the client reads."""
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n{\r\n")
    chunk = b"%x\r\n%s\r\n" % (65536, b" " * 65536)
    while not stop.is_set():
        conn.sendall(chunk)


def outcome_in_a_thread(call: Callable[[], object], join_s: float = 60.0) -> list:
    """``[what call returned or raised]``, or ``[]`` when it had not come back after ``join_s``
    (a limit that only a call with no bound of its own reaches)."""
    outcome: list = []

    def run() -> None:
        try:
            outcome.append(call())
        except Exception as exc:  # noqa: BLE001 - the test looks at what it was
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout=join_s)
    return outcome
