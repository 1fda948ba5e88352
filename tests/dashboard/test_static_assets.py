"""Static files: plotly.js compressed once and cached for a year under a versioned URL, ETags for
revalidation, and pages loading plotly only when they draw charts, never blocking on it."""
from __future__ import annotations

import gzip
import re

import pytest
from fastapi.testclient import TestClient

from cwkernel.server import build_app
from dashboard.component import dashboard_component
from dashboard.context import DashboardContext
from dashboard.routes.static import asset_version, plotly_js
from tsdb.client import LocalQueryClient
from tsdb.promql.engine import Engine
from tsdb.store import Store


@pytest.fixture(scope="module")
def client():
    ctx = DashboardContext(LocalQueryClient(Engine(Store())))
    with TestClient(build_app([dashboard_component(ctx)])) as client:
        yield client


def test_plotly_is_gzipped_and_immutable_under_its_versioned_url(client):
    url = f"/static/plotly.min.js?v={asset_version()}"  # the package's full bundle, still served
    response = client.get(url, headers={"Accept-Encoding": "gzip"})
    assert response.status_code == 200 and response.headers["content-encoding"] == "gzip"
    assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
    raw = plotly_js().read_bytes()
    assert response.content == raw  # httpx decoded it
    assert int(response.headers["content-length"]) == len(gzip.compress(raw, 6)) < len(raw) / 3
    again = client.get(url, headers={"If-None-Match": response.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    plain = client.get("/static/app.js", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers and plain.headers["cache-control"] == "no-cache"
    assert client.get("/static/..%2Fpages.py").status_code == 404


def test_pages_link_versioned_assets_and_load_plotly_async_only_where_charts_are(client):
    overview = client.get("/").text
    assert re.search(rf'<script id="plotly" src="/static/plotly-cartesian.min.js\?v={asset_version()}" async>',
                     overview)
    assert f'<script src="/static/app.js?v={asset_version()}" defer>' in overview
    jobs = client.get("/jobs").text
    assert "plotly" not in jobs and f'/static/jobs.js?v={asset_version()}' in jobs
