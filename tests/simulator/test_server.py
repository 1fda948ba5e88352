"""The simulator over HTTP: node metrics, ground truth, faults API, Slurm face, file_sd; and a real
Prometheus scraping the whole fleet through the generated file_sd."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from simulator.fleet import Fleet
from simulator.server import SimulatorHTTPServer
from tests.exporter.helpers import parse_exposition, sample
from tests.realcomponents import free_port, require_binary, wait_http

T0 = 1_800_000_000.0


@pytest.fixture
def served():
    fleet = Fleet(nodes=5, seed=11, speed=0, start=T0)
    server = SimulatorHTTPServer(("127.0.0.1", 0), fleet)
    server.start_in_thread()
    yield fleet, server.base_url
    server.shutdown()
    fleet.stop()


def test_node_metrics_and_ground_truth(served):
    fleet, url = served
    response = httpx.get(f"{url}/nodes/gpu-002/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    samples = parse_exposition(response.text)
    truth = httpx.get(f"{url}/api/fleet").json()
    node = next(n for n in truth["nodes"] if n["name"] == "gpu-002")
    gpu = node["gpus"][0]
    assert sample(samples, "gpu_up", gpu=0, uuid=gpu["uuid"]) == 1
    assert sample(samples, "gpu_utilization_ratio", gpu=0, uuid=gpu["uuid"]) == pytest.approx(gpu["utilization"])
    assert {"name", "gpus", "state", "state_flags", "reason"} <= set(node)
    assert {"job_id", "state", "user", "nodes", "gpus"} <= set(truth["jobs"][0])
    assert httpx.get(f"{url}/nodes/gpu-999/metrics").status_code == 404


def test_faults_api(served):
    fleet, url = served
    created = httpx.post(f"{url}/api/faults", json={"kind": "ib_link_down", "node": "gpu-003", "port": 1})
    assert created.status_code == 201
    fault_id = created.json()["id"]
    assert any(f["id"] == fault_id and f["active"] for f in httpx.get(f"{url}/api/fleet").json()["faults"])
    refused = httpx.post(f"{url}/api/faults", json={"kind": "xid", "node": "gpu-003", "gpu": 0})
    assert refused.status_code == 422 and refused.json()["error"].startswith("xid:")
    assert httpx.post(f"{url}/api/faults", content=b"{not json").status_code == 400
    assert httpx.delete(f"{url}/api/faults/{fault_id}").status_code == 200
    assert httpx.delete(f"{url}/api/faults/{fault_id}").status_code == 409
    assert httpx.delete(f"{url}/api/faults/424242").status_code == 404


def test_down_node_answers_nothing(served):
    fleet, url = served
    httpx.post(f"{url}/api/faults", json={"kind": "node_down", "node": "gpu-004"})
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{url}/nodes/gpu-004/metrics", timeout=5)


def test_slurm_face_over_http(served):
    fleet, url = served
    squeue = httpx.get(f"{url}/slurm/squeue").json()
    assert squeue["meta"]["plugin"]["type"].startswith("openapi/")
    result = httpx.post(f"{url}/slurm/scontrol", json={"args": ["update", "NodeName=gpu-001", "State=DRAIN", "Reason=test"]}).json()
    assert result["returncode"] == 0
    node = next(n for n in httpx.get(f"{url}/slurm/sinfo").json()["nodes"] if n["name"] == "gpu-001")
    assert node["state_flags"] == ["DRAIN"] and node["reason"] == "test"
    assert httpx.post(f"{url}/slurm/scontrol", json={"args": "update"}).status_code == 422
    assert httpx.post(f"{url}/slurm/rm", json={"args": []}).status_code == 404


def test_scheduler_adapter_polls_and_acts_through_the_simulator(served):
    """The real adapter, pointed at the simulator's command face, reads jobs and drains a node."""
    from scheduler import build_scheduler

    fleet, url = served
    adapter = build_scheduler("simulator", f"{url}/slurm", min_interval=0.1)
    adapter.refresh(wait=True)
    snapshot = adapter.snapshot()
    truth = fleet.ground_truth()
    running = {str(j["job_id"]) for j in truth["jobs"] if j["state"] == "RUNNING"}
    assert running and running <= {job.job_id for job in snapshot.jobs}
    result = adapter.actions.drain("gpu-002", "cw: test drain", actor="test")
    assert result.ok, result
    assert "DRAIN" in fleet.scheduler.nodes["gpu-002"].state_flags
    assert fleet.scheduler.nodes["gpu-002"].reason == "cw: test drain"


