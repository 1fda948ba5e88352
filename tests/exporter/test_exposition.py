"""The exporter as a user runs it: every family served, documented, and clean for promtool."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from clusterwatch import metricsdoc
from tests.exporter.helpers import parse_exposition
from tests.realcomponents import free_port, require_binary, wait_http

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "node"
CORE_FAMILIES = {
    "gpu_info", "gpu_up", "gpu_utilization_ratio", "gpu_memory_used_bytes", "gpu_temperature_celsius",
    "gpu_power_watts", "gpu_energy_joules_total", "gpu_clock_event_active", "gpu_ecc_errors_total",
    "gpu_nvlink_errors_total", "gpu_busy_seconds_total", "clusterwatch_exporter_nvml_up",
    "node_cpu_seconds_total", "node_memory_MemAvailable_bytes", "node_filesystem_avail_bytes",
    "node_infiniband_port_data_received_bytes_total", "node_infiniband_link_downed_total",
    "clusterwatch_exporter_collector_success",
}


@pytest.fixture(scope="module")
def exporter(tmp_path_factory):
    """`clusterwatch exporter --backend fake` on the fixture node: its URL and process."""
    port = free_port()
    log = tmp_path_factory.mktemp("exporter") / "exporter.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "clusterwatch", "exporter", "--backend", "fake", "--listen", f"127.0.0.1:{port}",
             "--procfs", str(FIXTURES / "proc"), "--sysfs", str(FIXTURES / "sys"), "--filesystem-mount-points", "/",
             "--interval", "1s"],
            stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_http(f"http://127.0.0.1:{port}/metrics")
        yield f"http://127.0.0.1:{port}/metrics", proc
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture(scope="module")
def exposition(exporter) -> str:
    """What it serves over HTTP."""
    return httpx.get(exporter[0]).text


@pytest.mark.real_component
def test_the_exporter_loads_neither_the_servers_libraries_nor_grpc(exporter, exposition):
    """A GPU node's memory belongs to its jobs: the exporter's process maps none of the server's
    compiled libraries (numpy, pydantic, the PromQL parser) and, on a node without a kubelet, not
    gRPC (the pod-resources client's): together they were some 50 MB of its resident memory."""
    mapped = Path(f"/proc/{exporter[1].pid}/maps").read_text()
    loaded = [lib for lib in ("numpy", "pydantic_core", "promql_parser", "cygrpc", "_upb") if lib in mapped]
    assert loaded == []


def family_names(text: str) -> set[str]:
    return set(re.findall(r"^# TYPE (\S+) ", text, re.M))


def documented_names() -> set[str]:
    return set(re.findall(r"^\| `([a-zA-Z_:][a-zA-Z0-9_:]*)` \|", (ROOT / "docs" / "metrics.md").read_text(), re.M))


@pytest.mark.real_component
def test_serves_the_core_families_from_every_collector(exposition):
    assert CORE_FAMILIES <= family_names(exposition)
    samples = parse_exposition(exposition)
    failed = [dict(labels)["collector"] for (name, labels), value in samples.items()
              if name == "clusterwatch_exporter_collector_success" and value != 1]
    assert failed == []


@pytest.mark.real_component
def test_every_exposed_family_is_documented(exposition):
    undocumented = family_names(exposition) - documented_names()
    # node_memory_<Field>_bytes are documented as one pattern, as node_exporter derives them.
    undocumented = {name for name in undocumented if not name.startswith("node_memory_")}
    assert undocumented == set()


def test_docs_metrics_md_is_generated_from_the_code():
    assert metricsdoc.main(["--check", str(ROOT / "docs" / "metrics.md")]) == 0


@pytest.mark.real_component
def test_promtool_check_metrics_only_notes_node_exporter_camel_case(exposition):
    promtool = require_binary("promtool")
    result = subprocess.run([promtool, "check", "metrics"], input=exposition, capture_output=True, text=True, timeout=60)
    problems = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    unexpected = [line for line in problems if not re.match(r"^node_memory_\w+ metric names should be written in 'snake_case'", line)]
    assert unexpected == [], "\n".join(unexpected)


def test_docs_configuration_md_is_generated_from_the_parsers():
    from clusterwatch import configdoc

    assert configdoc.main(["--check", str(ROOT / "docs" / "configuration.md")]) == 0
