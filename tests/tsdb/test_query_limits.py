"""Query limits as Prometheus has them (timeout, max samples, max concurrency), refused in its error
shape in bounded time and memory, with the server's own queries in a lane of their own
(issue 14, finding 2)."""
from __future__ import annotations

import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.tsdb.helpers import load
from tsdb.api import build_router
from tsdb.client import LocalQueryClient, QueryError
from tsdb.promql.engine import Engine
from tsdb.promql.limits import QueryLimits
from tsdb.promql.values import PromQLError
from tsdb.selfmetrics import TSDBCollector

ROOT = Path(__file__).resolve().parents[2]
TOO_MANY = "query processing would load too many samples into memory in query execution"
# 12 GPU series and one other, a sample a minute for 6 h
STORE = load({**{f'gpu_util{{instance="n{i}",gpu="{g}"}}': "0+0.01x360" for i in range(3) for g in range(4)},
              'up{instance="n0"}': "1x360"})


def _api(engine: Engine) -> TestClient:
    app = FastAPI()
    app.include_router(build_router(engine, STORE))
    return TestClient(app)


def _refused(engine_or_client, call) -> PromQLError | QueryError:
    with pytest.raises((PromQLError, QueryError)) as caught:
        call(engine_or_client)
    return caught.value


def _metric(engine: Engine, name: str, **labels: str) -> float:
    for family in TSDBCollector(STORE, engine, None).collect():
        for sample in family.samples:
            if sample.name in (name, f"{name}_total") and sample.labels == labels:
                return sample.value
    raise AssertionError(f"no {name}{labels}")


def _wait_for(condition, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


# ---- --query-max-samples ---------------------------------------------------------------------
def test_huge_subquery_is_refused_before_it_allocates() -> None:
    # [30d:1ms] is 2.6 billion steps: the engine tried to allocate 19 GiB for their timestamps.
    # Run under a 3 GiB address-space limit, so that on failure this test fails and the machine lives.
    child = ("import resource\nfrom tsdb.promql.engine import Engine\nfrom tsdb.store import Store\n"
             "from tsdb.promql.values import PromQLError\n"
             "try:\n    Engine(Store()).instant('count_over_time(vector(1)[30d:1ms])', 1e9)\n"
             "except PromQLError as exc:\n    print(exc.error_type, exc.message, sep='|')\n"
             # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the forking parent (pytest,
             # hundreds of MB after a full run), VmHWM belongs to this process's own memory.
             "print(next(int(line.split()[1]) for line in open('/proc/self/status') "
             "if line.startswith('VmHWM:')) // 1024)\n")

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))

    done = subprocess.run([sys.executable, "-c", child], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          preexec_fn=cap)
    assert done.returncode == 0, done.stderr[-2000:]
    refusal, peak_mb = done.stdout.splitlines()
    assert refusal == f"execution|{TOO_MANY}"
    assert int(peak_mb) < 400


def test_query_the_process_cannot_allocate_fails_alone() -> None:
    # With the sample limit set too high for the machine, an allocation can still fail: that
    # query gets a 422, never a 500, and the engine answers the next one.
    child = ("from tsdb.promql.engine import Engine\nfrom tsdb.promql.limits import QueryLimits\n"
             "from tsdb.store import Store\nfrom tsdb.promql.values import PromQLError\n"
             "engine = Engine(Store(), limits=QueryLimits(max_samples=10**12))\n"
             "try:\n    engine.instant('count_over_time(vector(1)[30d:1ms])', 1e9)\n"
             "except PromQLError as exc:\n    print(exc.error_type, exc.message, sep='|')\n"
             "print(engine.instant('1 + 1', 0).scalar)\n")

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))

    done = subprocess.run([sys.executable, "-c", child], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          preexec_fn=cap)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines() == ["execution|query processing ran out of memory in query execution", "2.0"]


def test_sample_limit_counts_what_a_query_holds_at_once() -> None:
    engine = Engine(STORE, limits=QueryLimits(max_samples=20_000))
    # 12 series x 10,801 steps of 2 s: 130,000 samples, over the limit before any is loaded
    refusal = _refused(engine, lambda e: e.range('{__name__=~"gpu_.+"}', 0, 21600, 2))
    assert (refusal.error_type, refusal.message) == ("execution", TOO_MANY)
    # a subquery's steps x series, charged before its grid is built
    assert _refused(engine, lambda e: e.instant("max_over_time(gpu_util[6h:1s])", 21600)).message == TOO_MANY
    # under the limit: answered, and the limit's use was counted
    assert len(engine.range('{__name__=~"gpu_.+"}', 0, 21600, 60).series) == 12
    assert len(engine.instant("rate(gpu_util[1h])", 21600).series) == 12
    assert _metric(engine, "clusterwatch_engine_queries_refused", reason="max_samples") == 2


def test_sample_limit_through_the_api_is_prometheus_422() -> None:
    http = _api(Engine(STORE, limits=QueryLimits(max_samples=20_000)))
    response = http.post("/api/v1/query_range", data={"query": '{__name__=~"gpu_.+"}', "start": "0",
                                                       "end": "21600", "step": "2"})
    assert response.status_code == 422
    assert response.json() == {"status": "error", "errorType": "execution", "error": TOO_MANY}


