"""What the automation owes an operator (issue 15): every alert handed to it accounted for, the
budget counting what Slurm shows, a held drain saying what it leaves open, a step that could not
act never reported as success, and no page for the automation's own reboot."""
from __future__ import annotations

from alerts.model import Alert
from remediation.ladder import INCOMPLETE, REPAIR
from remediation.suppress import AUTHOR, SETTLE_SECONDS

from tests.alerts.remediation_helpers import T0, Harness, alert


def intake_lines(h: Harness) -> list[tuple[str, str, str]]:
    return [(e.alert, e.result, e.node or "") for e in reversed(h.store.audit_entries()) if e.action == "intake"]


def test_an_alert_no_class_handles_leaves_one_audit_line():
    h = Harness()
    nvlink = alert("GpuNvlinkErrorRateHigh", node="gpu-002", gpu="5", action="drain")
    h.receive(nvlink)
    h.receive(nvlink)  # the pipeline's repeat notification: no second line
    assert intake_lines(h) == [("GpuNvlinkErrorRateHigh", "not handled: no class for this alert", "gpu-002")]
    assert "action=drain" in h.store.audit_entries()[0].detail
    assert h.cluster.executed == []


def test_an_alert_joining_a_case_or_already_handled_is_accounted_for():
    h = Harness()
    h.receive(alert())  # opens case 1 on gpu-001
    h.receive(alert("GpuLost"))  # the same node: joins it
    assert ("GpuLost", "joined", "gpu-001") in intake_lines(h)
    h.cluster.end_jobs("gpu-001")
    h.step()
    h.cluster.finish_reboot("gpu-001")
    h.step()
    assert h.case(1).state == "resolved"
    # The XID alert keeps firing for its hour; a restarted engine is handed that same firing.
    h.engine = h.build()
    h.receive(alert())
    assert intake_lines(h)[-1][:2] == ("GpuXidRebootRequired", "already handled")


def test_the_budget_counts_what_slurm_shows_out_of_service_not_open_cases():
    """Case 1's node is back in service (an operator resumed it) while its case waits at verify:
    it no longer takes the one-node budget, so gpu-002's drain goes ahead (it used to wait 3 min
    while the scheduler placed jobs on gpu-002's broken GPU)."""
    h = Harness(healthy=False, max_drained_nodes=1, max_drained_percent=100)
    h.receive(alert())
    h.step()
    h.cluster.finish_reboot("gpu-001")
    h.step()
    assert h.case(1).current_step == "verify"
    h.cluster.nodes["gpu-001"].state = "IDLE"  # resumed by an operator: in service
    h.receive(alert("GpuXidResetRequired", node="gpu-002", gpu="6"))
    assert "DRAIN" in h.cluster.nodes["gpu-002"].flags, h.results("drain")


def test_a_drain_held_by_the_budget_says_the_broken_gpu_stays_schedulable():
    h = Harness(max_drained_nodes=1, max_drained_percent=100)
    h.cluster.operator_drain("gpu-009")  # the budget is used up by an operator's maintenance
    h.receive(alert("GpuXidResetRequired", node="gpu-002", gpu="6"))
    assert "DRAIN" not in h.cluster.nodes["gpu-002"].flags
    step = [s for s in h.store.steps(1) if s.name == "drain"][-1]
    assert step.status == "waiting" and "budget exhausted" in step.detail
    assert "GPU 6 stays schedulable" in step.detail and "Slurm cannot take one GPU" in step.detail


def test_a_notify_step_without_a_receiver_leaves_the_case_incomplete():
    h = Harness()
    h.policy.receivers.pop("job_owner")
    h.receive(alert("JobHung", gpu=None, job_id="4242"))
    case = h.case()
    assert case.state == INCOMPLETE, case.detail
    assert "notify not done: no receiver 'job_owner' configured" in case.detail
    assert "not done: no receiver configured" in h.results("notify")


def test_a_repair_ticket_without_a_receiver_says_so_in_the_case():
    h = Harness()
    h.policy.receivers.pop("repair")
    h.receive(alert("GpuRowRemapFailed"))
    assert h.case().state == REPAIR and "ticket not done: no receiver 'repair' configured" in h.case().detail


def own_silences(h: Harness):
    return [s for s in h.silences.list() if s.created_by == AUTHOR]


def test_the_alerts_a_reboot_causes_are_held_until_the_node_is_back():
    h = Harness(return_timeout="15m")
    h.receive(alert())  # drained
    h.step()  # idle: rebooted
    (silence,) = own_silences(h)
    assert silence.comment.startswith("case 1: ClusterWatch rebooted gpu-001")
    unreachable = Alert({"alertname": "NodeUnreachable", "instance": "gpu-001", "severity": "critical"}, T0)
    elsewhere = Alert({"alertname": "NodeUnreachable", "instance": "gpu-002", "severity": "critical"}, T0)
    xid = Alert(dict(alert().labels), T0)
    assert h.silences.muted_by(unreachable, h.clock.now) == [silence.id]
    assert not h.silences.muted_by(elsewhere, h.clock.now), "another node's alert still pages"
    assert not h.silences.muted_by(xid, h.clock.now), "the fault's own alert stays visible"
    assert silence.ends_at == h.clock.now + 900
    h.step(120)
    h.cluster.finish_reboot("gpu-001")
    h.step()  # back, verified, resumed: the hold ends after the node's scrapes settle
    assert h.case().state == "resolved"
    assert own_silences(h)[0].ends_at == h.clock.now + SETTLE_SECONDS
    assert any(e.action == "suppress" for e in h.store.audit_entries())


def test_a_node_that_does_not_come_back_in_time_pages_again():
    h = Harness(return_timeout="10m")
    h.receive(alert())
    h.step()
    for _ in range(21):  # never back
        h.step()
    assert h.case().state == REPAIR and "did not come back" in h.case().detail
    unreachable = Alert({"alertname": "NodeUnreachable", "instance": "gpu-001"}, T0)
    assert h.silences.muted_by(unreachable, h.clock.now) == []


def test_a_clock_step_back_does_not_lengthen_the_wait_for_a_rebooted_node():
    """The clock set back an hour while a rebooted node is awaited: it is declared for repair
    (and pages again) the return timeout after the step, not an hour and the timeout later."""
    h = Harness(return_timeout="10m")
    h.receive(alert())
    h.step()  # rebooted
    h.step(-3600)
    for _ in range(21):  # never back
        h.step()
    assert h.case().state == REPAIR and "did not come back" in h.case().detail
    unreachable = Alert({"alertname": "NodeUnreachable", "instance": "gpu-001"}, T0)
    assert h.silences.muted_by(unreachable, h.clock.now) == []
