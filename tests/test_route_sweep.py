"""Hostile values on every route never get a 5xx or a traceback (issue 14, finding 10).

The app is ``serve``'s own (``build_components`` + ``build_app``: the embedded store, the rule
evaluator, alerting, automation in dry-run and the dashboard; the scheduler adapter points at a
closed local port, so no simulator is needed). Every route the app serves (the OpenAPI document's
and the hidden HTML pages alike) gets, one parameter at a time, NaN, infinities, 1e300, -1,
2**70, 10,000-character strings, non-UTF-8 bytes and newline-terminated ids, and every route
that takes a body gets deeply nested, non-UTF-8, NaN-carrying and wrongly typed JSON. Dashboard
routes answer 4xx (400 for their own checks, FastAPI's 422 for types); the Prometheus API answers
Prometheus's 400 ``bad_data`` (its own test below).
"""
from __future__ import annotations

from typing import Iterator
from urllib.parse import quote

import pytest
from fastapi.dependencies.utils import get_flat_params
from fastapi.testclient import TestClient

from clusterwatch.cli import build_parser
from clusterwatch.commands import serve
from cwkernel.auth import OperatorAuth, install
from cwkernel.routes import served_routes
from cwkernel.server import build_app

TOKEN = "sweep-secret"
SERVE_ARGV = ["serve", "--scheduler", "slurmrestd", "--scheduler-url", "http://127.0.0.1:9", "--automation",
              "dry-run", "--scrape-interval", "60s"]
# Query and path values, sent percent-encoded as a client would (b"\xff" is not UTF-8).
HOSTILE = ["nan", "NaN", "inf", "-Infinity", "1e300", "-1", str(2**70), "x" * 10_000, "%FF%FE", "gpu-001%0A",
           "1234%0A", "", "0x1f", "1_000", "%00", "..%2F..%2Fetc%2Fpasswd", "1000000"]
BODIES = [
    b"[" * 30_000 + b"]" * 30_000,  # deeply nested, under the operator-action body limit
    b'{"a":' * 20_000 + b"1" + b"}" * 20_000,
    b"\xff\xfe{\x00",  # not UTF-8
    b'{"reason": NaN, "seconds": Infinity, "duration": "99999999y", "comment": "x", "matchers": []}',
    b'{"reason": 1e999, "seconds": 1e300, "startsAt": "nan", "endsAt": -1}',
    ('{"reason": "' + "x" * 10_000 + '", "createdBy": "' + "y" * 10_000 + '"}').encode(),
    b'{"reason": ' + str(2**70).encode() + b', "id": ' + str(2**70).encode() + b"}",
    b'{"reason": ["a", {"b": null}], "matchers": "not a list"}',
    b"null", b"[]", b"", b"{",
]
# The Prometheus API reads its parameters from the request itself (GET query or POST form), so
# they are not in the route's signature: Prometheus's own names, with a valid baseline each, so
# that the one hostile value is the cause of what comes back.
PROMETHEUS_PARAMS = {
    "/api/v1/query": {"query": "up", "time": "100", "timeout": "10s"},
    "/api/v1/query_range": {"query": "up", "start": "0", "end": "100", "step": "10", "timeout": "10s"},
    "/api/v1/series": {"match[]": "up", "start": "0", "end": "100", "limit": "10"},
    "/api/v1/labels": {"match[]": "up", "start": "0", "end": "100", "limit": "10"},
    "/api/v1/label/{name}/values": {"match[]": "up", "start": "0", "end": "100", "limit": "10"},
    "/api/v1/targets": {"state": "active"},
    "/api/v1/metadata": {"metric": "up", "limit": "10"},
}
PROMETHEUS_QUERIES = ["1+" * 3000 + "1", "(" * 1000 + "1" + ")" * 1000, "up @ 1e18", "up offset 1e300s",
                      "vector(1)[1e300s:1s]", 'label_replace(vector(1),"x","a","","(a+)+$")', 'up{a=~"("}', "sum(",
                      "up[5m", "-" * 5000 + "1"]
BASELINE = {"name": "gpu-001", "job_id": "1234", "case_id": "1", "fingerprint": "0123456789abcdef",
            "silence_id": "abc"}


