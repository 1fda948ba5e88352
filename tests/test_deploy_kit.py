"""The deploy kit parses and points at what exists: manifests, Alertmanager config, Dockerfile."""
from __future__ import annotations

import re
import sys
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


SERVER_UNIT = DEPLOY / "systemd" / "clusterwatch-server.service"


def _unit_entries(path: Path) -> dict[str, list[str]]:
    """key -> values of a unit file (continuation lines joined)."""
    entries: dict[str, list[str]] = {}
    text = path.read_text().replace("\\\n", " ")
    for line in text.splitlines():
        if "=" in line and not line.lstrip().startswith(("#", "[")):
            key, _, value = line.partition("=")
            entries.setdefault(key.strip(), []).append(value.strip())
    return entries


@pytest.mark.real_component
def test_server_unit_is_accepted_by_systemd_analyze(tmp_path):
    analyze = require_binary("systemd-analyze")
    unit = tmp_path / SERVER_UNIT.name
    unit.write_text(SERVER_UNIT.read_text().replace("/usr/local/bin/clusterwatch", "/bin/true"))
    result = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    complaints = [line for line in (result.stdout + result.stderr).splitlines() if unit.name in line]
    assert result.returncode == 0 and not complaints, result.stdout + result.stderr


def test_server_unit_restarts_a_wedged_server_from_durable_state():
    """Type=notify with a watchdog (cwkernel/sdnotify.py), restarted always, started after the
    clock is synchronised, with every flag of its command line one `serve` takes and the secrets'
    variables the ones it reads."""
    from clusterwatch.cli import build_parser
    from cwkernel.auth import ENV_OPERATORS

    entries = _unit_entries(SERVER_UNIT)
    assert entries["Type"] == ["notify"] and int(entries["WatchdogSec"][0]) >= 60
    assert entries["Restart"] == ["always"] and "time-sync.target" in entries["After"][0]
    argv = entries["ExecStart"][0].split()
    assert argv[:2] == ["/usr/local/bin/clusterwatch", "serve"]
    args = build_parser().parse_args(argv[1:])
    assert args.state_dir and args.snapshot, "silences, outbox, cases and the store must survive a restart"
    assert all(path.startswith("/var/lib/clusterwatch/") for path in (args.state_dir, args.snapshot))
    assert "/var/lib/clusterwatch" in entries["ReadWritePaths"][0]
    named = set(re.findall(r"CLUSTERWATCH_[A-Z_]+", SERVER_UNIT.read_text()))
    serve_env = subprocess.run([sys.executable, "-m", "clusterwatch", "serve", "--help"], capture_output=True,
                               text=True, timeout=60).stdout.replace("\n", " ").replace(" ", "")
    assert named - {ENV_OPERATORS} and all(name in serve_env for name in named - {ENV_OPERATORS}), named
