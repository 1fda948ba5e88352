"""The ladders step by step over a fake cluster behind the real scheduler adapter."""
from __future__ import annotations

from remediation.ladder import CLOSED, PENDING_APPROVAL, PLANNED, REJECTED, REPAIR, RESOLVED

from tests.alerts.remediation_helpers import Harness, alert


def test_reboot_ladder_drains_requeues_waits_reboots_verifies_resumes():
    h = Harness()
    h.cluster.run_job("101", "gpu-001", (3,), state="FAILED", end_time=h.clock.now - 30)  # crashed on GPU 3
    h.cluster.run_job("102", "gpu-001", (0, 1))  # healthy work on other GPUs
    h.receive(*[alert()])
    case = h.case()
    node = h.cluster.nodes["gpu-001"]
    assert "DRAIN" in node.flags and node.reason.startswith("cw: GpuXidRebootRequired gpu 3")
    assert case.evidence["serial"] == "1650924060001" and case.evidence["uuid"] == "GPU-abc"
    assert case.evidence["gpu_metrics"], "metric values captured before any reset"
    assert h.cluster.jobs["101"].state == "PENDING", "the crashed job is requeued"
    assert h.cluster.jobs["102"].state == "RUNNING", "healthy work keeps running"
    assert case.current_step == "wait_idle"
    h.step()
    assert not any(a.kind == "reboot" for a in h.cluster.executed), "no reboot while a job runs"
    h.cluster.end_jobs("gpu-001")
    h.step()
    assert [a.kind for a in h.cluster.executed] == ["drain", "requeue", "reboot"]
    assert h.cluster.executed[-1].next_state == "DOWN" and h.cluster.executed[-1].asap
    h.step()
    assert h.case().current_step == "wait_return"
    h.cluster.finish_reboot("gpu-001")
    h.step()
    assert h.case().state == RESOLVED
    assert any('gpu_up{instance="gpu-001"}' in q for q in h.query.queries)
    assert [a.kind for a in h.cluster.executed].count("reboot") == 1


def test_a_rebooted_node_stays_out_of_service_until_verification_passes():
    """The reboot is asked with nextstate=DOWN: Slurm brings the node back DOWN, where no job can
    land, and only the resume after a passed verification returns it (with nextstate=RESUME jobs
    were placed on it 30 s and 220 s before verification passed)."""
    h = Harness(healthy=False)
    h.receive(alert())
    h.step()
    h.cluster.finish_reboot("gpu-001")
    for _ in range(4):
        h.step()
        node = h.cluster.nodes["gpu-001"]
        assert node.state == "DOWN", "not in service while verification fails"
        assert h.case().current_step == "verify"
    assert "resume" not in [a.kind for a in h.cluster.executed]
    h.query.healthy = True
    h.step()
    assert [a.kind for a in h.cluster.executed] == ["drain", "reboot", "resume"]
    assert h.cluster.nodes["gpu-001"].state == "IDLE" and h.case().state == RESOLVED


def test_failed_verification_keeps_the_node_drained_and_opens_a_ticket():
    h = Harness(healthy=False, verify_timeout="5m")
    h.receive(*[alert()])
    h.step()
    assert h.cluster.executed[-1].kind == "reboot"
    h.cluster.finish_reboot("gpu-001")  # back DOWN (nextstate=DOWN), waiting for verification
    for _ in range(12):
        h.step()
    case = h.case()
    assert case.state == REPAIR
    node = h.cluster.nodes["gpu-001"]
    assert "DRAIN" in node.flags and node.reason.startswith("cw:"), "drained again after failing verification"
    url, body, key = h.sent[-1]
    assert url == "http://tickets.test/hook" and body["kind"] == "repair_ticket"
    assert body["evidence"]["serial"] == "1650924060001" and key == f"clusterwatch-case-{case.id}-ticket"


def test_rma_class_keeps_node_drained_with_ticket():
    h = Harness()
    h.receive(*[alert("GpuRowRemapFailed")])
    assert h.case().state == REPAIR
    assert [a.kind for a in h.cluster.executed] == ["drain"]
    assert h.sent[0][1]["kind"] == "repair_ticket"


def test_fabric_class_drains_and_notifies_the_fabric_team():
    h = Harness()
    h.receive(*[alert("InfinibandPortDown", gpu=None, device="mlx5_0", port="1")])
    assert "DRAIN" in h.cluster.nodes["gpu-001"].flags
    assert h.sent[0][0] == "http://fabric.test/hook"


