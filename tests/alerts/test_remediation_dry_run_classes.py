"""Dry-run decides what auto would: a class in approve mode is only proposed (no would-be drain,
nothing counted in the budget), a class that is off is not planned at all. Found by the simulated
day (bench/bench_remediation.py): dry-run showed a straggler node's drain that auto only proposes."""
from __future__ import annotations

from remediation.ladder import PENDING_APPROVAL, PLANNED

from tests.alerts.remediation_helpers import Harness, alert


def decisions(h: Harness) -> list[tuple[str, str]]:
    return sorted((e.action, e.result) for e in h.store.audit_entries() if e.action != "case")


def test_dry_run_of_an_approve_class_proposes_and_walks_nothing():
    auto, dry = Harness("auto"), Harness("dry-run")
    for h in (auto, dry):
        straggler = next(c for c in h.policy.classes if c.name == "straggler")
        straggler.__dict__["mode"] = "approve"  # as shipped; frozen dataclass: test-only override
        h.receive(alert("GpuStragglerClock", gpu="5", job_id="77"))
        for _ in range(4):
            h.step()
    assert auto.case().state == PENDING_APPROVAL and auto.cluster.executed == []
    assert dry.case().state == PLANNED and dry.cluster.executed == []
    assert decisions(dry) == decisions(auto) == []
    assert dry.results("case") == ["planned (dry-run): would be proposed and wait for approval"]
    assert not dry.case().owned  # no would-be drain: the budget does not count the node


def test_dry_run_of_a_class_that_is_off_plans_nothing():
    dry = Harness("dry-run")
    dry.policy.classes[0].__dict__["mode"] = "off"  # frozen dataclass: test-only override
    dry.receive(alert())
    assert dry.store.case(1) is None and dry.cluster.executed == []
    assert dry.results("case") == ["not done: class is off"]


def test_dry_run_of_an_auto_class_still_shows_its_decisions():
    dry = Harness("dry-run")
    dry.receive(alert())
    assert dry.case().state == PLANNED
    assert dry.results("drain") == ["would"]
