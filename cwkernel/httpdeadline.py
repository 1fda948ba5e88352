"""Outbound HTTP requests that end by a deadline for the whole exchange.

httpx's ``timeout`` bounds each phase and each read, so a peer that sends its answer (headers
included) a byte at a time holds the request for as long as it keeps sending: a notification
receiver's delivery worker, the scheduler adapter's poll, a drain. Requests made with
``deadline(seconds)``'s extensions, by a client from ``client()``, end at the deadline instead:
``Deadlines`` (cwkernel/deadlines.py) shuts the request's socket down, which wakes any read
blocked on it, and the request raises ``DeadlineExceeded``, an ``httpx.TimeoutException``.

The socket is taken from httpcore's connection trace, which reports each new connection. A kept-
alive connection was opened by an earlier request and is not reported, so ``client()`` keeps none:
every request opens its own (the peers here are notified, polled or queried a few times a second
at most, so a connection each costs a local connect, not a round of any consequence).

An answer's size is the reader's to bound: ``read_capped`` reads a streamed answer up to a cap
and stops there, before the rest is read.
"""
from __future__ import annotations

import socket
import time
from contextlib import contextmanager
from typing import Any, Iterator

import httpx

from cwkernel.deadlines import Deadlines

_WATCHED = Deadlines("http-deadlines")


class DeadlineExceeded(httpx.TimeoutException):
    """The whole exchange took longer than its deadline."""


class AnswerTooLarge(Exception):
    """The answer is longer than the reader's cap; nothing past the cap was read."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(f"answer over {max_bytes:,} bytes")
        self.max_bytes = max_bytes


class _Exchange:
    __slots__ = ("sock",)

    def __init__(self) -> None:
        self.sock: socket.socket | None = None


def client(**kwargs: Any) -> httpx.Client:
    """An httpx client whose requests ``deadline`` can bound: it keeps no connection alive."""
    return httpx.Client(limits=httpx.Limits(max_keepalive_connections=0), **kwargs)


@contextmanager
def deadline(seconds: float) -> Iterator[dict[str, Any]]:
    """The request ``extensions`` that bound one request, its answer's body included, to
    ``seconds`` from now; inside the block an exchange past it raises ``DeadlineExceeded``."""
    exchange = _Exchange()

    def trace(event: str, info: dict[str, Any]) -> None:
        if event == "connection.connect_tcp.complete":
            exchange.sock = info["return_value"].get_extra_info("socket")

    _WATCHED.watch(exchange, time.monotonic() + seconds)
    try:
        yield {"trace": trace}
    except httpx.TransportError as exc:
        if _WATCHED.release(exchange):
            raise DeadlineExceeded(f"no answer within {seconds:.1f}s") from exc
        raise
    finally:
        _WATCHED.release(exchange)


def read_capped(response: httpx.Response, max_bytes: int) -> bytes:
    """The body of a streamed ``response``, or ``AnswerTooLarge`` once it is known to pass
    ``max_bytes``: at once from a declared Content-Length, else as soon as the bytes read pass it."""
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise AnswerTooLarge(max_bytes)
    chunks, size = [], 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > max_bytes:
            raise AnswerTooLarge(max_bytes)
        chunks.append(chunk)
    return b"".join(chunks)
