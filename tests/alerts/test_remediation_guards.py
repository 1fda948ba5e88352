"""Each guard on its own: budget, rate limit, cooldown, lemon node, ownership, label validation,
crash safety, dry-run."""
from __future__ import annotations

import pytest

from remediation.ladder import OPEN, PLANNED, REPAIR, STARTED
from remediation.store import RemediationStore

from tests.alerts.remediation_helpers import Harness, alert


def test_budget_counts_nodes_drained_by_anyone():
    h = Harness(max_drained_nodes=2, max_drained_percent=100)
    h.cluster.operator_drain("gpu-009")
    h.receive(alert(node="gpu-001"), alert("GpuRowRemapFailed", node="gpu-002"))
    drained = [a.target for a in h.cluster.executed if a.kind == "drain"]
    assert drained == ["gpu-001"]
    assert h.results("drain")[-1].startswith("not done: budget exhausted: 2 of 10 nodes")
    assert h.store.case(2).state == OPEN and h.store.case(2).current_step == "drain", "waits for budget"


def test_budget_per_partition_percentage():
    h = Harness(max_drained_nodes=100, max_drained_percent=20)  # 10 nodes in batch: at most 2
    h.receive(*[alert("GpuRowRemapFailed", node=f"gpu-00{i}") for i in range(1, 5)])
    assert sum(a.kind == "drain" for a in h.cluster.executed) == 2
    assert any("partition batch: 2 of 10" in r for r in h.results("drain"))


def test_budget_frees_up_when_a_node_returns():
    h = Harness(max_drained_nodes=1, max_drained_percent=100)
    h.cluster.operator_drain("gpu-009")
    h.receive(alert("GpuRowRemapFailed", node="gpu-002"))
    assert h.cluster.executed == []
    h.cluster.nodes["gpu-009"].flags.clear()
    h.step()
    assert [a.target for a in h.cluster.executed] == ["gpu-002"]


def test_rate_limit_actions_per_hour():
    h = Harness(actions_per_hour=2, max_drained_percent=100)
    h.receive(*[alert("GpuRowRemapFailed", node=f"gpu-00{i}") for i in range(1, 5)])
    assert sum(a.kind == "drain" for a in h.cluster.executed) == 2
    assert any(r.startswith("not done: rate limit: 2 actions") for r in h.results("drain"))
    h.step(3601)
    assert sum(a.kind == "drain" for a in h.cluster.executed) == 4


def test_cooldown_blocks_a_second_reboot_of_the_same_node():
    h = Harness(node_cooldown="2h", lemon_window="0s")
    h.receive(alert())
    h.step()
    h.cluster.finish_reboot("gpu-001")
    h.step()
    h.step()
    assert h.case(1).state == "resolved"
    h.receive(alert("GpuLost"))
    h.step()
    h.step()
    assert [a.kind for a in h.cluster.executed].count("reboot") == 1
    assert any(r.startswith("not done: cooldown") for r in h.results("reboot"))
    h.step(7200)
    assert [a.kind for a in h.cluster.executed].count("reboot") == 2


def test_lemon_node_stays_drained_and_is_marked_for_repair():
    h = Harness(lemon_window="24h", node_cooldown="0s")
    h.receive(alert())
    h.step()
    h.cluster.finish_reboot("gpu-001")
    h.step()
    h.step()
    assert h.case(1).state == "resolved"
    h.step(3600)
    h.receive(alert("GpuLost"))
    case = h.case(2)
    assert case.lemon and case.state == REPAIR
    assert "DRAIN" in h.cluster.nodes["gpu-001"].flags
    assert [a.kind for a in h.cluster.executed].count("reboot") == 1
    assert h.sent[-1][1]["lemon"] is True and h.sent[-1][1]["kind"] == "repair_ticket"


def test_operator_drain_is_never_undone():
    h = Harness()
    h.cluster.operator_drain("gpu-001", "bad fan, waiting for vendor")
    h.receive(alert())
    for _ in range(5):
        h.step()
    assert h.cluster.executed == [], "no drain over it, no reboot, no resume"
    node = h.cluster.nodes["gpu-001"]
    assert node.reason == "bad fan, waiting for vendor" and "DRAIN" in node.flags
    assert h.case(1).state == "closed" and "left to whoever drained" in h.case(1).detail


