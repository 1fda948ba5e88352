"""``/api/v1/series``, ``/labels`` and ``/label/<name>/values`` come from outside as queries do
(Grafana's template variables ask them on every dashboard load), so they are bounded as queries
are: admitted by the engine's gate, within ``--query-timeout``, and without copying samples.

Observed before: they ran on the request's thread outside the gate, however many came at once;
``/series`` with ``start``/``end`` copied every sample of every matching series in the window to
tell whether it had one, holding the store's lock the while (``match[]={__name__=~".+"}`` over the
demo's two hours: the whole store, twice over, with every scrape and rule waiting on the lock).
"""
from __future__ import annotations

import tracemalloc

import numpy as np
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tsdb.api import build_router
from tsdb.promql.engine import Engine
from tsdb.promql.limits import QueryLimits
from tsdb.matchers import LabelMatcher
from tsdb.store import Store

SERIES, SAMPLES = 40, 250_000  # 10 million samples, 80 MB of values


def big_store() -> Store:
    store = Store(retention_s=10**9)
    timestamps = np.arange(SAMPLES, dtype=np.int64) * 1000
    values = np.ones(SAMPLES)
    for i in range(SERIES):
        store.append_series((("__name__", "gpu_util"), ("gpu", str(i))), timestamps, values)
    store.append_series((("__name__", "old"), ("gpu", "0")), np.array([0], dtype=np.int64), np.array([1.0]))
    return store


def test_series_in_a_window_are_told_without_copying_their_samples() -> None:
    store = big_store()
    everything = [LabelMatcher.of("=~", "__name__", ".+")]
    tracemalloc.start()
    try:
        found = store.series_labels(everything, 10_000, SAMPLES * 1000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert sorted(labels["gpu"] for labels in found) == sorted(str(i) for i in range(SERIES))  # not "old"
    assert peak < 4 << 20, f"{peak:,} bytes allocated to answer with {SERIES} label sets"


def api(engine: Engine, store: Store) -> TestClient:
    app = FastAPI()
    app.include_router(build_router(engine, store))
    return TestClient(app)


METADATA = [("/api/v1/series", {"match[]": "gpu_util"}), ("/api/v1/labels", {}),
            ("/api/v1/label/gpu/values", {}), ("/api/v1/labels", {"match[]": "gpu_util", "start": "0", "end": "60"})]


def test_metadata_requests_wait_their_turn_at_the_query_gate() -> None:
    store = big_store()
    engine = Engine(store, limits=QueryLimits(max_concurrency=1, queue_per_slot=1))
    http = api(engine, store)
    running, waiting = engine.gate.enter(), engine.gate.enter()  # the slot and the queue, held
    try:
        for path, params in METADATA:
            response = http.get(path, params=params)
            assert response.status_code == 503, (path, response.text)
            assert response.json()["errorType"] == "unavailable"
    finally:
        waiting.leave()
        running.leave()
    for path, params in METADATA:
        assert http.get(path, params=params).status_code == 200, path


def test_metadata_requests_end_at_the_query_timeout() -> None:
    store = big_store()
    engine = Engine(store, limits=QueryLimits(timeout_s=1e-9))
    response = api(engine, store).get("/api/v1/series", params={"match[]": '{__name__=~".+"}', "start": "0",
                                                                 "end": str(SAMPLES)})
    assert response.status_code == 503, response.text
    assert response.json()["errorType"] == "timeout"
