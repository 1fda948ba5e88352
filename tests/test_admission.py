"""Request work is admitted a few at a time per class, the rest wait their turn on the event loop
or get a 503, and the probes, /metrics and operator actions never wait (issue 14: fifty dashboard
users starved the scraper and the rule evaluator of the interpreter)."""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import uvicorn
from fastapi import APIRouter, Depends

from cwkernel.admission import Admission
from cwkernel.auth import Operator, OperatorAuth, install, require_operator
from cwkernel.server import Component, build_app
from tests.realcomponents import free_port


class Slow:
    """A view that takes ``seconds`` of a thread and counts how many run at once."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.running = 0
        self.most = 0
        self.lock = threading.Lock()
        self.release = threading.Event()

    def __call__(self) -> dict:
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
        self.release.wait(self.seconds)
        with self.lock:
            self.running -= 1
        return {"ok": True}


@pytest.fixture
def served():
    servers = []

    def serve(admission: Admission, slow: Slow):
        router = APIRouter()
        router.add_api_route("/api/slow", slow, methods=["GET"])

        def drain(operator: Operator = Depends(require_operator)) -> dict:
            return {"by": operator.name}

        router.add_api_route("/api/nodes/x/drain", drain, methods=["POST"])
        app = build_app([Component("view", routers=[router]),
                         Component("http", collectors=[admission], health=admission.problems)])
        install(app, OperatorAuth({"op": "secret"}))
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        servers.append((server, thread, slow))
        deadline = time.monotonic() + 30
        while not server.started:
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.02)
        return f"http://127.0.0.1:{port}"

    yield serve
    for server, thread, slow in servers:
        slow.release.set()
        server.should_exit = True
        thread.join(10)


def _wait_for(predicate, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_views_run_a_few_at_a_time_the_rest_wait_or_are_refused_and_probes_never_wait(served):
    admission = Admission(max_active=2, max_queued=3, queue_timeout=60)
    slow = Slow(seconds=60)  # held until released below
    base = served(admission, slow)
    with ThreadPoolExecutor(8) as pool, httpx.Client(base_url=base, timeout=60) as http:
        held = [pool.submit(httpx.get, f"{base}/api/slow", timeout=60) for _ in range(5)]
        _wait_for(lambda: slow.running == 2 and len(admission._waiting.get("view", ())) == 3, "2 running, 3 waiting")
        refused = http.get("/api/slow")  # the queue is full: refused at once, not held
        assert refused.status_code == 503 and refused.headers["retry-after"] == "5"
        assert "server busy" in refused.json()["detail"]
        # While every place is taken: the probes, /metrics and an operator's action still answer.
        assert http.get("/-/healthy").status_code == 200
        assert http.get("/-/ready").status_code == 200
        metrics = http.get("/metrics").text
        assert 'clusterwatch_http_requests_queued{class="view"} 3.0' in metrics
        assert 'clusterwatch_http_requests_shed_total{class="view",reason="queue_full"} 1.0' in metrics
        assert http.post("/api/nodes/x/drain", headers={"Authorization": "Bearer secret"}).json() == {"by": "op"}
        slow.release.set()
        assert [f.result().status_code for f in held] == [200] * 5  # those that waited are served
    assert slow.most == 2


def test_a_request_that_waits_too_long_gets_a_503_and_its_place_is_not_lost(served):
    admission = Admission(max_active=1, max_queued=10, queue_timeout=0.2)
    slow = Slow(seconds=60)
    base = served(admission, slow)
    with ThreadPoolExecutor(2) as pool, httpx.Client(base_url=base, timeout=60) as http:
        first = pool.submit(httpx.get, f"{base}/api/slow", timeout=60)
        _wait_for(lambda: slow.running == 1, "the first view running")
        late = http.get("/api/slow")
        assert late.status_code == 503 and "waited 0.2s" in late.json()["detail"]
        assert "requests_shed" in http.get("/-/ready").text
        slow.release.set()
        assert first.result().status_code == 200
        slow.release.clear()
        slow.seconds = 0.0
        assert http.get("/api/slow").status_code == 200  # the place the timed-out request had is free again
    assert admission._active["view"] == 0
