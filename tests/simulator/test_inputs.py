"""Bad input to the simulator's API is refused with the field named, never hangs or crashes it.

Finding 14 of issue 14: ``POST /api/clock/advance {"seconds": 1e300}`` looped forever, and fault
parameters the simulated hardware does not have (XID 2**70, NVLink 999) were accepted. Every
request below must be answered at once (a 422 naming the field, or 400 for a body that is not
JSON at all), leave the simulation as it was, and leave the server answering the next request.
"""
from __future__ import annotations

import json
import socket

import httpx
import pytest

from simulator.fleet import Fleet
from simulator.server import SimulatorHTTPServer

T0 = 1_800_000_000.0
TIMEOUT = 30.0  # generous: a refusal is immediate; only a hang would take this long


@pytest.fixture(scope="module")
def served():
    fleet = Fleet(nodes=3, gpus_per_node=8, ib_ports=4, seed=5, speed=0, start=T0)
    server = SimulatorHTTPServer(("127.0.0.1", 0), fleet)
    server.start_in_thread()
    yield fleet, server.base_url
    server.shutdown()
    fleet.stop()


def post(url: str, body: object) -> httpx.Response:
    return httpx.post(url, content=json.dumps(body), timeout=TIMEOUT)


def assert_refused(response: httpx.Response, field: str, *words: str) -> None:
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error.startswith(f"{field}:"), error
    for word in words:
        assert word in error, error
    assert len(error) < 500  # a huge bad value is not echoed back whole


BAD_ADVANCES = [
    ({"seconds": 1e300}, ("86400",)),
    ({"seconds": 10**400}, ("86400",)),  # a JSON integer no float can hold
    ({"seconds": 86400.5}, ("86400",)),
    ({"seconds": -1}, ()),
    ({"seconds": "NaN"}, ()),
    ({"seconds": "5m"}, ()),
    ({"seconds": True}, ()),
    ({"seconds": None}, ()),
    ({}, ()),
    ([600], ()),
]


@pytest.mark.parametrize(("body", "words"), BAD_ADVANCES, ids=[json.dumps(b)[:40] for b, _ in BAD_ADVANCES])
def test_a_bad_clock_advance_is_refused_and_time_stays(served, body, words):
    fleet, url = served
    before = fleet.clock.now()
    assert_refused(post(f"{url}/api/clock/advance", body), "seconds", *words)
    assert fleet.clock.now() == before


