"""The real chain against the simulator on its explicit clock: exporters scraped into the embedded
store, the shipped rule pack evaluated, alerts through the notification pipeline's remediation
hook into the engine (shipped policy), acting through the real scheduler adapter on the
simulator's Slurm face. An XID 79 under a running job: the node is drained by ClusterWatch, the
hung job requeued, no healthy node touched; dry-run decides the same and does nothing."""
from __future__ import annotations

import pytest

from bench.bench_remediation import T0, Day, first_drains

pytestmark = pytest.mark.slow

NODES = 8
FAULT_AT = T0 + 600


def run(mode: str) -> tuple[Day, int]:
    day = Day(mode, nodes=NODES, seed=7, hours=1.25, scrape=60.0, faults=())
    try:
        day.advance_to(FAULT_AT - 60)
        # A GPU that runs a job (the same one in both modes: nothing has happened yet).
        node, gpu, job = next((n, g, day.fleet.scheduler.jobs[j]) for n, sim in day.fleet.scheduler.nodes.items()
                              for g, j in sorted(sim.allocations.items()))
        day.add_fault(FAULT_AT, {"kind": "xid", "node": node, "gpu": gpu, "xid": 79})
        day.run()
        return day, job.job_id
    finally:
        day.close()


@pytest.fixture(scope="module")
def auto():
    return run("auto")


def test_faulty_node_drained_by_clusterwatch_and_its_job_requeued(auto):
    day, job_id = auto
    result = day.result
    node = result.faulty[0]
    assert node in result.drains
    assert result.drains[node] - result.fault_times[node] <= 240  # a scrape, group_wait, an engine step
    drain = [e for e in day.engine.store.audit_entries(limit=10_000) if e.action == "drain" and e.result == "done"]
    assert [e.node for e in drain] == [node] and "cw:" in drain[0].detail
    assert not result.healthy_drained
    assert str(job_id) in result.requeued_by_engine
    job = day.fleet.scheduler.jobs[job_id]
    assert job.restart_count == 1 and node not in job.nodes
    assert result.max_out_of_service <= result.budget[0]
    assert "GpuXidRebootRequired" in result.alerts_fired
    # The ladder went on: rebooted (the XID cleared), verified and returned to service.
    case = next(c for c in result.cases if c["node"] == node)
    assert case["state"] in ("resolved", "open"), case
    assert result.ledger["requeues"] >= 1 and result.ledger["jobs_hit_by_faults"] >= 1


def test_dry_run_makes_the_same_decisions_and_acts_on_nothing(auto):
    auto_day, _ = auto
    dry_day, job_id = run("dry-run")
    # The same first decision about the fault; later ones may differ, as auto's reboot cleared
    # alerts that keep firing in dry-run (there a second case opens when the XID alert ends).
    assert first_drains(dry_day.result) == first_drains(auto_day.result) != {}
    requeues = [d for d in dry_day.result.decisions if d[2] == "requeue"]
    assert requeues and all(d[3] == "would" for d in requeues)
    assert dry_day.result.cw_drained_at_end == [] and dry_day.result.max_out_of_service == 0
    assert dry_day.fleet.scheduler.jobs[job_id].restart_count == 0
    assert auto_day.result.submitted == dry_day.result.submitted  # the same job stream