def test_job_owner_notified_with_job_details_and_nothing_cancelled():
    h = Harness()
    h.cluster.run_job("555", "gpu-002", (0, 1, 2, 3))
    h.receive(*[alert("JobHung", node="gpu-002", gpu=None, job_id="555")])
    url, body, _ = h.sent[0]
    assert url == "http://owners.test/hook" and body["job"]["user"] == "bob" and body["job"]["job_id"] == "555"
    assert h.cluster.executed == [] and h.cluster.jobs["555"].state == "RUNNING"


def test_straggler_drained_only_after_persisting_n_evaluations():
    h = Harness()
    h.receive(*[alert("GpuStragglerClock", gpu="5", job_id="77")])
    h.step()
    assert h.cluster.executed == []
    h.step()
    assert [a.kind for a in h.cluster.executed] == ["drain"]


def test_straggler_that_goes_away_is_never_drained():
    h = Harness()
    h.receive(*[alert("GpuStragglerClock", gpu="5")])
    h.receive(*[alert("GpuStragglerClock", gpu="5", resolved=True)])
    for _ in range(4):
        h.step()
    assert h.cluster.executed == [] and h.case().state == CLOSED


def test_approval_mode_proposes_and_waits_then_acts_as_the_operator():
    h = Harness()
    h.policy.classes[0].__dict__["mode"] = "approve"  # frozen dataclass: test-only override
    h.receive(*[alert()])
    assert h.case().state == PENDING_APPROVAL and h.cluster.executed == []
    h.step()
    assert h.cluster.executed == []
    h.engine.approve(1, "carol")
    assert h.cluster.executed[0].kind == "drain" and h.cluster.executed[0].actor == "operator:carol"


def test_reject_closes_the_case_without_action():
    h = Harness()
    h.policy.classes[0].__dict__["mode"] = "approve"
    h.receive(*[alert()])
    h.engine.reject(1, "carol")
    h.step()
    assert h.case().state == REJECTED and h.cluster.executed == []
    assert h.results("reject") == ["rejected"]


def test_class_off_is_audited_and_does_nothing():
    h = Harness()
    h.policy.classes[0].__dict__["mode"] = "off"
    h.receive(*[alert()])
    assert h.cluster.executed == [] and h.store.case(1) is None
    assert h.results("case") == ["not done: class is off"]


def test_second_alert_on_the_same_node_joins_the_open_case():
    h = Harness()
    h.receive(*[alert(), alert("GpuLost", gpu="3")])
    assert len(h.store.cases()) == 1 and h.results("intake") == ["joined"]


def test_every_decision_is_an_audit_record_with_the_required_fields():
    h = Harness()
    h.receive(*[alert()])
    entries = h.store.audit_entries()
    drain = next(e for e in entries if e.action == "drain")
    assert (drain.alert, drain.node, drain.mode, drain.actor, drain.result) == \
        ("GpuXidRebootRequired", "gpu-001", "auto", "policy:gpu-reboot", "done")
    assert drain.time == h.clock.now and drain.case_id == 1


def test_dry_run_decides_the_same_and_does_nothing():
    auto, dry = Harness("auto", max_drained_percent=50), Harness("dry-run", max_drained_percent=50)
    for h in (auto, dry):
        h.cluster.run_job("101", "gpu-001", (3,), state="FAILED", end_time=h.clock.now - 30)
        h.receive(*[alert(), alert("GpuRowRemapFailed", node="gpu-004")])
    assert dry.cluster.executed == []
    assert dry.case(1).state == PLANNED
    decided = lambda h, results: sorted((e.node, e.action) for e in h.store.audit_entries()  # noqa: E731
                                        if e.result in results and e.action in ("drain", "requeue", "ticket"))
    assert decided(auto, ("done",)) == decided(dry, ("would",))
    assert dry.results("reboot") == ["would: wait_idle -> reboot -> wait_return -> verify -> resume"] or \
        any(r.startswith("would: wait_idle") for r in dry.results("wait_idle"))


def test_an_alert_still_firing_after_its_case_ended_opens_no_new_case():
    h = Harness()
    h.receive(alert("GpuRowRemapFailed"))
    assert h.case(1).state == REPAIR
    for _ in range(3):
        h.step()
        h.receive(alert("GpuRowRemapFailed"))
    assert len(h.store.cases()) == 1 and [a.kind for a in h.cluster.executed] == ["drain"]
