"""The Prometheus HTTP API: JSON and error shapes, GET and Grafana-style POST forms, and the
local and HTTP query clients giving the same results."""
import math

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.tsdb.helpers import load
from tsdb.api import build_router
from tsdb.client import HTTPQueryClient, LocalQueryClient, QueryError
from tsdb.promql.engine import Engine

STORE = load({
    'gpu_util{instance="n1",gpu="0"}': "0+0.1x10",
    'gpu_util{instance="n2",gpu="0"}': "1 NaN 0.5x8",
    'up{instance="n1",job="cw"}': "1x10",
})
ENGINE = Engine(STORE)


@pytest.fixture(scope="module")
def http() -> TestClient:
    app = FastAPI()
    app.include_router(build_router(
        ENGINE, STORE, targets=lambda: [{"labels": {"instance": "n1"}, "health": "up"}],
        metadata=lambda: {"gpu_util": [{"type": "gauge", "help": "GPU utilization", "unit": ""}]}))
    return TestClient(app)


def test_instant_query_get_and_post_form(http: TestClient) -> None:
    expected = {"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": {"__name__": "gpu_util", "gpu": "0", "instance": "n1"}, "value": [120, "0.2"]}]}}
    assert http.get("/api/v1/query", params={"query": 'gpu_util{instance="n1"}', "time": "120"}).json() == expected
    posted = http.post("/api/v1/query", data={"query": 'gpu_util{instance="n1"}', "time": "1970-01-01T00:02:00Z"})
    assert posted.json() == expected


# Spellings a real Prometheus 2.42 gave for these values (its web/api/v1 marshalValue: Go's
# shortest 'f' form, but 'e' below 1e-6 and from 1e21); a scalar answer is always 'f'.
SPELLINGS = [("1e-7", "1e-07"), ("9.99e-7", "9.99e-07"), ("-2.5e-9", "-2.5e-09"), ("5e-324", "5e-324"),
             ("1.5e300", "1.5e+300"), ("1e21", "1e+21"), ("1e20", "100000000000000000000"), ("1e-6", "0.000001"),
             ("0.0000012", "0.0000012"), ("123456789.123", "123456789.123"), ("-0.5", "-0.5")]


@pytest.mark.parametrize("literal, text", SPELLINGS)
def test_sample_values_are_spelled_as_prometheus_spells_them(http: TestClient, literal: str, text: str) -> None:
    instant = http.get("/api/v1/query", params={"query": f"vector({literal})", "time": "60"}).json()
    assert instant["data"]["result"][0]["value"] == [60, text]
    ranged = http.get("/api/v1/query_range", params={"query": literal, "start": "0", "end": "60", "step": "60"}).json()
    assert ranged["data"]["result"][0]["values"] == [[0, text], [60, text]]
    scalar = http.get("/api/v1/query", params={"query": literal, "time": "60"}).json()["data"]["result"]
    assert float(scalar[1]) == float(literal) and "e" not in scalar[1]


def test_range_query_shape_and_special_values(http: TestClient) -> None:
    body = http.post("/api/v1/query_range", data={"query": 'gpu_util{instance="n2"}', "start": "0",
                                                   "end": "120", "step": "1m"}).json()
    assert body["data"]["resultType"] == "matrix"
    assert body["data"]["result"][0]["values"] == [[0, "1"], [60, "NaN"], [120, "0.5"]]
    scalar = http.get("/api/v1/query", params={"query": "1/0", "time": "1.5"}).json()
    assert scalar["data"] == {"resultType": "scalar", "result": [1.5, "+Inf"]}


@pytest.mark.parametrize("path, params, status, error_type", [
    ("/api/v1/query", {"query": "sum(gpu_util"}, 400, "bad_data"),
    ("/api/v1/query", {}, 400, "bad_data"),
    ("/api/v1/query", {"query": "gpu_util", "time": "yesterday"}, 400, "bad_data"),
    ("/api/v1/query", {"query": "gpu_util + on() gpu_util", "time": "60"}, 422, "execution"),
    ("/api/v1/query_range", {"query": "gpu_util", "start": "0", "end": "60", "step": "0"}, 400, "bad_data"),
    ("/api/v1/query_range", {"query": "gpu_util", "start": "0", "step": "10"}, 400, "bad_data"),
    ("/api/v1/series", {}, 400, "bad_data"),
])
def test_error_shape(http: TestClient, path: str, params: dict, status: int, error_type: str) -> None:
    response = http.post(path, data=params)
    assert response.status_code == status
    body = response.json()
    assert body["status"] == "error" and body["errorType"] == error_type and body["error"]


