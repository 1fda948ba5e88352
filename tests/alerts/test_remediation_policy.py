"""The policy file: the shipped one loads, and each mistake names its field and the file."""
from __future__ import annotations

import pytest

from remediation import policy
from remediation.policy import PolicyError


def test_shipped_policy_loads_in_dry_run():
    loaded = policy.load()
    assert loaded.mode == "dry-run" and loaded.reason_prefix == "cw:"
    assert loaded.classify({"alertname": "GpuXidRebootRequired"}).name == "gpu-reboot"
    assert loaded.classify({"alertname": "InfinibandPortDown"}).mode == "approve"
    assert loaded.classify({"alertname": "GpuTemperatureHigh"}) is None


def _raw():
    return policy.yaml.safe_load(policy.DEFAULT_POLICY.read_text())


@pytest.mark.parametrize("change,field,words", [
    (lambda r: r.update(mode="yolo"), "mode", "must be one of off, dry-run, auto"),
    (lambda r: r.update(colour="blue"), "colour", "unknown field"),
    (lambda r: r["guards"].update(max_drained_percent=150), "guards.max_drained_percent", "<= 100"),
    (lambda r: r["guards"].update(node_cooldown="soon"), "guards.node_cooldown", "not a duration"),
    (lambda r: r["guards"].update(return_timeout="-5m"), "guards.return_timeout", ""),
    (lambda r: r.update(reboot_next_state="RESUME"), "reboot_next_state", "until verification passes"),
    (lambda r: r.update(expected_alerts={"reboot": ["Node Unreachable"]}), "expected_alerts.reboot[0]",
     "must be an alert name"),
    (lambda r: r.update(expected_alerts={"drain": []}), "expected_alerts.drain", "unknown field"),
    (lambda r: r["ladders"].update(reboot=["drain", "reboot", "resume"]), "ladders.reboot", "after a verify"),
    (lambda r: r["ladders"].update(reboot=["drain", "reboot", "evidence"]), "ladders.reboot", "evidence must come"),
    (lambda r: r["ladders"].update(reboot=["drain", "explode"]), "ladders.reboot[1]", "unknown step 'explode'"),
    (lambda r: r["classes"][0].update(ladder="nope"), "classes[0].ladder", "no ladder 'nope'"),
    (lambda r: r["classes"][0].update(mode="maybe"), "classes[0].mode", "must be one of"),
    (lambda r: r["classes"][0].update(match={}), "classes[0].match", "needs alertname or labels"),
    (lambda r: r["classes"][4].update(cancel=True), "classes[4].cancel", "no cancel action"),
    (lambda r: r.update(commands={"gpu_reset": "ssh {node} nvidia-smi -r"}), "commands.gpu_reset", "argument vector"),
    (lambda r: r.update(commands={"gpu_reset": ["nvidia-smi", "-r"]}), "commands.gpu_reset[0]", "absolute path"),
    (lambda r: r.update(commands={"r": ["/bin/x", "{host}"]}), "commands.r[1]", "unknown placeholder {host}"),
    (lambda r: r.update(receivers={"repair": {"url": "ftp://x"}}), "receivers.repair.url", "http"),
    (lambda r: r.update(reason_prefix="cw: $(x)"), "reason_prefix", "letters"),
    (lambda r: r["ladders"].update(reset2=["evidence", "drain", "reset", "verify", "resume"]) or
     r["classes"][0].update(ladder="reset2"), "classes[0].command", "reset step"),
])
def test_mistakes_name_the_field_and_the_file(change, field, words):
    raw = _raw()
    change(raw)
    with pytest.raises(PolicyError) as caught:
        policy.parse(raw, "/etc/clusterwatch/policy.yml")
    assert caught.value.field == field
    assert words in str(caught.value) and "/etc/clusterwatch/policy.yml" in str(caught.value)


def test_unreadable_and_invalid_files(tmp_path):
    with pytest.raises(PolicyError, match="cannot read"):
        policy.load(tmp_path / "missing.yml")
    bad = tmp_path / "bad.yml"
    bad.write_text("mode: [")
    with pytest.raises(PolicyError, match="not valid YAML"):
        policy.load(bad)


def test_reset_class_runs_its_command_as_an_argument_vector():
    from tests.alerts.remediation_helpers import Harness, alert

    raw = _raw()
    raw["mode"] = "auto"
    raw["commands"] = {"gpu_reset": ["/usr/bin/ssh", "{node}", "nvidia-smi", "--gpu-reset", "-i", "{gpu}"]}
    raw["classes"][1].update(ladder="reset", command="gpu_reset")
    h = Harness(policy=policy.parse(raw))
    h.receive(alert("GpuXidResetRequired", gpu="5"))
    h.step()
    assert h.commands == [["/usr/bin/ssh", "gpu-001", "nvidia-smi", "--gpu-reset", "-i", "5"]]
    h.step()
    assert h.case(1).state == "resolved"
