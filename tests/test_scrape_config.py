"""`clusterwatch scrape-config`: the scrape config a real Prometheus accepts, targets named as Slurm names nodes."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.realcomponents import require_binary


def run(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "clusterwatch", "scrape-config", *argv], capture_output=True,
                          text=True, timeout=60)


@pytest.mark.real_component
def test_targets_and_config_promtool_accepts(tmp_path):
    file_sd = tmp_path / "gpu-nodes.json"
    result = run("--nodes", "gpu-[001-003,010]", "--file-sd", str(file_sd), "--server", "127.0.0.1:9464")
    assert result.returncode == 0, result.stderr
    targets = json.loads(file_sd.read_text())
    assert [t["labels"]["instance"] for t in targets] == ["gpu-001", "gpu-002", "gpu-003", "gpu-010"]
    assert targets[0]["targets"] == ["gpu-001:9835"]
    assert "honor_labels: true" in result.stdout
    config = tmp_path / "prometheus.yml"
    config.write_text(result.stdout)
    promtool = require_binary("promtool")
    check = subprocess.run([promtool, "check", "config", str(config)], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr


def test_bad_hostlist_exits_2_naming_the_option(tmp_path):
    result = run("--nodes", "gpu-[001-", "--file-sd", str(tmp_path / "x.json"))
    assert result.returncode == 2 and "--nodes" in result.stderr
