"""gzip for answers the client accepts it for: the dashboard's pages and JSON, the Prometheus API,
the rules API.

Answers here are repetitive JSON (a label set per series, a number per step) that gzip shrinks
about tenfold: a Grafana panel over a thousand GPUs is megabytes, and Prometheus compresses its
API answers too. Compressing is work (level 1: about 10 ms a MB), so past 16 KB it never runs on the event
loop: ``gzipped`` hands it to a worker thread (zlib lets go of the interpreter lock meanwhile),
a streamed answer in batches; ``gzip_body`` is for code already on a worker thread.
"""
from __future__ import annotations

import gzip
import zlib
from typing import AsyncIterator

import anyio
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

MIN_SIZE = 1024  # below a packet's worth, compressing costs more than it saves
LEVEL = 5  # gzip's speed/size knee for JSON: level 9 is several times slower for ~3% less
# Above this size level 1: on a 512-GPU job page (820 KB of JSON) it takes 7 ms instead of 35 ms
# for a body 15% larger (249 KB instead of 217 KB), which the server time needs more than the wire.
FAST_ABOVE = 512 * 1024
FAST_LEVEL = 1
# Up to this size the compressing is done where the answer is (about 0.1 ms for 16 KB at level 5):
# handing it to a thread and back costs more. Past it, on a worker thread.
INLINE_BELOW = 16 * 1024


def accepts_gzip(request: Request) -> bool:
    for part in request.headers.get("accept-encoding", "").split(","):
        coding, _, params = part.strip().partition(";")
        if coding.strip().lower() in ("gzip", "*") and params.replace(" ", "") not in ("q=0", "q=0.0"):
            return True
    return False


def gzip_body(body: bytes) -> bytes:
    """``body`` gzipped at the level its size calls for (on the calling thread)."""
    return gzip.compress(body, FAST_LEVEL if len(body) > FAST_ABOVE else LEVEL)


def mark_gzipped(response: Response, length: int | None) -> None:
    response.headers["content-encoding"] = "gzip"
    response.headers["vary"] = "Accept-Encoding"
    if length is None:
        if "content-length" in response.headers:
            del response.headers["content-length"]
    else:
        response.headers["content-length"] = str(length)


async def gzipped(request: Request, response: Response) -> Response:
    """``response`` gzipped when the client accepts it and it is worth it, on a worker thread."""
    if not accepts_gzip(request) or "content-encoding" in response.headers:
        return response
    if isinstance(response, StreamingResponse):
        response.body_iterator = _gzip_stream(response.body_iterator)
        mark_gzipped(response, None)
        return response
    body = getattr(response, "body", None)  # file responses have none
    if not isinstance(body, bytes) or len(body) < MIN_SIZE:
        return response
    if len(body) <= INLINE_BELOW:
        response.body = gzip_body(body)  # well under a millisecond: less than the hand-over to a thread
    else:
        response.body = await anyio.to_thread.run_sync(gzip_body, body)
    mark_gzipped(response, len(response.body))
    return response


# A streamed answer comes in many small pieces (a series each): they are compressed this many
# bytes at a time, since each hand-over to a worker thread costs about as much as compressing
# a few kilobytes.
STREAM_BATCH = 256 * 1024


async def _gzip_stream(pieces: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    packer = zlib.compressobj(FAST_LEVEL, zlib.DEFLATED, 31)  # 31: the gzip container
    batch: list[bytes] = []
    size = 0
    async for piece in pieces:
        batch.append(piece if isinstance(piece, bytes) else piece.encode())
        size += len(batch[-1])
        if size >= STREAM_BATCH:
            packed = await anyio.to_thread.run_sync(packer.compress, b"".join(batch))
            batch, size = [], 0
            if packed:
                yield packed
    rest = b"".join(batch)
    yield await anyio.to_thread.run_sync(lambda: packer.compress(rest) + packer.flush())
