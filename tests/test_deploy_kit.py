"""The deploy kit parses and points at what exists: manifests, Alertmanager config, Dockerfile."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.realcomponents import require_binary

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"


@pytest.mark.real_component
def test_alertmanager_config_is_accepted_by_amtool(tmp_path):
    amtool = require_binary("amtool")
    config = (DEPLOY / "alertmanager" / "alertmanager.yml").read_text()
    token = tmp_path / "token"
    token.write_text("secret\n")
    path = tmp_path / "alertmanager.yml"
    path.write_text(config.replace("/etc/alertmanager/clusterwatch-token", str(token)))
    result = subprocess.run([amtool, "check-config", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_alertmanager_routes_name_alerts_the_rule_pack_raises():
    rules = {rule["alert"] for path in (ROOT / "alerts" / "rules").glob("*.yml")
             for group in yaml.safe_load(path.read_text())["groups"] for rule in group["rules"] if "alert" in rule}
    config = (DEPLOY / "alertmanager" / "alertmanager.yml").read_text()
    for name in re.findall(r'alertname[!=]+"(\w+)"', config):
        assert name in rules, f"alertmanager.yml names {name}, which no rule raises"


def test_daemonset_mounts_what_the_exporter_flags_read():
    documents = list(yaml.safe_load_all((DEPLOY / "kubernetes" / "exporter-daemonset.yaml").read_text()))
    daemonset = next(d for d in documents if d["kind"] == "DaemonSet")
    spec = daemonset["spec"]["template"]["spec"]
    container = spec["containers"][0]
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    args = container["args"]
    for flag in ("--procfs", "--sysfs"):
        path = args[args.index(flag) + 1]
        assert path in mounts and mounts[path]["readOnly"]
    assert spec["hostPID"] is True
    assert container["readinessProbe"]["httpGet"]["path"] == "/-/ready"


def test_dockerfile_copies_every_package_the_project_installs():
    dockerfile = (DEPLOY / "docker" / "Dockerfile").read_text()
    pyproject = (ROOT / "pyproject.toml").read_text()
    packages = re.search(r'include = \[(.*?)\]', pyproject).group(1)
    for package in re.findall(r'"(\w+)\*"', packages):
        assert f"COPY {package} ./{package}" in dockerfile
