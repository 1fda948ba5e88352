"""The JSON view models against the simulator's ground truth, input validation and action auth."""
from __future__ import annotations

import time

import httpx
import pytest

from tests.dashboard.fleet import NODES, TOKEN

pytestmark = pytest.mark.real_component


def get(demo, path, **params):
    return httpx.get(demo["base"] + path, params=params, timeout=20)


def truth(demo) -> dict:
    return httpx.get(demo["sim"] + "/api/fleet", timeout=10).json()


def test_overview_agrees_with_the_simulator(demo):
    view = get(demo, "/api/overview", range="15m").json()
    fleet = truth(demo)
    heat = view["heatmap"]
    assert heat["nodes"] == sorted(n["name"] for n in fleet["nodes"])
    assert heat["gpus_per_node"] == 8 and len(heat["z"]) == NODES and all(len(r) == 8 for r in heat["z"])
    assert view["kpis"]["gpus_total"] == NODES * 8
    # The simulated jobs ramp up after start: compare once a scrape has caught up with the truth.
    deadline = time.monotonic() + 30
    while True:
        power = sum(g["power_watts"] for n in fleet["nodes"] for g in n["gpus"]) / 1000
        if view["kpis"]["power_kw"] == pytest.approx(power, rel=0.25) or time.monotonic() > deadline:
            break
        time.sleep(1)
        view, fleet = get(demo, "/api/overview", range="15m").json(), truth(demo)
        heat = view["heatmap"]
    assert view["kpis"]["power_kw"] == pytest.approx(power, rel=0.25)
    # The job on each GPU is the one the simulated Slurm placed there (allowing a poll's lag).
    placed = {(n["name"], g["index"]): str(g["job_id"]) for n in fleet["nodes"] for g in n["gpus"] if g["job_id"]}
    shown = {(heat["nodes"][r], c): heat["job_ids"][j] for r, row in enumerate(heat["jobs"]) for c, j in enumerate(row)
             if j >= 0}
    agree = sum(1 for k, v in shown.items() if placed.get(k) == v)
    assert shown and agree >= 0.8 * len(shown)
    racks = {n["name"]: n["rack"] for n in fleet["nodes"]}
    assert {(g["rack"], n) for g in view["racks"] for n in g["nodes"]} == {(r, n) for n, r in racks.items()}


def test_heatmap_colours_and_compact_payload(demo):
    for colour in ("memory", "temperature", "power", "errors"):
        body = get(demo, "/api/overview", color=colour).json()
        assert body["heatmap"]["color_by"] == colour
    response = get(demo, "/api/overview")
    assert len(response.content) < 20_000  # arrays, not an object per cell


def test_jobs_and_job_page_agree_with_the_simulator(demo):
    fleet = truth(demo)
    rows = {r["job_id"]: r for r in get(demo, "/api/jobs").json()["jobs"]}
    running = [j for j in fleet["jobs"] if j["state"] == "RUNNING" and str(j["job_id"]) in rows]
    assert running
    for job in running:
        row = rows[str(job["job_id"])]
        assert (row["user"], row["name"], row["gpus"]) == (job["user"], job["name"], job["gpus_total"])
    biggest = max(running, key=lambda j: j["gpus_total"])
    view = get(demo, f"/api/jobs/{biggest['job_id']}", range="15m").json()
    assert len(view["gpus"]) == biggest["gpus_total"]
    assert view["efficiency"]["gpu_efficiency"] is not None
    truth_util = [g["utilization"] for n in fleet["nodes"] for g in n["gpus"] if g["job_id"] == biggest["job_id"]]
    assert view["efficiency"]["gpu_efficiency"] == pytest.approx(sum(truth_util) / len(truth_util), abs=0.2)
    assert get(demo, "/api/jobs", state="PENDING").json()["jobs"][0]["state"] == "PENDING"