@pytest.fixture(scope="module")
def app_client() -> Iterator[TestClient]:
    _, config, values = serve.load_config(build_parser().parse_args(SERVE_ARGV), environ={})
    app = build_app(serve.build_components(values, config))
    install(app, OperatorAuth({"sweeper": TOKEN}))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def routes(client: TestClient) -> list:
    return [r for r in served_routes(client.app) if getattr(r, "dependant", None) is not None]


def is_prometheus_api(route) -> bool:
    return "prometheus-api" in (route.tags or ())


def requests_for(route) -> Iterator[tuple[str, str, dict[str, str], bytes | None]]:
    """(method, url, params-as-raw-query, body) for one hostile value at a time."""
    params = get_flat_params(route.dependant)
    path_names = [p.alias for p in params if p.alias in route.path_format]
    query_names = [p.alias for p in params if p.alias not in path_names]
    methods = sorted(route.methods or {"GET"})
    if is_prometheus_api(route):
        yield from prometheus_requests(route, methods)
        return

    def url(path_values: dict[str, str], query: str = "") -> str:
        path = route.path_format
        for name in path_names:
            path = path.replace("{" + name + "}", path_values.get(name, BASELINE.get(name, "1")))
        return path + (f"?{query}" if query else "")

    for method in methods:
        for value in HOSTILE:
            for name in path_names:
                if value:  # an empty path segment is another route, not a value
                    yield method, url({name: value}), {}, None
            for name in query_names:
                yield method, url({}, f"{quote(name)}={value}"), {}, None
        if method in ("POST", "PUT", "PATCH", "DELETE"):
            for body in BODIES:
                yield method, url({}), {"Content-Type": "application/json"}, body


def prometheus_requests(route, methods: list[str]) -> Iterator[tuple[str, str, dict[str, str], bytes | None]]:
    path = route.path_format.replace("{name}", "job")
    baseline = PROMETHEUS_PARAMS.get(route.path_format, {})
    form = {"Content-Type": "application/x-www-form-urlencoded"}

    def encoded(values: dict[str, str]) -> str:
        # Hostile values are already percent-encoded where they must be (HOSTILE); queries are not.
        return "&".join(f"{quote(k)}={v if v in HOSTILE else quote(v)}" for k, v in values.items())

    cases = [{**baseline, name: value} for name in baseline for value in HOSTILE]
    cases += [{**baseline, "query": q} for q in PROMETHEUS_QUERIES if "query" in baseline]
    for values in cases:
        yield "GET", f"{path}?{encoded(values)}", {}, None
        if "POST" in methods:
            yield "POST", path, form, encoded(values).encode()
    if "POST" in methods:
        for body in (b"query=%FF%FE", b"\xff\xfe=1&query=\xff", b"query=" + b"1" * 2_000_000):
            yield "POST", path, form, body


def sweep(client: TestClient, wanted) -> tuple[list[str], int]:
    failures, sent = [], 0
    for route in routes(client):
        if not wanted(route):
            continue
        for method, url, headers, body in requests_for(route):
            headers = {**headers, "Authorization": f"Bearer {TOKEN}"}
            answer = client.request(method, url, headers=headers, content=body)
            sent += 1
            if answer.status_code >= 500 or "Traceback" in answer.text:
                failures.append(f"{method} {url[:100]} body={body[:40] if body else None!r} -> "
                                f"{answer.status_code} {answer.text[:160]}")
    return failures, sent


def test_the_sweep_covers_every_route_of_the_openapi_document(app_client: TestClient) -> None:
    swept = {route.path_format for route in routes(app_client)}
    documented = set(app_client.get("/openapi.json").json()["paths"])
    assert documented and documented <= swept
    assert {"/api/overview", "/api/automation/cases/{case_id}/approve", "/api/nodes/{name}/drain"} <= swept


def test_no_route_answers_5xx_to_hostile_input(app_client: TestClient) -> None:
    failures, sent = sweep(app_client, lambda route: not is_prometheus_api(route))
    assert sent > 500
    assert not failures, f"{len(failures)} of {sent} requests got a 5xx or a traceback:\n" + "\n".join(failures[:40])


def test_prometheus_api_answers_4xx_to_hostile_input(app_client: TestClient) -> None:
    failures, sent = sweep(app_client, is_prometheus_api)
    assert sent > 100
    assert not failures, f"{len(failures)} of {sent} requests got a 5xx or a traceback:\n" + "\n".join(failures[:40])
