"""Bounded requests on a real ``clusterwatch serve`` (issue 14, findings 7 and 14): operator
credentials are checked from the headers before any byte of a body is read, bodies past their
route's limit get a 413 whether their length is declared or streamed, every answer carries the
security headers, Swagger UI's CDN page is gone, and a malformed CLUSTERWATCH_OPERATORS stops
the server at start."""
from __future__ import annotations

import os
import subprocess
import sys
import threading

import httpx
import pytest

from cwkernel import httplimits
from tests import httpraw
from tests.realcomponents import ManagedProcess, free_port, wait_http

TOKEN = "limits-test-secret"
OPERATOR = {"Authorization": f"Bearer {TOKEN}"}
HUGE = 400 * 1024 * 1024


@pytest.fixture(scope="module")
def serve(tmp_path_factory):
    logs = tmp_path_factory.mktemp("serve-limits")
    port = free_port()
    proc = ManagedProcess([sys.executable, "-m", "clusterwatch", "serve", "--listen", f"127.0.0.1:{port}",
                           "--scrape-interval", "5s"], logs / "serve.log",
                          env={"CLUSTERWATCH_OPERATORS": f"alice:{TOKEN}"})
    try:
        wait_http(f"http://127.0.0.1:{port}/-/ready", timeout=60, proc=proc)
        yield port
    finally:
        proc.stop()


def ask_with_headers_only(port: int, method: str, path: str, headers: dict[str, str]) -> httpraw.RawResponse:
    """Send a request's headers and none of its body: only a server that answers without
    reading the body can reply."""
    with httpraw.connect(port) as sock:
        sock.sendall(httpraw.request_head(method, path, headers))
        return httpraw.read_response(sock)


def ask_chunked(port: int, path: str, headers: dict[str, str], size: int) -> httpraw.RawResponse:
    with httpraw.connect(port) as sock:
        sock.sendall(httpraw.request_head("POST", path, {**headers, "Transfer-Encoding": "chunked"}))
        sender = threading.Thread(target=httpraw.send_chunked, args=(sock, size), daemon=True)
        sender.start()
        response = httpraw.read_response(sock)
        sender.join(30)
        return response


@pytest.mark.real_component
@pytest.mark.parametrize("path", ["/api/nodes/gpu-001/drain", "/api/silences", "/api/alerts/abc/ack"])
def test_unauthenticated_body_is_refused_before_it_is_read(serve: int, path: str) -> None:
    headers = {"Content-Type": "application/json", "Content-Length": str(HUGE)}
    refused = ask_with_headers_only(serve, "POST", path, headers)
    assert refused.status == 401 and "credentials required" in refused.json()["detail"]
    wrong = ask_with_headers_only(serve, "POST", path, {**headers, "Authorization": "Bearer guess"})
    assert wrong.status == 403 and wrong.headers["connection"] == "close"


@pytest.mark.real_component
def test_declared_length_over_the_limit_is_413_before_the_body(serve: int) -> None:
    drain = ask_with_headers_only(serve, "POST", "/api/nodes/gpu-001/drain",
                                  {**OPERATOR, "Content-Type": "application/json", "Content-Length": str(HUGE)})
    assert drain.status == 413 and f"{httplimits.OPERATOR_BODY} bytes" in drain.json()["detail"]
    form = ask_with_headers_only(serve, "POST", "/api/v1/query",
                                 {"Content-Type": "application/x-www-form-urlencoded", "Content-Length": str(HUGE)})
    assert form.status == 413
    assert form.json()["status"] == "error" and form.json()["errorType"] == "bad_data"


@pytest.mark.real_component
def test_streamed_body_past_the_limit_is_413(serve: int) -> None:
    silence = ask_chunked(serve, "/api/silences", {**OPERATOR, "Content-Type": "application/json"},
                          4 * httplimits.OPERATOR_BODY)
    assert silence.status == 413 and "limit of operator actions" in silence.json()["detail"]
    form = ask_chunked(serve, "/api/v1/query", {"Content-Type": "application/x-www-form-urlencoded"},
                       2 * httplimits.DEFAULT_BODY)
    assert form.status == 413 and form.json()["errorType"] == "bad_data"


@pytest.mark.real_component
def test_requests_within_the_limits_still_work(serve: int) -> None:
    base = f"http://127.0.0.1:{serve}"
    drain = httpx.post(f"{base}/api/nodes/gpu-001/drain", json={"reason": "test"}, headers=OPERATOR)
    assert drain.status_code == 503 and "no scheduler" in drain.json()["detail"]  # past auth and limits
    query = httpx.post(f"{base}/api/v1/query", data={"query": "1+1"})
    assert query.status_code == 200 and query.json()["data"]["result"][1] == "2"
    # The Alertmanager webhook keeps its own, larger limit (alerts/receiver.py).
    webhook = httpx.post(f"{base}/api/v1/alertmanager/webhook", content=b"{" + b" " * (2 * httplimits.MIB) + b"}",
                         headers={"Content-Type": "application/json"})
    assert webhook.status_code in (401, 403)


def test_the_webhook_keeps_the_receivers_own_limit() -> None:
    from alerts import receiver
    from clusterwatch.cli import build_parser
    from clusterwatch.commands import serve as serve_command
    from cwkernel.routes import served_routes
    from cwkernel.server import build_app

    _, config, values = serve_command.load_config(build_parser().parse_args(["serve"]), environ={})
    app = build_app(serve_command.build_components(values, config))
    webhook = next(route for route in served_routes(app) if route.path == receiver.PATH)
    assert httplimits.policy_of(webhook).limit == receiver.MAX_BODY > httplimits.DEFAULT_BODY


@pytest.mark.real_component
@pytest.mark.parametrize("path", ["/", "/api/overview", "/static/app.js", "/api/v1/query?query=up", "/nope"])
def test_every_answer_carries_the_security_headers(serve: int, path: str) -> None:
    answer = httpx.get(f"http://127.0.0.1:{serve}{path}")
    assert "script-src 'self';" in answer.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
    assert answer.headers["x-frame-options"] == "DENY"
    assert answer.headers["x-content-type-options"] == "nosniff"


@pytest.mark.real_component
def test_no_page_loads_swagger_from_a_cdn(serve: int) -> None:
    base = f"http://127.0.0.1:{serve}"
    assert httpx.get(f"{base}/docs").status_code == 404
    assert httpx.get(f"{base}/redoc").status_code == 404
    assert "/api/overview" in httpx.get(f"{base}/openapi.json").json()["paths"]


@pytest.mark.parametrize("value", ["alice", "alice:", ":s3cr3t-a", "alice:s3cr3t-b,alice:s3cr3t-c"])
def test_malformed_operators_variable_stops_serve(value: str) -> None:
    result = subprocess.run([sys.executable, "-m", "clusterwatch", "serve", "--listen", f"127.0.0.1:{free_port()}"],
                            capture_output=True, text=True, timeout=60,
                            env={**os.environ, "CLUSTERWATCH_OPERATORS": value})
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "CLUSTERWATCH_OPERATORS" in result.stderr
    assert "s3cr3t" not in result.stderr  # secrets are never echoed
