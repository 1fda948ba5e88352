"""The fabric collector as a scrape target: the simulator's file_sd, the scrape config, Prometheus."""
from __future__ import annotations

import json
import subprocess
import sys

import httpx
import pytest

from simulator.fleet import Fleet
from tests.realcomponents import free_port, process_factory, require_binary, until, wait_http  # noqa: F401
from tsdb.discovery import parse_file_sd


def test_fabric_file_sd_is_one_target_of_job_clusterwatch_fabric():
    fleet = Fleet(nodes=2, seed=1, speed=0, warm=False)
    try:
        [target] = parse_file_sd(json.dumps(fleet.fabric_file_sd("http://127.0.0.1:9900")), "gpu-nodes")
    finally:
        fleet.stop()
    assert target.url == "http://127.0.0.1:9900/fabric/metrics"
    assert dict(target.labels) == {"job": "clusterwatch-fabric", "instance": "ib-mgmt-01"}


def scrape_config(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "clusterwatch", "scrape-config", *argv], capture_output=True,
                          text=True, timeout=60)


def test_scrape_config_refuses_a_fabric_address_that_is_not_host_port(tmp_path):
    result = scrape_config("--nodes", "gpu-[001-002]", "--file-sd", str(tmp_path / "n.json"), "--fabric", "mgmt-01")
    assert result.returncode == 2 and "--fabric" in result.stderr


@pytest.mark.real_component
def test_simulated_fabric_scraped_by_prometheus_through_the_generated_file_sd(tmp_path, process_factory):  # noqa: F811
    prometheus = require_binary("prometheus")
    port = free_port()
    nodes_sd, fabric_sd = tmp_path / "fleet.json", tmp_path / "fabric.json"
    simulator = process_factory([sys.executable, "-m", "clusterwatch", "simulate", "--nodes", "16", "--listen",
                                 f"127.0.0.1:{port}", "--file-sd", str(nodes_sd), "--fabric-file-sd", str(fabric_sd)])
    wait_http(f"http://127.0.0.1:{port}/-/healthy", timeout=60, proc=simulator)
    result = scrape_config("--nodes", "gpu-[001-016]", "--file-sd", str(tmp_path / "unused.json"),
                           "--fabric", "ib-mgmt-01:9835")
    assert result.returncode == 0, result.stderr
    assert "job_name: clusterwatch-fabric" in result.stdout
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        f"  - job_name: fabric\n    file_sd_configs: [{{files: ['{fabric_sd}'], refresh_interval: 1s}}]\n")
    prom_port = free_port()
    proc = process_factory([prometheus, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
                            f"--web.listen-address=127.0.0.1:{prom_port}"])
    wait_http(f"http://127.0.0.1:{prom_port}/-/ready", proc=proc)
    api = f"http://127.0.0.1:{prom_port}/api/v1"

    def links():
        result = httpx.get(f"{api}/query", params={"query": 'count(fabric_link_info{job="clusterwatch-fabric"})'}).json()
        return result["data"]["result"] and float(result["data"]["result"][0]["value"][1])

    # The first sweep starts with the first scrape and takes about a second at this size.
    assert until(links, 60, "Prometheus to see the fabric's cables") == 16 * 4 * 2
    labels = httpx.get(f"{api}/query", params={"query": 'fabric_switch_info{switch="leaf-r01"}'}).json()
    [series] = labels["data"]["result"]
    assert series["metric"]["instance"] == "ib-mgmt-01" and series["metric"]["rack"] == "rack-01"


@pytest.mark.real_component
def test_serve_stores_the_reference_size_fabric_target(tmp_path, process_factory):  # noqa: F811
    """The simulated 140-node fabric (1,120 cables, both ends' counters: about 52,000 series from one
    target) is above the embedded store's default per-target limit of 50,000, which refused the
    whole scrape; serve's per-job limit for clusterwatch-fabric admits it."""
    port, serve_port = free_port(), free_port()
    fabric_sd = tmp_path / "fabric.json"
    simulator = process_factory([sys.executable, "-m", "clusterwatch", "simulate", "--nodes", "140", "--listen",
                                 f"127.0.0.1:{port}", "--file-sd", str(tmp_path / "fleet.json"),
                                 "--fabric-file-sd", str(fabric_sd)])
    wait_http(f"http://127.0.0.1:{port}/-/healthy", timeout=120, proc=simulator)
    serve = process_factory([sys.executable, "-m", "clusterwatch", "serve", "--listen", f"127.0.0.1:{serve_port}",
                             "--file-sd", str(fabric_sd), "--scrape-interval", "5s"])
    base = f"http://127.0.0.1:{serve_port}"
    wait_http(f"{base}/-/ready", timeout=120, proc=serve)

    def stored():
        result = httpx.get(f"{base}/api/v1/query", params={"query": 'count(fabric_link_info)'}, timeout=30).json()
        return result["data"]["result"] and float(result["data"]["result"][0]["value"][1])

    assert until(stored, 180, "serve to store the fabric target") == 1120
    targets = httpx.get(f"{base}/api/v1/targets", timeout=30).json()["data"]["activeTargets"]
    [fabric] = [t for t in targets if t["labels"]["job"] == "clusterwatch-fabric"]
    assert fabric["health"] == "up" and fabric["lastError"] == ""