def test_series_labels_values_targets_metadata(http: TestClient) -> None:
    series = http.get("/api/v1/series", params=[("match[]", "gpu_util"), ("match[]", "up")]).json()["data"]
    assert {s["instance"] for s in series} == {"n1", "n2"} and len(series) == 3
    assert http.get("/api/v1/labels").json()["data"] == ["__name__", "gpu", "instance", "job"]
    assert http.get("/api/v1/labels", params={"match[]": "up"}).json()["data"] == ["__name__", "instance", "job"]
    assert http.get("/api/v1/label/instance/values").json()["data"] == ["n1", "n2"]
    assert http.get("/api/v1/label/__name__/values").json()["data"] == ["gpu_util", "up"]
    assert http.get("/api/v1/targets").json()["data"]["activeTargets"][0]["health"] == "up"
    assert http.get("/api/v1/metadata").json()["data"]["gpu_util"][0]["type"] == "gauge"
    assert http.get("/api/v1/status/buildinfo").json()["status"] == "success"


QUERIES = ["gpu_util", "avg by (instance) (gpu_util)", "rate(gpu_util[5m])", "gpu_util[2m]", "time()", '"s"',
           "gpu_util > 0.3", "sort_desc(gpu_util)", "count_values(\"v\", gpu_util)"]


@pytest.mark.parametrize("query", QUERIES)
def test_local_and_http_clients_agree(http: TestClient, query: str) -> None:
    local, remote = LocalQueryClient(ENGINE), HTTPQueryClient("http://testserver", client=http)
    for run in (lambda c: c.instant(query, 300), lambda c: c.range(query, 0, 600, 60)):
        try:
            a = run(local)
        except QueryError as exc:
            with pytest.raises(QueryError) as caught:
                run(remote)
            assert (caught.value.error_type, caught.value.message) == (exc.error_type, exc.message)
            continue
        b = run(remote)
        assert (a.result_type, a.string, a.timestamp) == (b.result_type, b.string, b.timestamp)
        assert a.scalar == b.scalar or math.isnan(a.scalar) and math.isnan(b.scalar)
        assert [(s.labels, s.timestamps) for s in a.series] == [(s.labels, s.timestamps) for s in b.series]
        for sa, sb in zip(a.series, b.series):
            assert all(x == y or (math.isnan(x) and math.isnan(y)) for x, y in zip(sa.values, sb.values))


def test_bad_query_raises_one_error_type_from_both_clients(http: TestClient) -> None:
    for client in (LocalQueryClient(ENGINE), HTTPQueryClient("http://testserver", client=http)):
        with pytest.raises(QueryError) as caught:
            client.instant("sum(", 10)
        assert caught.value.error_type == "bad_data" and "parse error" in caught.value.message


def test_label_columns_read_the_same_from_both_clients_and_are_remembered_for_the_engines_label_sets(
        http: TestClient) -> None:
    from tsdb.results import QueryResult

    local, remote = LocalQueryClient(ENGINE), HTTPQueryClient("http://testserver", client=http)
    for client in (local, remote):
        result = client.instant("gpu_util or up", 300)
        rows = zip(result.label_column("instance"), result.label_column("job"), result.label_ints("gpu").tolist())
        assert sorted(rows, key=str) == [("n1", "cw", -1), ("n1", None, 0), ("n2", None, 0)]
    many = [{"gpu": str(i)} for i in range(70)] + [{"gpu": "x"}, {}, {"gpu": "9" * 30}]
    column = QueryResult.of_vector(many, [1.0] * len(many), 10.0).label_ints("gpu", missing=-7)
    assert column.tolist() == list(range(70)) + [-7, -7, -7]
    present = QueryResult.of_vector(many + [{"gpu": ""}], [1.0] * (len(many) + 1), 10.0).label_present("gpu")
    assert present.tolist() == [True] * 71 + [False, True, False]
    shared = [QueryResult.of_vector(many, [1.0] * len(many), 10.0, shared_labels=True) for _ in range(2)]
    for read in (lambda r: r.label_column("gpu"), lambda r: r.label_ints("gpu"), lambda r: r.label_present("gpu")):
        assert read(shared[0]) is read(shared[1])  # the same label sets: read once


def test_clients_say_whether_concurrent_queries_help_and_an_in_memory_engine_takes_series_and_rule_output(
        http: TestClient) -> None:
    from tsdb.client import QueryClient, in_memory_engine

    assert not LocalQueryClient(ENGINE).concurrent_queries and not LocalQueryClient(ENGINE).decodes_results
    assert HTTPQueryClient("http://testserver", client=http).concurrent_queries
    assert HTTPQueryClient("http://testserver", client=http).decodes_results
    engine = in_memory_engine()
    assert isinstance(engine.query, QueryClient)
    engine.load((("__name__", "gpu_util"), ("gpu", "0")), [0, 60_000], [0.5, 0.25])
    with pytest.raises(ValueError, match="already exists"):
        engine.load((("__name__", "gpu_util"), ("gpu", "0")), [120_000], [1.0])
    engine.write("rules", 60_000, [((("__name__", "gpu:util:x2"), ("gpu", "0")), 0.5)])
    answer = engine.query.instant("gpu_util * 2 == on(gpu) gpu:util:x2", 60)
    assert [(labels, value) for labels, value in answer.samples()] == [({"gpu": "0"}, 0.5)]


