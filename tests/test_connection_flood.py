"""Idle connections never become a false fleet-wide outage (issue 14, finding 6).

A real ``clusterwatch serve`` runs with a low file descriptor limit (soft = hard = 160, set for
its process only) and scrapes four exporter-like targets every second while a client holds 400
half-sent requests open, reopening those the server closes. Before the fix the server stopped
accepting (every descriptor taken), ``/-/healthy`` stopped answering, and the scraper, unable to
open sockets, recorded every healthy target as ``up == 0``. Now: the health check answers all
along, no target is ever recorded down, scrapes go on during the flood, and the log stays short.
"""
from __future__ import annotations

import socket
import sys
import time

import httpx
import pytest

from bench.flood import HALF_REQUEST, HalfOpenFlood
from tests.pages import one_gauge, page_servers
from tests.realcomponents import ManagedProcess, free_port, wait_http

pytestmark = pytest.mark.real_component

FD_LIMIT = 160
FLOOD = 400
FLOOD_SECONDS = 12.0
# The serve command run with its descriptor limit lowered (preexec_fn would work too; this keeps
# ManagedProcess's stop-by-PID unchanged).
LIMITED_SERVE = ("import resource, runpy, sys; resource.setrlimit(resource.RLIMIT_NOFILE, ({0}, {0})); "
                 "sys.argv = ['clusterwatch'] + sys.argv[1:]; runpy.run_module('clusterwatch', run_name='__main__')")


@pytest.fixture
def exporters():
    # HTTP/1.0, as many exporters: every scrape needs a new socket.
    with page_servers(one_gauge, count=4) as addresses:
        yield addresses


def query(base: str, promql: str) -> list[dict]:
    body = httpx.get(f"{base}/api/v1/query", params={"query": promql}, timeout=30).json()
    assert body["status"] == "success", body
    return body["data"]["result"]


def test_half_open_flood_leaves_health_and_scrapes_alone(exporters: list[str], tmp_path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    proc = ManagedProcess([sys.executable, "-c", LIMITED_SERVE.format(FD_LIMIT), "serve", "--listen",
                           f"127.0.0.1:{port}", "--scrape-interval", "1s", "--targets", *exporters], log)
    try:
        wait_http(f"{base}/-/ready", timeout=60, proc=proc)
        deadline = time.monotonic() + 60
        while len(query(base, "up == 1")) < len(exporters) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert len(query(base, "up == 1")) == len(exporters), "targets never scraped before the flood"

        started = time.time()
        failures: list[str] = []
        answered = 0
        with HalfOpenFlood(port, FLOOD) as flood:
            while flood.opened < FD_LIMIT + 50 and time.time() - started < 90:
                time.sleep(0.2)  # the flood gets past the descriptor limit first
            assert flood.opened >= FD_LIMIT + 50, f"only {flood.opened} connections opened"
            checks_started = time.time()
            while time.time() - checks_started < FLOOD_SECONDS:
                try:
                    answer = httpx.get(f"{base}/-/healthy", timeout=20)
                    answered += answer.status_code == 200
                    if answer.status_code != 200:
                        failures.append(f"status {answer.status_code}")
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))
                time.sleep(0.5)
        assert not failures and answered, f"/-/healthy failed during the flood: {failures[:3]}"

        window = f"{int(time.time() - started) + 2}s"
        down = query(base, f"min_over_time(up[{window}]) == 0")
        assert down == [], f"healthy targets recorded down during the flood: {down}"
        scraped = {r["metric"]["instance"]: float(r["value"][1]) for r in query(base, f"count_over_time(up[{window}])")}
        assert set(scraped) == set(exporters) and min(scraped.values()) >= 3, f"scrapes stalled: {scraped}"
        metrics = httpx.get(f"{base}/metrics", timeout=20).text
        assert 'clusterwatch_http_connections_closed_total{reason="displaced_at_cap"}' in metrics
        assert "connection_cap_reached" in httpx.get(f"{base}/-/ready", timeout=20).text
    finally:
        proc.stop()
    assert log.stat().st_size < 100_000, f"log grew to {log.stat().st_size} bytes:\n{proc.log_tail(2000)}"


def test_a_half_sent_request_is_closed_after_the_header_timeout(tmp_path) -> None:
    port = free_port()
    proc = ManagedProcess([sys.executable, "-m", "clusterwatch", "serve", "--listen", f"127.0.0.1:{port}",
                           "--http-header-timeout", "1s"], tmp_path / "serve.log")
    try:
        wait_http(f"http://127.0.0.1:{port}/-/ready", timeout=60, proc=proc)
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(HALF_REQUEST)
            answer = sock.recv(4096)  # waits for the server to give up on the request
            assert answer.startswith(b"HTTP/1.1 408"), answer
        with socket.create_connection(("127.0.0.1", port), timeout=30) as idle:
            assert idle.recv(4096) == b""  # a connection that never sends anything is closed too
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=20).text
        assert 'clusterwatch_http_connections_closed_total{reason="header_timeout"} 2.0' in metrics
    finally:
        proc.stop()
