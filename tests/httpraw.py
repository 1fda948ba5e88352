"""Raw HTTP/1.1 over a socket, for tests that must send what an HTTP client library will not:
headers without their body, half a request line, a chunked body of a chosen size."""
from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self):
        return json.loads(self.body)


def connect(port: int, timeout: float = 30.0) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=timeout)


def request_head(method: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def read_response(sock: socket.socket, deadline_s: float = 30.0) -> RawResponse:
    """One response (Content-Length framed, or until the server closes); fails past the deadline."""
    sock.settimeout(deadline_s)
    data = b""
    deadline = time.monotonic() + deadline_s
    while b"\r\n\r\n" not in data:
        if time.monotonic() > deadline:
            raise TimeoutError("no response headers in time")
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before a response: {data[:200]!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "-1"))
    while (length < 0 or len(body) < length) and time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, socket.timeout):
            break
        if not chunk:
            break
        body += chunk
    return RawResponse(int(status_line.split()[1]), headers, body[:length] if length >= 0 else body)


def send_chunked(sock: socket.socket, total: int, chunk: bytes = b"x" * 65536) -> int:
    """Send up to ``total`` bytes as chunks, stopping quietly when the server stops reading or
    closes; the bytes sent."""
    sent = 0
    try:
        while sent < total:
            piece = chunk[: total - sent]
            sock.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            sent += len(piece)
        sock.sendall(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError, socket.timeout):
        pass
    return sent