def test_matrix_answers_encode_as_their_json() -> None:
    # A range answer is encoded straight from its arrays; it must read exactly as to_json() renders.
    import json

    import numpy as np

    from tsdb.results import QueryResult

    values = np.array([0.0, -0.0, 1.0, -3.5, 1e15, 9.99e15, 1e16, 1e-4, 1.5e-5, 0.1 + 0.2, np.nan, np.inf, -np.inf,
                       2.0 ** 53, 1e300, 5e-324, 123.456])
    times = np.arange(len(values)) * 1.5 + 1_700_000_000.001
    result = QueryResult.of_matrix([({"a": "x\"y", "é": "ü"}, times, values), ({}, times[:2], values[:2])])
    encoded = b"".join(result.data_json())
    assert json.loads(encoded) == json.loads(json.dumps(QueryResult.of_matrix(
        [({"a": "x\"y", "é": "ü"}, times, values), ({}, times[:2], values[:2])]).to_json()))
    assert b'"-0"' in encoded and b'"+Inf"' in encoded and b'"10000000000000000"' in encoded and b"1700000000.001" in encoded


# Hostile inputs: each a 4xx in Prometheus's error shape, with its message where it has one
# (issue 14, finding 10). (path, params or raw form body, status, errorType, part of the message)
NESTED = "(" * 1000 + "1" + ")" * 1000
HOSTILE = [
    ("/api/v1/query", {"query": "up", "time": "1e300"}, 400, "bad_data",
     'invalid parameter "time": cannot parse "1e300" to a valid timestamp'),
    ("/api/v1/query", {"query": "up", "time": str(2**70)}, 400, "bad_data", "to a valid timestamp"),
    ("/api/v1/query", {"query": "up", "time": "NaN"}, 400, "bad_data", 'cannot parse "NaN" to a valid timestamp'),
    ("/api/v1/query", {"query": "up", "time": "-Inf"}, 400, "bad_data", "to a valid timestamp"),
    ("/api/v1/query", {"query": "year()", "time": "9e15"}, 200, None, ""),  # far future, still a time
    ("/api/v1/query_range", {"query": "up", "start": "0", "end": "100", "step": "NaN"}, 400, "bad_data",
     'invalid parameter "step": zero or negative query resolution step widths are not accepted'),
    ("/api/v1/query_range", {"query": "up", "start": "0", "end": "100", "step": "-1"}, 400, "bad_data",
     'invalid parameter "step": zero or negative query resolution step widths are not accepted'),
    ("/api/v1/query_range", {"query": "up", "start": "0", "end": "100", "step": "inf"}, 400, "bad_data",
     'invalid parameter "step": cannot parse "inf" to a valid duration. It overflows int64'),
    ("/api/v1/query_range", {"query": "up", "start": "0", "end": "100", "step": "1e300"}, 400, "bad_data",
     "It overflows int64"),
    ("/api/v1/query_range", {"query": "up", "start": "-1e300", "end": "100", "step": "10"}, 400, "bad_data",
     'invalid parameter "start": cannot parse "-1e300" to a valid timestamp'),
    ("/api/v1/query_range", {"query": "up", "start": "0", "end": "1e19", "step": "1e15"}, 400, "bad_data",
     'invalid parameter "end": cannot parse "1e19" to a valid timestamp'),
    ("/api/v1/query_range", {"query": "up", "start": "8.99e15", "end": "9e15", "step": "9e9"}, 200, None, ""),
    ("/api/v1/query_range", {"query": "up", "start": "0", "end": "9e15", "step": "1e12"}, 400, "bad_data",
     'invalid parameter "step": cannot parse "1e12" to a valid duration. It overflows int64'),
    ("/api/v1/query", {"query": "up @ 1e18", "time": "60"}, 400, "bad_data", "parse error"),
    ("/api/v1/query", {"query": "up @ 1e12", "time": "60"}, 400, "bad_data",
     "parse error: timestamp out of bounds for @ modifier"),
    ("/api/v1/query", {"query": "up @ -1", "time": "60"}, 400, "bad_data",
     "parse error: timestamp out of bounds for @ modifier"),
    ("/api/v1/query", {"query": "up offset 1000000y", "time": "60"}, 400, "bad_data",
     "parse error: duration out of range"),
    ("/api/v1/query", {"query": "rate(up[1000000y])", "time": "60"}, 400, "bad_data",
     "parse error: duration out of range"),
    ("/api/v1/query", {"query": "up offset 1e300s", "time": "60"}, 400, "bad_data", "parse error"),
    ("/api/v1/query", {"query": NESTED, "time": "60"}, 400, "bad_data", "nested too deeply"),
    ("/api/v1/query", b"query=up\xff\xfe&time=60", 400, "bad_data", "parse error: unexpected character"),
    ("/api/v1/query", b"\xff\xfe=1&query=\xff", 400, "bad_data", "parse error"),
    ("/api/v1/query", b"query=%FF%FE&time=60", 400, "bad_data", "parse error"),
    ("/api/v1/series", b"\xff\xfe=1&match[]=\xff", 400, "bad_data", 'invalid parameter "match[]"'),
    ("/api/v1/series", {"match[]": "up + 1"}, 400, "bad_data", 'invalid parameter "match[]"'),
    ("/api/v1/series", {"match[]": "rate(up[5m])"}, 400, "bad_data", 'invalid parameter "match[]"'),
    ("/api/v1/series", {"match[]": "sum("}, 400, "bad_data", 'invalid parameter "match[]": parse error'),
    ("/api/v1/series", {"match[]": "up", "start": "nan"}, 400, "bad_data",
     'invalid parameter "start": cannot parse "nan" to a valid timestamp'),
    ("/api/v1/labels", {"match[]": "up", "end": "1e300"}, 400, "bad_data",
     'invalid parameter "end": cannot parse "1e300" to a valid timestamp'),
    ("/api/v1/label/job/values", {"start": "inf"}, 400, "bad_data", 'invalid parameter "start"'),
    ("/api/v1/metadata", {"limit": "99999999999999999999999"}, 400, "bad_data", "limit must be a number"),
    ("/api/v1/metadata", {"limit": "ten"}, 400, "bad_data", "limit must be a number"),
    ("/api/v1/metadata", {"limit": "-5"}, 200, None, ""),  # Prometheus: no limit
    ("/api/v1/query", {"query": "up", "time": "60", "timeout": "nan"}, 400, "bad_data",
     'invalid parameter "timeout"'),
    ("/api/v1/query", {"query": "up", "time": "60", "timeout": "1e300"}, 400, "bad_data",
     'invalid parameter "timeout": cannot parse "1e300" to a valid duration. It overflows int64'),
    ("/api/v1/query", {"query": "up", "time": "60", "timeout": "-1"}, 400, "bad_data",
     'invalid parameter "timeout": zero or negative'),
    ("/api/v1/query", {"query": "up", "time": "60", "timeout": "10s"}, 200, None, ""),
]