def test_resume_refused_when_an_operator_took_over_the_drain():
    h = Harness()
    h.receive(alert())
    h.step()
    h.cluster.finish_reboot("gpu-001")
    h.cluster.operator_drain("gpu-001", "keep out: firmware update")
    h.step()
    assert "resume" not in [a.kind for a in h.cluster.executed]
    assert h.cluster.nodes["gpu-001"].reason == "keep out: firmware update"
    assert h.results("resume") == ["not done: drained by someone else"]


@pytest.mark.parametrize("labels,problem", [
    ({"instance": "gpu-[001-999]"}, "instance"),
    ({"instance": "gpu-404"}, "instance"),
    ({"instance": "gpu-001; reboot"}, "instance"),
    ({"gpu": "3; rm -rf /"}, "gpu"),
    ({"job_id": "12 && scancel"}, "job_id"),
    ({"gpu": "99999"}, "gpu"),
])
def test_labels_are_validated_before_reaching_the_scheduler(labels, problem):
    h = Harness()
    bad = alert()
    bad.labels.update(labels)
    h.receive(bad)
    assert h.cluster.executed == [] and h.store.case(1) is None
    refusal = h.store.audit_entries()[0]
    assert refusal.action == "intake" and refusal.result == "refused" and refusal.detail.startswith(problem)


def test_reason_is_built_from_checked_tokens_only():
    h = Harness()
    h.receive(alert(summary="$(reboot) `x`", description="free text"))
    assert h.cluster.executed[0].reason == "cw: GpuXidRebootRequired gpu 3 case 1"


def test_dry_run_executes_nothing_and_shows_its_decisions():
    h = Harness("dry-run")
    h.receive(alert())
    h.step()
    assert h.cluster.executed == [] and h.sent == []
    assert h.case(1).state == PLANNED
    assert h.results("drain") == ["would"]
    assert h.results("wait_idle")[0].startswith("would: wait_idle -> reboot")


def test_dry_run_counts_its_would_be_drains_in_the_budget():
    h = Harness("dry-run", max_drained_nodes=1, max_drained_percent=100)
    h.receive(alert(node="gpu-001"), alert(node="gpu-002"))
    assert h.results("drain")[0] == "would" and h.results("drain")[1].startswith("not done: budget exhausted")


def test_restart_after_a_reboot_was_asked_never_repeats_it(tmp_path):
    db = str(tmp_path / "remediation.db")
    h = Harness(db=db)
    h.receive(alert())
    h.step()
    assert [a.kind for a in h.cluster.executed].count("reboot") == 1
    # Simulate a crash between asking Slurm and recording the answer: the step is left "started".
    case = h.case(1)
    reboot_step = next(s for s in h.store.steps(1) if s.name == "reboot")
    h.store.db.execute("UPDATE steps SET status = ?, ended_at = NULL WHERE id = ?", (STARTED, reboot_step.id))
    h.store.update_case(1, h.clock.now, step=case.ladder.index("reboot"))
    h.store.close()
    h.store = RemediationStore(db)
    h.engine = h.build()
    h.engine.recover()
    assert h.case(1).current_step == "wait_return"
    h.cluster.finish_reboot("gpu-001")
    for _ in range(3):
        h.step()
    assert [a.kind for a in h.cluster.executed].count("reboot") == 1
    assert h.case(1).state == "resolved"
    assert "interrupted: rolled forward, not repeated" in h.results("reboot")


def test_restart_mid_drain_does_the_drain_again(tmp_path):
    db = str(tmp_path / "remediation.db")
    h = Harness(db=db)
    h.engine.mode = "auto"
    case = h.store.create_case("node:gpu-001", "gpu-reboot", "GpuXidRebootRequired", "gpu-001", "3", None,
                               alert().labels, "auto", OPEN, h.policy.classes[0].ladder, h.clock.now)
    h.store.update_case(case.id, h.clock.now, step=1)
    h.store.step_started(case.id, 1, "drain", "policy:gpu-reboot", h.clock.now)  # crashed here
    h.engine.recover()
    h.step()
    assert [a.kind for a in h.cluster.executed][:1] == ["drain"]
    assert "interrupted: will be done again" in h.results("drain")


def test_small_partition_may_still_drain_one_node():
    # 10 nodes at 5% would round to 0: a failing node could never be taken out. One is allowed.
    h = Harness(max_drained_nodes=100, max_drained_percent=5)
    h.receive(alert("GpuRowRemapFailed", node="gpu-001"), alert("GpuRowRemapFailed", node="gpu-002"))
    assert [a.target for a in h.cluster.executed if a.kind == "drain"] == ["gpu-001"]
    assert any("partition batch: 1 of 10 nodes out of service, at most 5% = 1" in r for r in h.results("drain"))
