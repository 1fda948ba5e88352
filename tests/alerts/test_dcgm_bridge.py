"""The dcgm-exporter bridge (alerts/rules/bridges/dcgm.yml): recording rules that write the gpu_* contract
from dcgm-exporter's DCGM_FI_* series, exported with ``clusterwatch rules export --source dcgm``.

- its promtool unit test (alerts/tests/dcgm_bridge_test.yml) passes in the embedded runner here, and in
  promtool too (tests/alerts/test_rules_pack.py runs every file of alerts/tests in both);
- the export flag, and the bridge is not part of the default pack;
- end to end: dcgm-exporter exposition text (tests/fixtures/dcgm-exporter/, provenance in each header)
  served over HTTP to a real Prometheus loading the exported pack and bridge, and the dashboard's
  overview (``clusterwatch serve --prometheus-url``) over that Prometheus shows the fleet.
"""
from __future__ import annotations

import http.server
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
import yaml

from alerts.evaluator.promtest import run_test_file
from alerts.evaluator.rulefile import expand_paths, load_rule_file
from tests.realcomponents import free_port, require_binary, wait_http

ROOT = Path(__file__).resolve().parents[2]
BRIDGE = ROOT / "alerts" / "rules" / "bridges" / "dcgm.yml"
BRIDGE_TEST = ROOT / "alerts" / "tests" / "dcgm_bridge_test.yml"
FIXTURES = ROOT / "tests" / "fixtures" / "dcgm-exporter"
MIGRATION = ROOT / "docs" / "migration.md"


def test_bridge_unit_test_passes_in_the_embedded_runner():
    result = run_test_file(BRIDGE_TEST)
    assert result.passed, "\n".join(result.failures)


def test_bridge_is_valid_and_not_in_the_default_pack():
    groups = load_rule_file(BRIDGE)
    assert [g.name for g in groups] == ["clusterwatch-dcgm-bridge"]
    assert all(r.kind == "record" and r.name.startswith("gpu_") for g in groups for r in g.rules)
    assert BRIDGE not in expand_paths([ROOT / "alerts" / "rules"])


def _export(tmp_path: Path, *flags: str) -> list[str]:
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "clusterwatch", "rules", "export", "--out", str(out), *flags],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return sorted(p.name for p in out.glob("*.yml"))


def test_export_source_dcgm_adds_the_bridge(tmp_path):
    pack = sorted(p.name for p in (ROOT / "alerts" / "rules").glob("*.yml"))
    assert _export(tmp_path / "default") == pack
    assert _export(tmp_path / "explicit", "--source", "clusterwatch") == pack
    assert _export(tmp_path / "dcgm", "--source", "dcgm") == sorted(pack + ["dcgm-bridge.yml"])
    assert (tmp_path / "dcgm" / "out" / "dcgm-bridge.yml").read_bytes() == BRIDGE.read_bytes()
    done = subprocess.run([sys.executable, "-m", "clusterwatch", "rules", "export", "--out", str(tmp_path / "x"),
                           "--source", "nvidia-smi"], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode != 0 and "invalid choice" in done.stderr


def test_fixtures_say_where_they_come_from():
    for path in sorted(FIXTURES.glob("*.prom")):
        header = path.read_text().split("\n# HELP DCGM", 1)[0]
        assert "NVIDIA/dcgm-exporter" in header and re.search(r"commit [0-9a-f]{40}", header), path
        assert "etc/default-counters.csv" in header and "render_metrics.go" in header, path


def test_migration_table_covers_every_default_field_and_every_bridged_metric():
    """docs/migration.md's table has a row for each dcgm-exporter default field (those in the fixture),
    and every record the bridge writes is named there."""
    doc = MIGRATION.read_text()
    fields = set(re.findall(r"^# TYPE (DCGM_FI_\w+)", (FIXTURES / "node-a.prom").read_text(), re.M))
    assert len(fields) >= 20
    rows = {name for cell in re.findall(r"^\| (`DCGM_FI_[^|]*)\|", doc, re.M)
            for name in re.findall(r"`(DCGM_FI_\w+)`", cell)}
    assert fields <= rows, sorted(fields - rows)
    records = {r.name for g in load_rule_file(BRIDGE) for r in g.rules}
    unnamed = sorted(name for name in records if not re.search(rf"`{name}[`{{]", doc))
    assert not unnamed, unnamed


# ---- end to end -----------------------------------------------------------------------------------

def _serve_files(pages: dict[str, bytes]) -> tuple[http.server.ThreadingHTTPServer, int]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            body = pages.get(self.path)
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *args):
            pass

    port = free_port()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, port


