"""The fixed job stream (same submissions whatever automation does) and the ledger of what faults
cost: work lost since the last checkpoint, allocation held by hung jobs, idle drained GPUs."""
from __future__ import annotations

import pytest

from simulator.fleet import Fleet
from simulator.jobs import COMPLETED, FAILED, PENDING, RUNNING, TIMEOUT, TRAIN
from simulator.scheduler import CHECKPOINT_SECONDS
from simulator.workload import JobSpec, Workload, fixed_stream

T0 = 1_800_000_000.0


def spec(job_id: int = 500_000, work: float = 4 * 3600.0, limit: float = 12 * 3600.0, gpus: int = 8,
         nodes: int = 1) -> JobSpec:
    return JobSpec(job_id, T0, "llama-8b-ablation", "alice", "llm-pretrain", "batch", gpus, nodes, work, limit,
                   TRAIN, 0.0, 0.0)


@pytest.fixture
def crafted():
    """Two idle nodes and one whole-node job that starts at the first tick (T0 + 60 s)."""
    fleet = Fleet(nodes=2, seed=3, speed=0, start=T0, warm=False)
    workload = Workload([spec()]).attach(fleet, warm=False)
    fleet.advance(60)
    job = fleet.scheduler.jobs[500_000]
    assert job.state == RUNNING and job.nodes == ["gpu-001"]
    yield fleet, workload, job
    fleet.stop()


def test_the_stream_depends_on_the_seed_only():
    first = fixed_stream(7, 40, T0, 86400)
    assert first == fixed_stream(7, 40, T0, 86400)
    assert first != fixed_stream(8, 40, T0, 86400)
    offered = sum(s.gpu_hours for s in first)
    assert 0.5 * 40 * 8 * 24 < offered < 1.2 * 40 * 8 * 24  # about the requested load (0.8)
    assert all(s.work_seconds < s.time_limit for s in first)


def run_with(actions: bool) -> tuple[list, dict]:
    """The same stream, with and without automation-like interventions (a fault, a drain, a requeue)."""
    fleet = Fleet(nodes=12, seed=7, speed=0, start=T0, warm=False)
    workload = Workload(fixed_stream(7, 12, T0, 6 * 3600)).attach(fleet)
    try:
        fleet.advance(3600)
        fleet.inject({"kind": "xid", "node": "gpu-002", "gpu": 0, "xid": 79})
        if actions:
            fleet.scheduler.drain("gpu-002", "cw: test")
            job = fleet.scheduler.job_of("gpu-002", 0)
            if job is not None:
                fleet.scheduler.requeue(job.job_id)
        fleet.advance(5 * 3600)
        return [(s.job_id, s.submit_time, s.work_seconds, s.num_nodes) for s in workload.submitted], \
            workload.finish().summary()
    finally:
        fleet.stop()


def test_same_seed_gives_the_same_job_stream_whatever_automation_does():
    untouched, untouched_ledger = run_with(actions=False)
    acted, acted_ledger = run_with(actions=True)
    assert untouched == acted and len(untouched) > 5
    assert untouched_ledger != acted_ledger  # the runs did differ


def test_a_crash_loses_the_work_since_the_last_checkpoint(crafted):
    fleet, workload, job = crafted
    fleet.advance(3000)  # 3,000 s of progress: a checkpoint at 1,800 s, 1,200 s since
    assert job.progress == pytest.approx(3000)
    fleet.inject({"kind": "xid", "node": "gpu-001", "gpu": 2, "xid": 48})  # its process dies
    assert job.state == FAILED
    ledger = workload.ledger
    assert ledger.lost_gpu_s["fault"] == pytest.approx((3000 - CHECKPOINT_SECONDS) * 8)
    assert ledger.failed_by_fault == {job.job_id}
    # Nobody requeues it: it stays failed. Automation drains the node and requeues it: it resumes
    # from its checkpoint on the healthy node and has only the rest of its work to do.
    fleet.scheduler.drain("gpu-001", "cw: test")
    fleet.scheduler.requeue(job.job_id)
    assert ledger.failed_by_fault == set() and ledger.requeues == 1
    fleet.advance(60)
    assert job.state == RUNNING and job.nodes == ["gpu-002"]
    assert job.run_seconds == pytest.approx(4 * 3600 - CHECKPOINT_SECONDS)
    fleet.advance(4 * 3600)
    assert job.state == COMPLETED
    assert ledger.lost_gpu_s["fault"] == pytest.approx(1200 * 8)  # nothing more
    # Idle GPUs of the drained node are counted as out of service (it holds no job any more).
    assert ledger.out_of_service_idle_gpu_s["gpu-001"] == pytest.approx(8 * (60 + 4 * 3600), rel=0.02)


def test_a_job_hung_on_a_lost_gpu_makes_no_progress_until_requeued(crafted):
    fleet, workload, job = crafted
    fleet.advance(2400)
    fleet.inject({"kind": "xid", "node": "gpu-001", "gpu": 3, "xid": 79})
    assert job.state == RUNNING and job.stalled  # its rank hangs, the job keeps its allocation
    progress = job.progress
    fleet.advance(1800)
    assert job.state == RUNNING and job.progress == progress
    ledger = workload.ledger
    assert ledger.wasted_gpu_s == pytest.approx(1800 * 8, rel=0.05)
    assert ledger.lost_gpu_s["fault"] == 0
    fleet.scheduler.drain("gpu-001", "cw: test")
    fleet.scheduler.requeue(job.job_id)
    assert job.state == PENDING and not job.stalled
    assert ledger.lost_gpu_s["fault"] == pytest.approx((progress - CHECKPOINT_SECONDS) * 8)
    assert ledger.jobs_hit == {job.job_id} and ledger.jobs_requeued == {job.job_id}


def test_a_hung_job_left_alone_times_out_and_loses_its_work():
    fleet = Fleet(nodes=2, seed=3, speed=0, start=T0, warm=False)
    workload = Workload([spec(work=6 * 3600, limit=3 * 3600)]).attach(fleet, warm=False)
    try:
        fleet.advance(60 + 2400)
        job = fleet.scheduler.jobs[500_000]
        fleet.inject({"kind": "gpu_lost", "node": "gpu-001", "gpu": 0})
        assert job.state == RUNNING and job.stalled
        fleet.advance(3 * 3600)
        assert job.state == TIMEOUT
        assert workload.ledger.lost_gpu_s["fault"] == pytest.approx((2400 - CHECKPOINT_SECONDS) * 8)
        assert workload.ledger.wasted_gpu_s == pytest.approx((3 * 3600 - 2400) * 8, rel=0.05)
        # The next job on the still broken GPU crashes at once (a black-hole node).
        assert fleet.scheduler.nodes["gpu-001"].allocations == {}
    finally:
        fleet.stop()


def test_a_job_still_hung_at_the_end_counts_its_work_since_the_checkpoint_as_lost(crafted):
    fleet, workload, job = crafted
    fleet.advance(2000)
    fleet.inject({"kind": "xid", "node": "gpu-001", "gpu": 3, "xid": 79})
    fleet.advance(600)
    summary = workload.finish().summary(["gpu-001"])
    assert summary["jobs_still_hung_at_end"] == 1
    assert workload.ledger.lost_gpu_s["fault"] == pytest.approx((2000 - CHECKPOINT_SECONDS) * 8)
    workload.finish()  # idempotent
    assert workload.ledger.lost_gpu_s["fault"] == pytest.approx((2000 - CHECKPOINT_SECONDS) * 8)