# ---- --query-timeout -------------------------------------------------------------------------
SLOW = "quantile_over_time(0.5, gpu_util[6h:1s])"  # a quantile of 21,600 samples at each of 10,801 steps, x12


def test_slow_query_times_out_in_bounded_time() -> None:
    http = _api(Engine(STORE, limits=QueryLimits(timeout_s=0.5)))
    began = time.monotonic()
    response = http.post("/api/v1/query_range", data={"query": SLOW, "start": "0", "end": "21600", "step": "2"})
    assert time.monotonic() - began < 20  # unlimited, it runs for minutes
    assert response.status_code == 503
    assert response.json() == {"status": "error", "errorType": "timeout",
                               "error": "query timed out in expression evaluation"}


# ---- --query-max-concurrency -----------------------------------------------------------------
def test_full_queue_is_refused_at_once_and_the_reserved_lane_still_answers() -> None:
    engine = Engine(STORE, limits=QueryLimits(max_concurrency=1, queue_per_slot=1))
    http = _api(engine)
    running, waiting = engine.gate.enter(), engine.gate.enter()  # the slot and the queue, held
    try:
        response = http.get("/api/v1/query", params={"query": "up", "time": "60"})
        assert response.status_code == 503
        body = response.json()
        assert (body["status"], body["errorType"]) == ("error", "unavailable") and "too many queries" in body["error"]
        dashboard = LocalQueryClient(engine, gated=True)
        assert _refused(dashboard, lambda c: c.instant("up", 60)).error_type == "unavailable"
        # rules and remediation never wait behind outside queries
        assert LocalQueryClient(engine).instant("up", 60).series[0].value == 1.0
        assert _metric(engine, "clusterwatch_engine_queries_refused", reason="queue_full") == 2
        assert _metric(engine, "clusterwatch_engine_query_queue_length") == 1
    finally:
        waiting.leave()
        running.leave()
    assert http.get("/api/v1/query", params={"query": "up", "time": "60"}).status_code == 200


def test_queued_query_runs_when_a_slot_frees_and_times_out_waiting() -> None:
    engine = Engine(STORE, limits=QueryLimits(max_concurrency=1, timeout_s=60))
    http = _api(engine)
    running = engine.gate.enter()
    answers: list = []
    waiter = threading.Thread(target=lambda: answers.append(http.get("/api/v1/query", params={"query": "up",
                                                                                            "time": "60"})))
    waiter.start()
    _wait_for(lambda: engine.gate.queued() == 1, "the query to queue")
    running.leave()
    waiter.join(60)
    assert answers[0].status_code == 200 and answers[0].json()["data"]["result"][0]["value"] == [60, "1"]

    impatient = Engine(STORE, limits=QueryLimits(max_concurrency=1, timeout_s=0.3))
    held = impatient.gate.enter()
    try:
        response = _api(impatient).get("/api/v1/query", params={"query": "up", "time": "60"})
    finally:
        held.leave()
    assert response.status_code == 503
    assert response.json()["error"] == "query timed out in query queue"
    assert _metric(impatient, "clusterwatch_engine_queries_refused", reason="queue_timeout") == 1


def test_outside_queries_give_way_while_the_servers_own_evaluate() -> None:
    engine = Engine(STORE)
    http = _api(engine)
    answers: list = []
    with engine.gate.internal():  # a rule evaluation in progress
        outside = threading.Thread(target=lambda: answers.append(
            http.get("/api/v1/query", params={"query": "sum(gpu_util)", "time": "60"})))
        outside.start()
        _wait_for(lambda: engine.gate.running() == 1, "the outside query to be admitted")
        assert _metric(engine, "clusterwatch_engine_queries_in_flight", lane="internal") == 1
        outside.join(0.3)
        assert outside.is_alive() and not answers  # held at its first check until the lane is idle
    outside.join(60)
    assert answers[0].status_code == 200
    assert _metric(engine, "clusterwatch_engine_query_paused_seconds") > 0


# ---- the options ------------------------------------------------------------------------------
def test_serve_options_reach_the_engine_and_bad_values_name_the_option(tmp_path: Path) -> None:
    from clusterwatch.cli import build_parser
    from clusterwatch.commands import serve
    from cwkernel.errors import ConfigError

    def limits(*argv: str, environ: dict | None = None) -> QueryLimits:
        _, config, _ = serve.load_config(build_parser().parse_args(["serve", *argv]), environ=environ or {})
        return config.query_limits

    assert limits() == QueryLimits(timeout_s=120.0, max_samples=50_000_000, max_concurrency=20)
    assert limits("--query-timeout", "5s", "--query-max-samples", "1000", "--query-max-concurrency", "3") == \
        QueryLimits(timeout_s=5.0, max_samples=1000, max_concurrency=3)
    assert limits(environ={"CLUSTERWATCH_SERVE_QUERY_MAX_CONCURRENCY": "7"}).max_concurrency == 7
    with pytest.raises(ConfigError, match="query_max_concurrency"):
        limits("--query-max-concurrency", "0")
    with pytest.raises(ConfigError, match="query_timeout"):
        limits("--query-timeout", "forever")