def test_node_and_users_views(demo):
    # The demo starts with a simulated past whose faults may have taken a GPU off the bus: take a
    # node the simulator says has every GPU answering.
    name = next(node["name"] for node in truth(demo)["nodes"]
                if node["reachable"] and all(g["present"] and not g["lost"] for g in node["gpus"]))
    view = get(demo, f"/api/nodes/{name}").json()
    assert view["name"] == name and set(view["gpu_series"]["utilization"]) == {str(g) for g in range(8)}
    assert len(view["ib_ports"]) == 4 and view["scheduler"]["state"]
    assert {n["name"] for n in get(demo, "/api/nodes").json()["nodes"]} == {n["name"] for n in truth(demo)["nodes"]}
    users = get(demo, "/api/users", range="15m").json()["users"]
    # Right after start the minute-aligned subquery may not have a sample yet: shape only.
    assert all(u["gpu_hours"] >= u["gpu_hours_wasted"] >= 0 for u in users)


@pytest.mark.parametrize("path,params,status,message", [
    ("/api/overview", {"range": "forever"}, 400, "range"),
    ("/api/overview", {"range": "90d"}, 400, "between"),
    ("/api/overview", {"end": "yesterday"}, 400, "end"),
    ("/api/overview", {"color": "rainbow"}, 422, ""),
    ("/api/jobs", {"state": "DANCING"}, 400, "state"),
    ("/api/jobs/12;rm", {}, 400, "job id"),
    ("/api/jobs/999999", {}, 404, "not known"),
    ("/api/nodes/gpu-[001-999]", {}, 400, "node name"),
    ("/api/nodes/no-such-node", {}, 404, "neither"),
])
def test_bad_input_is_a_clear_4xx(demo, path, params, status, message):
    response = get(demo, path, **params)
    assert response.status_code == status, response.text
    assert message in response.text


def test_actions_need_an_operator(demo):
    node = truth(demo)["nodes"][-1]["name"]
    url = f"{demo['base']}/api/nodes/{node}/drain"
    assert httpx.post(url, json={"reason": "x"}).status_code == 401
    assert httpx.post(url, json={"reason": "x"}, headers={"Authorization": "Bearer wrong"}).status_code == 403
    assert httpx.post(url, json={"reason": "x"}, auth=("alice", "wrong")).status_code == 403
    assert httpx.get(url).status_code == 405  # no state change on GET
    form = httpx.post(url, data={"reason": "x"}, headers={"Authorization": f"Bearer {TOKEN}"})
    assert form.status_code == 415  # a cross-site form cannot act
    refused = httpx.post(url, json={"reason": ""}, headers={"Authorization": f"Bearer {TOKEN}"})
    assert refused.status_code == 400 and "reason" in refused.text
    done = httpx.post(url, json={"reason": "dashboard test"}, auth=("alice", TOKEN))
    assert done.status_code == 200, done.text
    assert done.json()["actor"] == "dashboard:alice"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        state = next(n for n in truth(demo)["nodes"] if n["name"] == node)
        if "DRAIN" in [f.upper() for f in state["state_flags"]] or "drain" in state["state"].lower():
            break
        time.sleep(0.5)
    assert state["reason"] == "dashboard test"
    resumed = httpx.post(f"{demo['base']}/api/nodes/{node}/resume", json={}, headers={"Authorization": f"Bearer {TOKEN}"})
    assert resumed.status_code == 200, resumed.text


def test_resuming_a_node_in_service_is_a_conflict_not_a_scheduler_failure(demo):
    """A node that is neither drained nor down has nothing to resume: Slurm refuses (\"Invalid node
    state specified\"), and the operator is told so with 409 and the node's state, not 502 as if
    the scheduler had failed."""
    node = next(n for n in truth(demo)["nodes"] if not n["state_flags"] and n["state"].upper() in ("IDLE", "MIXED",
                                                                                                   "ALLOCATED"))
    answer = httpx.post(f"{demo['base']}/api/nodes/{node['name']}/resume", json={},
                        headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 409, answer.text
    assert "nothing to resume" in answer.json()["detail"] and node["state"].upper() in answer.json()["detail"]


def test_large_responses_are_gzipped_when_asked(demo):
    asked = httpx.get(demo["base"] + "/api/overview", headers={"Accept-Encoding": "gzip"})
    plain = httpx.get(demo["base"] + "/api/overview", headers={"Accept-Encoding": "identity"})
    assert asked.headers["content-encoding"] == "gzip" and "content-encoding" not in plain.headers
    assert int(asked.headers["content-length"]) < len(plain.content) / 2
    assert asked.json()["kpis"]["gpus_total"] == plain.json()["kpis"]["gpus_total"]  # httpx inflates it
