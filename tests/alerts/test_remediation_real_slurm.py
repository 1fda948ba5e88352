"""The engine against a real single-node Slurm 22.05 (tests/scheduler/slurm_cluster.py): an alert
leads to a real drain, an approval leads to a real resume, an operator's drain is never undone, and
a real reboot brings the node back DOWN, out of service until verification passes."""
from __future__ import annotations

import time

import pytest

from remediation import policy as policy_module
from remediation.engine import RemediationEngine
from remediation.store import RemediationStore
from scheduler import build_scheduler
from tests.alerts.remediation_helpers import TableQuery, alert
from tests.scheduler.slurm_cluster import started_slurm

pytestmark = pytest.mark.real_component



@pytest.fixture(scope="module")
def slurm():
    yield from started_slurm()


def _node(adapter):
    adapter.poller.expire()
    adapter.refresh(wait=True)
    return adapter.snapshot().node("localhost")


@pytest.fixture
def adapter(slurm):
    adapter = build_scheduler("slurm-cli", command_prefix=slurm.prefix, env={"SLURM_CONF": slurm.env["SLURM_CONF"]},
                              min_interval=0.2, timeout=30)
    slurm.run("scontrol", "update", "NodeName=localhost", "State=RESUME", check=False)
    deadline = time.monotonic() + 20
    while _node(adapter).drain and time.monotonic() < deadline:
        time.sleep(0.3)
    return adapter


def _engine(adapter, class_mode: str, ladder: str = "test") -> RemediationEngine:
    raw = policy_module.yaml.safe_load(policy_module.DEFAULT_POLICY.read_text())
    # Without a real reboot (RebootProgram is /bin/true; complete_reboot() plays the node's return).
    raw["ladders"]["test"] = ["evidence", "drain", "requeue", "verify", "resume"]
    raw["classes"][0].update(ladder=ladder, mode=class_mode)
    raw["guards"]["max_drained_percent"] = 100  # one node: any drain is 100% of the partition
    return RemediationEngine(policy_module.parse(raw, "test"), adapter, RemediationStore(), TableQuery(), mode="auto")


def test_alert_leads_to_a_real_drain(adapter):
    engine = _engine(adapter, "auto")
    engine.policy.classes[0].__dict__["ladder"] = ("evidence", "drain")
    engine.receive([alert(node="localhost", gpu="1")])
    node = _node(adapter)
    assert node.drain and node.reason == "cw: GpuXidRebootRequired gpu 1 case 1"


def test_approval_leads_to_a_real_drain_and_resume(adapter):
    engine = _engine(adapter, "approve")
    engine.receive([alert(node="localhost", gpu="0")])
    assert not _node(adapter).drain, "nothing happens before the approval"
    engine.query.healthy = False  # the GPU is not back yet: the case waits in verify, drained
    engine.approve(1, "carol")
    assert _node(adapter).drain and engine.store.case(1).current_step == "verify"
    engine.query.healthy = True  # resumed only because the reason is still ClusterWatch's
    deadline = time.monotonic() + 10
    while _node(adapter).drain and time.monotonic() < deadline:
        engine.evaluate()
        time.sleep(0.3)
    assert not _node(adapter).drain
    assert engine.store.case(1).state == "resolved"
    assert [e.actor for e in engine.store.audit_entries() if e.action == "resume"] == ["operator:carol"]


def test_operator_drain_is_never_undone(adapter, slurm):
    slurm.run("scontrol", "update", "NodeName=localhost", "State=DRAIN", "Reason=operator maintenance")
    engine = _engine(adapter, "auto")
    engine.receive([alert(node="localhost", gpu="0")])
    for _ in range(3):
        engine.evaluate()
    node = _node(adapter)
    assert node.drain and node.reason == "operator maintenance"
    assert engine.store.case(1).state == "closed"


def _until(adapter, check, what: str, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        node = _node(adapter)
        if check(node):
            return node
        time.sleep(0.3)
    raise AssertionError(f"{what}: still {node.state} {node.state_flags} {node.reason!r}")


def test_a_real_reboot_keeps_the_node_out_of_service_until_verification_passes(adapter, slurm):
    engine = _engine(adapter, "auto", ladder="reboot")
    engine.query.healthy = False  # the GPU does not answer yet after the reboot
    try:
        engine.receive([alert(node="localhost", gpu="1")])
        _until(adapter, lambda n: n.has_flag("REBOOT_ISSUED") or (engine.evaluate() and False), "reboot issued")
        assert [a for a in engine.store.audit_entries() if a.action == "reboot"][0].result == "done"
        time.sleep(1.1)  # slurmd's boot time must be later than the request, at Slurm's 1 s resolution
        slurm.complete_reboot()
        back = _until(adapter, lambda n: not n.has_flag("REBOOT_ISSUED") and not n.has_flag("REBOOT_REQUESTED"),
                      "back from the reboot", timeout=60)
        assert back.state == "DOWN" and back.reason.startswith("cw: "), "back DOWN, with ClusterWatch's reason"
        slurm.run("sbatch", "--gres=gpu:1", "--wrap", "sleep 60")
        for _ in range(3):
            engine.evaluate()
            time.sleep(0.5)
        assert engine.store.case(1).current_step == "verify"
        assert _node(adapter).state == "DOWN", "no return to service while verification fails"
        jobs = slurm.run("squeue", "-h", "-o", "%T").stdout.split()
        assert jobs == ["PENDING"], "no job placed on the unverified node"
        engine.query.healthy = True
        engine.evaluate()
        resumed = _until(adapter, lambda n: n.state != "DOWN", "resumed after verification")
        assert resumed.state in ("IDLE", "MIXED", "ALLOCATED") and engine.store.case(1).state == "resolved"
        _until(adapter, lambda n: n.state in ("MIXED", "ALLOCATED"), "the waiting job runs once verified")
    finally:
        slurm.run("scancel", "--user=root", check=False)
        slurm.run("scontrol", "cancel_reboot", "localhost", check=False)