def _until(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


@pytest.mark.real_component
def test_dcgm_exposition_through_real_prometheus_and_the_overview(tmp_path, process_factory):
    prometheus = require_binary("prometheus")
    rules = tmp_path / "rules"
    _export(tmp_path, "--source", "dcgm")
    (tmp_path / "out").rename(rules)
    server, dcgm_port = _serve_files({"/node-a/metrics": (FIXTURES / "node-a.prom").read_bytes(),
                                      "/node-b/metrics": (FIXTURES / "node-b.prom").read_bytes()})
    try:
        prom_port, serve_port = free_port(), free_port()
        prom, base = f"http://127.0.0.1:{prom_port}", f"http://127.0.0.1:{serve_port}"
        # node-a carries hostname (NODE_NAME); node-b (an older release) does not, so the scrape config
        # sets instance to the node name, as docs/migration.md step 2 says.
        config = tmp_path / "prometheus.yml"
        config.write_text(yaml.safe_dump({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [f"{rules}/*.yml"],
            "scrape_configs": [
                {"job_name": "dcgm-a", "metrics_path": "/node-a/metrics",
                 "static_configs": [{"targets": [f"127.0.0.1:{dcgm_port}"]}]},
                {"job_name": "dcgm-b", "metrics_path": "/node-b/metrics",
                 "static_configs": [{"targets": [f"127.0.0.1:{dcgm_port}"], "labels": {"node": "gpu-b01"}}],
                 "relabel_configs": [{"source_labels": ["node"], "target_label": "instance"},
                                     {"regex": "node", "action": "labeldrop"}]},
            ]}))
        # The bridge group runs every 30 s in the shipped file; evaluate it every second here.
        bridge = rules / "dcgm-bridge.yml"
        bridge.write_text(bridge.read_text().replace("    interval: 30s\n", "    interval: 1s\n"))
        proc = process_factory([prometheus, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
                                f"--web.listen-address=127.0.0.1:{prom_port}"], name="prometheus")
        wait_http(f"{prom}/-/ready", timeout=60, proc=proc)

        def query(expr: str) -> list[dict]:
            return httpx.get(f"{prom}/api/v1/query", params={"query": expr}, timeout=10).json()["data"]["result"]

        util = _until(lambda: len(query("gpu_utilization_ratio")) == 3 and query("gpu_utilization_ratio"), 60,
                      "the bridge to record gpu_utilization_ratio for the 3 GPUs")
        got = {(r["metric"]["instance"], r["metric"]["gpu"]): float(r["value"][1]) for r in util}
        assert got == {("gpu-a01", "0"): 0.97, ("gpu-a01", "1"): 0.0, ("gpu-b01", "0"): 0.12}
        assert all(set(r["metric"]) == {"__name__", "instance", "gpu", "uuid"} for r in util)
        used = {r["metric"]["instance"] + "/" + r["metric"]["gpu"]: float(r["value"][1])
                for r in query("gpu_memory_used_bytes")}
        assert used == {"gpu-a01/0": 40960 * 2**20, "gpu-a01/1": 0.0, "gpu-b01/0": 109 * 2**20}
        # README's blank HBM temperature (9223372036854775794) is dropped, not recorded.
        assert {r["metric"]["instance"] for r in query("gpu_memory_temperature_celsius")} == {"gpu-a01"}
        jobs = query("gpu_job_info")
        assert [(r["metric"]["instance"], r["metric"]["gpu"], r["metric"]["job_id"]) for r in jobs] == \
            [("gpu-a01", "0", "4242")]

        serve = process_factory([sys.executable, "-m", "clusterwatch", "serve", "--listen", f"127.0.0.1:{serve_port}",
                                 "--prometheus-url", prom], name="serve")
        wait_http(f"{base}/-/ready", timeout=60, proc=serve)

        def overview():
            body = httpx.get(f"{base}/api/overview", params={"range": "15m"}, timeout=20).json()
            scraped = sum(v is not None for row in body["heatmap"]["z"] for v in row)
            return body if body["kpis"]["gpus_total"] == 3 == scraped else None

        view = _until(overview, 90, "the overview to show the 3 dcgm-exporter GPUs")
        assert view["heatmap"]["nodes"] == ["gpu-a01", "gpu-b01"]
        assert view["kpis"]["nodes_total"] == 2
    finally:
        server.shutdown()
        server.server_close()
