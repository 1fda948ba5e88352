"""/api/v1 form bodies are read only up to their limit, whatever sits in front of the router
(issue 14, finding 7: a 20 MB form took the server to 3.7 GB)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.httpraw import connect, read_response, request_head, send_chunked
from tests.realcomponents import free_port, wait_http

pytestmark = pytest.mark.real_component

ROOT = Path(__file__).resolve().parents[2]
# The Prometheus API router alone, with no body-limit middleware in front of it.
SERVER = """
import sys, uvicorn
from fastapi import FastAPI
from tsdb.api import build_router
from tsdb.promql.engine import Engine
from tsdb.store import Store
store = Store()
app = FastAPI()
app.include_router(build_router(Engine(store), store))
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
TOO_LARGE = {"status": "error", "errorType": "bad_data", "error": "request body too large: the form is over 1 MiB"}


@pytest.fixture
def api(process_factory) -> tuple[int, int]:
    """(port, pid) of the server."""
    port = free_port()
    server = process_factory([sys.executable, "-c", SERVER, str(port)], name="api", cwd=ROOT)
    wait_http(f"http://127.0.0.1:{port}/api/v1/status/buildinfo", timeout=60, proc=server)
    return port, server.pid


def _peak_rss_mb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) // 1024


def test_declared_oversize_form_is_refused_before_it_is_sent(api: tuple[int, int]) -> None:
    with connect(api[0]) as sock:
        sock.sendall(request_head("POST", "/api/v1/query", {**FORM, "Content-Length": str(20 << 20)}))
        response = read_response(sock)  # nothing of the body was sent: the answer cannot wait for it
    assert response.status == 413 and response.json() == TOO_LARGE


def test_streamed_oversize_form_is_cut_at_the_limit(api: tuple[int, int]) -> None:
    port, pid = api
    with connect(port) as sock:
        sock.sendall(request_head("POST", "/api/v1/query", {**FORM, "Transfer-Encoding": "chunked"}))
        sock.sendall(b"e\r\ntime=60&query=\r\n")  # a chunk of its own, then 20 MB of query
        send_chunked(sock, 20 << 20, b"1" * 65536)
        response = read_response(sock)
    assert response.status == 413 and response.json() == TOO_LARGE
    assert _peak_rss_mb(pid) < 300


def test_a_long_query_within_the_limit_is_answered(api: tuple[int, int]) -> None:
    alternation = "|".join(f"node-{i:05d}" for i in range(16_384))  # 180 KB: a dashboard variable of every node
    body = f'query=count(up{{instance=~"{alternation}"}})&time=60'.encode()
    with connect(api[0]) as sock:
        sock.sendall(request_head("POST", "/api/v1/query", {**FORM, "Content-Length": str(len(body))}) + body)
        response = read_response(sock)
    assert response.status == 200 and response.json()["data"] == {"resultType": "vector", "result": []}