@pytest.mark.parametrize("path, params, status, error_type, message", HOSTILE)
def test_hostile_inputs_are_4xx_in_prometheus_shape(http: TestClient, path: str, params: dict | bytes, status: int,
                                                     error_type: str | None, message: str) -> None:
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    answers = [http.post(path, content=params, headers=form)] if isinstance(params, bytes) else \
        [http.get(path, params=params), http.post(path, data=params)]
    for response in answers:
        assert response.status_code == status, response.text
        body = response.json()
        if error_type is None:
            assert body["status"] == "success"
            continue
        assert (body["status"], body["errorType"]) == ("error", error_type)
        assert message in body["error"], body["error"]


# 3,000 series of one point each with a long label: an answer over 1 MiB, which is streamed.
LARGE = 'label_replace(count_values("t", vector(time())), "pad", "' + "p" * 400 + '", "", "")'


@pytest.mark.parametrize("query, end, streamed", [("vector(1)", 10, False), ("vector(1)", 2999, False),
                                                  (LARGE, 2999, True)], ids=["small", "large", "streamed"])
def test_answers_are_gzipped_for_a_client_that_accepts_it(http: TestClient, query: str, end: int,
                                                          streamed: bool) -> None:
    """As Prometheus's: a range answer over a thousand GPUs is megabytes of repetitive JSON."""
    params = {"query": query, "start": "0", "end": str(end), "step": "1"}
    plain = http.get("/api/v1/query_range", params=params, headers={"Accept-Encoding": "identity"})
    packed = http.get("/api/v1/query_range", params=params, headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in plain.headers
    assert packed.json() == plain.json() and packed.json()["status"] == "success"
    big = len(plain.content) >= 1024
    assert packed.headers.get("content-encoding") == ("gzip" if big else None)
    assert ("content-length" not in plain.headers) == streamed
    if big:  # httpx decoded it; the wire carried much less
        assert packed.num_bytes_downloaded < len(plain.content) / 3