@pytest.mark.real_component
def test_cli_runs_the_fleet_and_its_slurm_client(tmp_path, process_factory):
    port = free_port()
    file_sd = tmp_path / "fleet.json"
    proc = process_factory([sys.executable, "-m", "clusterwatch", "simulate", "--nodes", "3", "--listen",
                            f"127.0.0.1:{port}", "--file-sd", str(file_sd), "--seed", "5", "--speed", "60"])
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/api/fleet", proc=proc)
    targets = json.loads(file_sd.read_text())
    assert [t["labels"]["instance"] for t in targets] == ["gpu-001", "gpu-002", "gpu-003"]
    assert targets[0]["labels"]["__metrics_path__"] == "/nodes/gpu-001/metrics"
    client = [sys.executable, "-m", "clusterwatch", "simulate", "slurm", "--url", url]
    squeue = subprocess.run([*client, "squeue", "--json"], capture_output=True, text=True, timeout=60)
    assert squeue.returncode == 0 and json.loads(squeue.stdout)["jobs"]
    refused = subprocess.run([*client, "scontrol", "update", "NodeName=gpu-404", "State=DRAIN", "Reason=x"],
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1 and "Invalid node name" in refused.stderr


@pytest.mark.real_component
def test_real_prometheus_scrapes_the_fleet_through_file_sd(tmp_path, process_factory):
    prometheus = require_binary("prometheus")
    from clusterwatch.commands.simulate import write_file_sd

    fleet = Fleet(nodes=4, seed=2, speed=1, start=None)
    server = SimulatorHTTPServer(("127.0.0.1", 0), fleet)
    server.start_in_thread()
    try:
        file_sd = tmp_path / "fleet.json"
        write_file_sd(str(file_sd), fleet.file_sd(server.base_url))
        config = tmp_path / "prometheus.yml"
        config.write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            "scrape_configs:\n"
            "  - job_name: gpu-nodes\n"
            "    honor_labels: true\n"
            f"    file_sd_configs: [{{files: ['{file_sd}'], refresh_interval: 1s}}]\n"
        )
        port = free_port()
        proc = process_factory([prometheus, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
                                f"--web.listen-address=127.0.0.1:{port}"])
        api = f"http://127.0.0.1:{port}/api/v1"
        wait_http(f"http://127.0.0.1:{port}/-/ready", proc=proc)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            result = httpx.get(f"{api}/query", params={"query": "count by (instance) (gpu_utilization_ratio)"}).json()
            if len(result["data"]["result"]) == 4:
                break
            time.sleep(0.5)
        counts = {r["metric"]["instance"]: float(r["value"][1]) for r in result["data"]["result"]}
        assert counts == {f"gpu-00{i}": 8.0 for i in range(1, 5)}
        up = httpx.get(f"{api}/query", params={"query": "up"}).json()["data"]["result"]
        assert {r["metric"]["instance"]: r["value"][1] for r in up} == {f"gpu-00{i}": "1" for i in range(1, 5)}
        racks = httpx.get(f"{api}/query", params={"query": "count by (rack) (gpu_up)"}).json()["data"]["result"]
        assert racks and racks[0]["metric"]["rack"] == "rack-01"
    finally:
        server.shutdown()
        fleet.stop()