@pytest.mark.parametrize("text", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_json_numbers_are_refused(served, text):
    fleet, url = served
    response = httpx.post(f"{url}/api/clock/advance", content=f'{{"seconds": {text}}}', timeout=TIMEOUT)
    assert_refused(response, "seconds")


def test_the_largest_advance_is_accepted(served):
    fleet, url = served
    before = fleet.clock.now()
    response = post(f"{url}/api/clock/advance", {"seconds": 86400})
    assert response.status_code == 200
    assert response.json()["now"] == pytest.approx(before + 86400)


HUGE = "x" * 200_000
BAD_FAULTS = [
    # (body, the field named)
    ({"kind": "xid", "node": "gpu-001", "gpu": 0, "xid": 2**70}, "xid"),
    ({"kind": "xid", "node": "gpu-001", "gpu": 0, "xid": 0}, "xid"),
    ({"kind": "xid", "node": "gpu-001", "gpu": 0, "xid": -13}, "xid"),
    ({"kind": "xid", "node": "gpu-001", "gpu": 0, "xid": 13.5}, "xid"),
    ({"kind": "xid", "node": "gpu-001", "gpu": 0, "xid": "79"}, "xid"),
    ({"kind": "xid", "node": "gpu-001", "gpu": 0, "xid": True}, "xid"),
    ({"kind": "xid", "node": "gpu-001", "gpu": 8, "xid": 79}, "gpu"),
    ({"kind": "xid", "node": "gpu-001", "gpu": -1, "xid": 79}, "gpu"),
    ({"kind": "xid", "node": "gpu-001", "gpu": 2**70, "xid": 79}, "gpu"),
    ({"kind": "xid", "node": "gpu-001", "xid": 79}, "gpu"),
    ({"kind": "xid", "node": "gpu-999", "gpu": 0, "xid": 79}, "node"),
    ({"kind": "xid", "node": HUGE, "gpu": 0, "xid": 79}, "node"),
    ({"kind": "xid", "node": ["gpu-001"], "gpu": 0, "xid": 79}, "node"),
    ({"kind": "xid", "node": {"name": "gpu-001"}, "gpu": 0, "xid": 79}, "node"),
    ({"kind": HUGE, "node": "gpu-001"}, "kind"),
    ({"kind": ["xid"], "node": "gpu-001"}, "kind"),
    ({"node": "gpu-001"}, "kind"),
    ({"kind": "nvlink_errors", "node": "gpu-001", "gpu": 0, "link": 999}, "link"),
    ({"kind": "nvlink_errors", "node": "gpu-001", "gpu": 0, "link": 18}, "link"),
    ({"kind": "nvlink_errors", "node": "gpu-001", "gpu": 0, "link": -1}, "link"),
    ({"kind": "nvlink_errors", "node": "gpu-001", "gpu": 0, "link": "3"}, "link"),
    ({"kind": "nvlink_errors", "node": "gpu-001", "gpu": 0, "rate": 2**70}, "rate"),
    ({"kind": "nvlink_errors", "node": "gpu-001", "gpu": 0, "rate": 0}, "rate"),
    ({"kind": "ecc", "node": "gpu-001", "gpu": 0, "count": 2**70}, "count"),
    ({"kind": "ecc", "node": "gpu-001", "gpu": 0, "type": HUGE}, "type"),
    ({"kind": "row_remap", "node": "gpu-001", "gpu": 0, "state": "maybe"}, "state"),
    ({"kind": "thermal", "node": "gpu-001", "gpu": 0, "temperature": 1e300}, "temperature"),
    ({"kind": "thermal", "node": "gpu-001", "gpu": 0, "temperature": "hot"}, "temperature"),
    ({"kind": "ib_link_down", "node": "gpu-001", "port": 0}, "port"),
    ({"kind": "ib_link_down", "node": "gpu-001", "port": 5}, "port"),
    ({"kind": "ib_link_down", "node": "gpu-001", "port": 999}, "port"),
    ({"kind": "ib_flapping", "node": "gpu-001", "port": 1, "period": 0}, "period"),
    ({"kind": "ib_flapping", "node": "gpu-001", "port": 1, "period": "99999999y"}, "period"),
    ({"kind": "ib_flapping", "node": "gpu-001", "port": 1, "period": "NaN"}, "period"),
    ({"kind": "ib_flapping", "node": "gpu-001", "port": 1, "period": HUGE}, "period"),
    ({"kind": "ib_symbol_errors", "node": "gpu-001", "port": 1, "rate": 10**30}, "rate"),
    ({"kind": "disk_full", "node": "gpu-001", "mountpoint": "/nonexistent"}, "mountpoint"),
    ({"kind": "disk_full", "node": "gpu-001", "mountpoint": HUGE}, "mountpoint"),
    ({"kind": "disk_full", "node": "gpu-001", "mountpoint": 7}, "mountpoint"),
    ({"kind": "thermal", "node": "gpu-001", "gpu": 0, "duration": "99999999y"}, "duration"),
    ({"kind": "thermal", "node": "gpu-001", "gpu": 0, "duration": 0}, "duration"),
    ({"kind": "thermal", "node": "gpu-001", "gpu": 0, "duration": "Infinity"}, "duration"),
    ({"kind": "thermal", "node": "gpu-001", "gpu": 0, "duration": [1]}, "duration"),
    ({"kind": "xid", "node": "gpu-001", "gpu": 0, "xid": 79, "duration": "5m"}, "duration"),
    ({"kind": "node_down", "node": "gpu-001", "color": "red"}, "color"),
    ({"kind": "node_down", "node": "gpu-001", "gpu": 0}, "gpu"),
]


@pytest.mark.parametrize(("body", "field"), BAD_FAULTS, ids=[json.dumps(b)[:60] for b, _ in BAD_FAULTS])
def test_a_fault_the_simulated_hardware_cannot_have_is_refused(served, body, field):
    fleet, url = served
    before = len(fleet.faults.all())
    assert_refused(post(f"{url}/api/faults", body), field)
    assert len(fleet.faults.all()) == before


def test_a_huge_unknown_parameter_name_is_refused_without_echoing_it(served):
    fleet, url = served
    response = post(f"{url}/api/faults", {"kind": "node_down", "node": "gpu-001", HUGE: 1})
    assert response.status_code == 422 and "not a parameter" in response.json()["error"]
    assert len(response.json()["error"]) < 500


def test_every_fault_kind_at_its_limits_is_accepted(served):
    fleet, url = served
    node = "gpu-003"
    good = [
        {"kind": "xid", "node": node, "gpu": 7, "xid": 999},
        {"kind": "nvlink_errors", "node": node, "gpu": 7, "link": 17, "rate": 1_000_000},
        {"kind": "ecc", "node": node, "gpu": 6, "type": "corrected", "count": 1_000_000},
        {"kind": "ib_flapping", "node": node, "port": 4, "period": "1d"},
        {"kind": "ib_symbol_errors", "node": node, "port": 1, "rate": 1_000_000},
        {"kind": "disk_full", "node": node, "mountpoint": "/raid"},
        {"kind": "thermal", "node": node, "gpu": 0, "temperature": 120, "duration": "365d"},
        {"kind": "exporter_restart", "node": node},
    ]
    for body in good:
        response = post(f"{url}/api/faults", body)
        assert response.status_code == 201, (body, response.text)
    assert httpx.get(f"{url}/nodes/{node}/metrics", timeout=TIMEOUT).status_code == 200


MALFORMED = [
    (b"{not json", "not JSON"),
    (b"\xff\xfe{}", "not JSON"),
    (b"[" * 100_000 + b"]" * 100_000, "not JSON"),
]


@pytest.mark.parametrize(("raw", "words"), MALFORMED, ids=["syntax", "not utf-8", "nested 100000 deep"])
def test_a_body_that_is_not_json_is_a_400(served, raw, words):
    fleet, url = served
    for path in ("/api/faults", "/api/clock/advance", "/slurm/squeue"):
        response = httpx.post(f"{url}{path}", content=raw, timeout=TIMEOUT)
        assert response.status_code == 400 and words in response.json()["error"], response.text


@pytest.mark.parametrize("length", ["-1", "abc", "1e3", "99999999999999999999"])
def test_a_bad_content_length_is_refused_at_once(served, length):
    fleet, url = served
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=TIMEOUT) as conn:
        conn.sendall(f"POST /api/faults HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n{{}}".encode())
        status = conn.recv(4096).split(b"\r\n", 1)[0]
    assert status.split()[1] in (b"400", b"413"), status
    assert httpx.get(f"{url}/-/healthy", timeout=TIMEOUT).status_code == 200


@pytest.mark.parametrize("fault_id", ["²", "9" * 5000, "-1", "1.0"])
def test_a_bad_fault_id_is_a_404(served, fault_id):
    fleet, url = served
    assert httpx.delete(f"{url}/api/faults/{fault_id}", timeout=TIMEOUT).status_code == 404


def test_the_server_still_answers_after_every_bad_request(served):
    fleet, url = served
    assert httpx.get(f"{url}/-/healthy", timeout=TIMEOUT).json()["status"] == "ok"
    assert httpx.get(f"{url}/nodes/gpu-001/metrics", timeout=TIMEOUT).status_code == 200
