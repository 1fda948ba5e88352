"""``serve --prometheus-url``: every page and /api/v1 query is answered by a remote server, so its
answers cross a process boundary and are bounded like any other input: in time (the whole
exchange, not each read), in size (before the answer is read whole) and in depth.

Observed before: ``HTTPQueryClient`` used httpx's timeout, which bounds each read, so a server
sending its answer a byte every 0.1 s held the dashboard's request (and its thread) for as long
as it kept sending; an answer was read whole into memory whatever its size (a range query over
many series from a large Prometheus, or a broken proxy streaming forever); an answer nested
100,000 deep raised ``RecursionError`` out of the client, a 500 with a traceback.
"""
from __future__ import annotations

import socket
import threading
import time

import pytest

from cwkernel.server import Deps
from tsdb import component
from tsdb.client import HTTPQueryClient, QueryError
from tests.rawserver import Answer, drip_body, drip_headers, endless_body, outcome_in_a_thread, raw_server


def sent_whole(body: bytes) -> Answer:
    def answer(conn: socket.socket, stop: threading.Event) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                     % (len(body), body))
    return answer


@pytest.mark.parametrize("answer", [drip_body, drip_headers], ids=["body", "headers"])
def test_a_remote_answer_that_drips_ends_at_the_query_timeout(answer: Answer) -> None:
    with raw_server(answer) as address:
        client = HTTPQueryClient(f"http://{address}", timeout=1.0)
        started = time.monotonic()
        outcome = outcome_in_a_thread(lambda: client.instant("up", at=1000.0))
        took = time.monotonic() - started
    assert len(outcome) == 1 and isinstance(outcome[0], QueryError), outcome
    assert outcome[0].error_type == "timeout"  # a 503 in Prometheus's error shape, as a local timeout
    assert "no answer within 1.0s" in outcome[0].message
    assert took < 30


def test_a_remote_answer_over_the_limit_is_refused_before_it_is_read_whole() -> None:
    with raw_server(endless_body) as address:
        client = HTTPQueryClient(f"http://{address}", timeout=60.0, max_answer_bytes=1 << 20)
        outcome = outcome_in_a_thread(lambda: client.range("up", 0.0, 3600.0, 15.0))
    assert len(outcome) == 1 and isinstance(outcome[0], QueryError), outcome
    assert outcome[0].error_type == "execution"  # a 422, as a local query over its sample limit
    assert "answer over 1,048,576 bytes" in outcome[0].message
    assert "--prometheus-max-answer-bytes" in outcome[0].message


def test_a_declared_length_over_the_limit_is_refused_unread() -> None:
    with raw_server(sent_whole(b'{"status":"success","data":{"resultType":"vector","result":[]}}'
                               + b" " * (2 << 20))) as address:
        outcome = outcome_in_a_thread(
            lambda: HTTPQueryClient(f"http://{address}", max_answer_bytes=1 << 20).instant("up", at=1000.0))
    assert len(outcome) == 1 and isinstance(outcome[0], QueryError), outcome
    assert "answer over 1,048,576 bytes" in outcome[0].message


@pytest.mark.parametrize("body, says", [
    (b"[" * 100_000, "nested too deeply"),
    (b"<html>proxy error</html>", "without a JSON body"),
    (b'["a list"]', "not a Prometheus API answer"),
    (b'{"status":"success","data":{"resultType":"vector","result":[{"metric":{}}]}}', "not a Prometheus API answer"),
], ids=["deep", "html", "list", "no-value"])
def test_a_remote_answer_that_is_not_the_api_is_a_query_error(body: bytes, says: str) -> None:
    with raw_server(sent_whole(body)) as address:
        outcome = outcome_in_a_thread(lambda: HTTPQueryClient(f"http://{address}").instant("up", at=1000.0))
    assert len(outcome) == 1 and isinstance(outcome[0], QueryError), outcome
    assert outcome[0].error_type == "internal"
    assert says in outcome[0].message


def test_serve_gives_the_remote_client_its_query_timeout_and_answer_limit() -> None:
    deps = Deps()
    values = {"prometheus_url": "http://127.0.0.1:9", "query_timeout": 7.0, "prometheus_max_answer_bytes": 12345}
    assert component.build(values, deps) is None
    assert (deps.query.timeout, deps.query.max_answer_bytes) == (7.0, 12345)
