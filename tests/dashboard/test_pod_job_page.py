"""A Kubernetes pod is a job on the dashboard (docs/operations.md, "What job_id is on Kubernetes"):
the overview's heatmap links a GPU held by a pod to ``/jobs/<namespace>/<pod>``, and that page,
its JSON and its Continuity section answer, from the exporter's ``gpu_job_info`` alone (pods have
no scheduler record). Slurm jobs' pages, beside them, are unchanged."""
from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from cwkernel.server import build_app
from dashboard.component import dashboard_component
from dashboard.context import DashboardContext
from tests.dashboard.pod_jobs import (
    END,
    ENDED_AT,
    ENDED_POD,
    RUNNING_POD,
    STEP,
    T0,
    pod_store,
)
from tsdb.client import LocalQueryClient
from tsdb.promql.engine import Engine


@pytest.fixture(scope="module")
def client():
    ctx = DashboardContext(LocalQueryClient(Engine(pod_store())), clock=lambda: END)
    with TestClient(build_app([dashboard_component(ctx)])) as client:
        yield client


@pytest.mark.parametrize("path", ["/api/jobs/team-a/trainer-0", "/api/jobs/team-a%2Ftrainer-0"])
def test_a_running_pods_page_shows_its_gpus_from_the_exporter(client, path):
    response = client.get(path + "?range=1h")
    assert response.status_code == 200, response.text
    view = response.json()
    job = view["job"]
    assert (job["job_id"], job["namespace"], job["pod"], job["state"]) == (RUNNING_POD, "team-a", "trainer-0", "RUNNING")
    assert job["nodes"] == ["k1"] and job["gpu_indices"] == {"k1": [0, 1, 2, 3]} and job["gpus"] == 4
    assert job["start_time"] == T0 and job["end_time"] is None
    assert [(g["node"], g["gpu"]) for g in view["gpus"]] == [("k1", g) for g in range(4)]
    assert view["efficiency"]["gpu_efficiency"] == pytest.approx(0.9, abs=0.01)


def test_an_ended_pods_page_shows_when_it_was_last_seen(client):
    view = client.get("/api/jobs/team-b/eval.job-7?range=1h").json()
    job = view["job"]
    assert job["state"] == "ENDED" and job["gpus"] == 2
    assert job["end_time"] == pytest.approx(T0 + (ENDED_AT - 1) * STEP)
    assert max(view["timestamps"]) <= job["end_time"] + STEP


@pytest.mark.parametrize("path", ["/jobs/team-a/trainer-0", "/jobs/team-a%2Ftrainer-0"])
def test_the_overviews_link_to_a_pod_opens_its_page(client, path):
    response = client.get(path, headers={"Accept": "text/html"})
    assert response.status_code == 200, response.text
    assert "trainer-0" in response.text and 'data-api="/api/jobs/team-a/trainer-0"' in response.text


def test_a_pods_continuity_says_why_it_has_none(client):
    body = client.get("/api/jobs/team-a/trainer-0/continuity?range=1h").json()
    assert body["job_id"] == RUNNING_POD and body["account"] is None
    assert any("Kubernetes" in note for note in body["notes"])


def test_a_slurm_jobs_pages_are_unchanged_beside_pods(client):
    assert client.get("/api/jobs/123?range=1h").json()["job"]["pod"] == ""
    assert client.get("/api/jobs/123/continuity?range=1h").status_code == 200
    assert client.get("/jobs/123").status_code == 200


@pytest.mark.parametrize("path", ["/api/jobs/Team_A/trainer-0", "/api/jobs/team-a/-x", "/jobs/team-a/a%22b",
                                  "/api/jobs/" + "a" * 64 + "/p"])
def test_a_malformed_pod_id_is_refused_with_a_clear_error(client, path):
    response = client.get(path)
    assert response.status_code == 400 and "pod" in response.json()["detail"]


def test_an_unknown_pod_is_not_found(client):
    response = client.get("/api/jobs/team-a/nobody?range=1h")
    assert response.status_code == 404 and "team-a/nobody" in response.json()["detail"]


def test_the_jobs_list_shows_the_pods_that_held_gpus_in_the_range_beside_slurm_jobs(client):
    rows = {row["job_id"]: row for row in client.get("/api/jobs?range=1h").json()["jobs"]}
    assert set(rows) == {"123", RUNNING_POD, ENDED_POD}
    running, ended = rows[RUNNING_POD], rows[ENDED_POD]
    assert (running["state"], running["gpus"], running["nodes"], running["name"]) == ("RUNNING", 4, ["k1"], "trainer-0")
    assert running["mean_utilization"] == pytest.approx(0.9, abs=0.01)
    assert (ended["state"], ended["gpus"], ended["mean_utilization"]) == ("ENDED", 2, None)
    only_ended = client.get("/api/jobs?range=1h&state=ended").json()["jobs"]
    assert [row["job_id"] for row in only_ended] == [ENDED_POD]


def test_a_pod_that_ended_before_the_range_is_not_listed(client):
    rows = client.get(f"/api/jobs?range=5m&end={END}").json()["jobs"]
    assert ENDED_POD not in {row["job_id"] for row in rows} and RUNNING_POD in {row["job_id"] for row in rows}


def test_the_users_page_bills_pods_to_their_namespace(client):
    rows = {(row["user"], row["account"]): row for row in client.get("/api/users?range=1h").json()["users"]}
    assert rows[("(unknown)", "team-a")]["gpu_hours"] == pytest.approx(4.0, rel=0.05)  # 4 GPUs, the whole hour
    assert rows[("(unknown)", "team-b")]["jobs"] == 1 and ("(unknown)", "") not in rows


def test_an_idle_gpu_two_pods_share_is_billed_to_both_and_the_page_answers():
    """Kubernetes GPU sharing (time-slicing): two pods on one GPU are two ``gpu_job_info`` series
    for it. The users page joined its idle GPUs to them with ``group_left``: duplicate series for
    the match group, and the page answered 502 for everyone while the shared GPU was idle."""
    store = pod_store()
    stamps = [round((T0 + i * STEP) * 1000) for i in range(240)]
    for pod in ("a", "b"):
        store.append_series(tuple(sorted({"__name__": "gpu_job_info", "instance": "k3", "gpu": "0", "job_id": f"team-c/{pod}",
                                          "namespace": "team-c", "pod": pod, "source": "kubelet"}.items())), stamps, [1.0] * 240)
    store.append_series((("__name__", "gpu_utilization_ratio"), ("gpu", "0"), ("instance", "k3")), stamps, [0.0] * 240)
    ctx = DashboardContext(LocalQueryClient(Engine(store)), clock=lambda: END)
    with TestClient(build_app([dashboard_component(ctx)])) as client:
        response = client.get("/api/users?range=1h")
    assert response.status_code == 200, response.text
    row = {(r["user"], r["account"]): r for r in response.json()["users"]}[("(unknown)", "team-c")]
    assert row["jobs"] == 2 and row["gpu_hours_wasted"] == pytest.approx(2.0, rel=0.05)  # an idle hour each

