"""The job page of a large, day-long job in process over an embedded store: the step adapts to
the range (at most MAX_POINTS points per series), a job above DETAIL_GPUS gets every GPU's
utilisation but memory and power as bands plus the stragglers' own series, the figures match the
data, and the HTML page embeds valid JSON (no bare NaN)."""
from __future__ import annotations

import json
import math
import re

import pytest
from fastapi.testclient import TestClient

from cwkernel.server import build_app
from dashboard.component import dashboard_component
from dashboard.context import DashboardContext
from dashboard.params import MAX_POINTS
from dashboard.views import jobs as jobs_view
from dashboard.views.jobs import DETAIL_GPUS
from tests.dashboard.large_job import INTERVAL, JOB_ID, LAST, SLOW, STEPS, T0, Scheduler, build_store
from tests.dashboard.query_log import RecordingClient
from tsdb.client import LocalQueryClient
from tsdb.promql.engine import Engine
from tsdb.store import Store


@pytest.fixture(scope="module")
def store() -> Store:
    return build_store()


class DecodingClient(RecordingClient):
    """The in-process engine, taken for a client that decodes its answers (over HTTP): the page
    asks it for the memory and power bands instead of every GPU's series."""

    decodes_results = True


@pytest.fixture(scope="module", params=["adapter", "no adapter", "adapter, answers decoded"])
def client(request, store):
    query = DecodingClient(Engine(store)) if "decoded" in request.param else LocalQueryClient(Engine(store))
    ctx = DashboardContext(query, scheduler=Scheduler() if request.param.startswith("adapter") else None,
                           clock=lambda: LAST + 1)
    with TestClient(build_app([dashboard_component(ctx)])) as client:
        yield client


def test_a_day_long_large_job_is_downsampled_and_banded(client):
    view = client.get(f"/api/jobs/{JOB_ID}?range=24h").json()
    assert len(view["gpus"]) == 80 > DETAIL_GPUS and not view["per_gpu_detail"]
    assert view["step"] == 360 and 200 <= len(view["timestamps"]) <= MAX_POINTS + 1
    assert all(len(g["utilization"]) == len(view["timestamps"]) for g in view["gpus"])
    # Stragglers keep their own memory and power lines; the others are in the bands.
    slow = [g for g in view["gpus"] if g["straggler"]]
    assert [(g["node"], g["gpu"]) for g in slow] == [SLOW]
    assert len(slow[0]["memory_bytes"]) == len(view["timestamps"]) and slow[0]["power_watts"][-1] == 200.0
    assert all(g["memory_bytes"] == [] and g["power_watts"] == [] for g in view["gpus"] if not g["straggler"])
    power = view["bands"]["power_watts"]
    assert set(power["min"]) == {200.0} and set(power["median"]) == {500.0} and set(power["max"]) == {500.0}
    assert set(view["bands"]["utilization"]["median"]) == {0.8}  # the other job's idle node is not in it
    assert view["efficiency"]["gpu_efficiency"] == pytest.approx((79 * 0.8 + 0.2) / 80, abs=1e-3)
    assert view["efficiency"]["gpu_hours"] == pytest.approx(80 * 24, rel=0.01)
    assert view["efficiency"]["memory_peak_bytes"] == 33e9 and view["efficiency"]["memory_total_bytes"] == 80e9
    assert view["flags"] == {"straggler": 1}
    assert view["job"]["user"] == "alice" and view["job"]["gpus"] == 80
    [alert] = view["alerts"]
    assert (alert["alertname"], alert["instance"], alert["gpu"], alert["severity"]) == \
        ("GpuXidError", "gpu-002", 3, "critical")
    assert T0 + 600 * INTERVAL <= alert["start"] < T0 + 610 * INTERVAL
    assert T0 + 710 * INTERVAL <= alert["end"] < T0 + 725 * INTERVAL


def test_a_large_jobs_bands_cover_its_own_gpus_on_a_shared_node():
    """The engine aggregates a large job's memory and power over the job's GPUs, not its nodes', for
    a client that decodes answers: on a node it shares, another job's GPUs (900 W, 70 GB) stay out
    of its bands and peak."""
    store = build_store()
    stamps = [int((T0 + i * INTERVAL) * 1000) for i in range(STEPS)]
    for gpu in range(8):
        base = (("gpu", str(gpu)), ("instance", "gpu-011"), ("job", "clusterwatch"))
        ours = gpu < 4
        for name, value in (("gpu_utilization_ratio", 0.8 if ours else 1.0), ("gpu_power_watts", 500.0 if ours else 900.0),
                            ("gpu_memory_used_bytes", 33e9 if ours else 70e9), ("gpu_memory_total_bytes", 80e9),
                            ("gpu_processes", 1.0)):
            store.append_series((("__name__", name),) + base, stamps, [value] * STEPS)
        store.append_series((("__name__", "slurm_job_gpu_info"), ("gpu", str(gpu)), ("instance", "gpu-011"),
                             ("job_id", JOB_ID if ours else "4343")), stamps, [1.0] * STEPS)
    recording = DecodingClient(Engine(store))
    ctx = DashboardContext(recording, clock=lambda: LAST + 1)
    with TestClient(build_app([dashboard_component(ctx)])) as client:
        view = client.get(f"/api/jobs/{JOB_ID}?range=24h").json()
    assert len(view["gpus"]) == 84 and ("gpu-011", 4) not in [(g["node"], g["gpu"]) for g in view["gpus"]]
    assert set(view["bands"]["power_watts"]["max"]) == {500.0} and set(view["bands"]["power_watts"]["min"]) == {200.0}
    assert view["efficiency"]["memory_peak_bytes"] == 33e9
    # Power came back as the bands and the straggler's own series, not 84 GPUs' (memory too, but the
    # page also reads every GPU's memory now, for its flags).
    power = [labels for _, answer in recording.answers for labels in answer if labels.get("__name__") == "gpu_power_watts"]
    assert [(labels["instance"], labels["gpu"]) for labels in power] == [(SLOW[0], str(SLOW[1]))]


def test_a_job_too_scattered_for_one_selector_is_banded_here_the_same(store, monkeypatch):
    """Past MAX_BAND_SELECTOR_CHARS of GPU matchers (a job over many partly held nodes; the engine
    may refuse long queries) the page reads every GPU's memory and power and bands them itself:
    the same page."""
    def page():
        ctx = DashboardContext(DecodingClient(Engine(store)), clock=lambda: LAST + 1)
        with TestClient(build_app([dashboard_component(ctx)])) as client:
            return client.get(f"/api/jobs/{JOB_ID}?range=24h").json()

    by_engine = page()
    monkeypatch.setattr(jobs_view, "MAX_BAND_SELECTOR_CHARS", 0)
    here = page()
    assert here["bands"] == by_engine["bands"] and here["gpus"] == by_engine["gpus"]
    assert here["efficiency"] == by_engine["efficiency"]


def test_a_short_range_keeps_every_gpu_series(client):
    view = client.get(f"/api/jobs/{JOB_ID}?range=1h").json()
    assert view["step"] == 15
    assert view["bands"]["memory_bytes"]["max"][-1] == 33e9


def test_the_html_page_embeds_the_same_model_as_strict_json(client):
    page = client.get(f"/jobs/{JOB_ID}?range=24h").text
    embedded = re.search(r'<script type="application/json" id="view">(.*?)</script>', page, re.S).group(1)
    model = json.loads(embedded, parse_constant=lambda c: pytest.fail(f"{c} is not JSON"))
    assert len(model["gpus"]) == 80 and not any(math.isnan(v) for v in model["bands"]["utilization"]["max"] if v)
