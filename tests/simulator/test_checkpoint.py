"""Simulated jobs honour the checkpoint contract (scheduler/checkpoint.py): ``scancel --signal=USR1
--batch`` starts a checkpoint that finishes after the job's checkpoint time, its mark is exposed
through the node's real textfile collector, and a kill or a requeue loses only the work since the
last finished checkpoint."""
from __future__ import annotations

import pytest

from scheduler.checkpoint import CHECKPOINT_METRIC, textfile_name
from simulator.fleet import Fleet
from simulator.jobs import CANCELLED, PENDING, RUNNING, TRAIN
from simulator.scheduler import CHECKPOINT_SECONDS
from simulator.workload import JobSpec, Workload

T0 = 1_800_000_000.0
JOB = 500_000


def spec(nodes: int = 1, work: float = 8 * 3600.0) -> JobSpec:
    return JobSpec(JOB, T0, "llama-8b-ablation", "alice", "llm-pretrain", "batch", 8, nodes, work, 24 * 3600.0,
                   TRAIN, 0.0, 0.0)


@pytest.fixture
def cluster(tmp_path):
    """Two idle nodes with textfile directories; one whole-node job that starts at T0 + 60 s."""
    fleet = Fleet(nodes=2, seed=3, speed=0, start=T0, warm=False, textfile_root=str(tmp_path))
    workload = Workload([spec()]).attach(fleet, warm=False)
    fleet.advance(60)
    job = fleet.scheduler.jobs[JOB]
    assert job.state == RUNNING and job.nodes == ["gpu-001"]
    yield fleet, workload, job
    fleet.stop()


def checkpoint_samples(fleet: Fleet, node: str) -> list[str]:
    """What the node's exporter exposes (once per test and node: scrapes within a real second share
    one collection)."""
    text = fleet.render_metrics(node).decode()
    return [line for line in text.splitlines() if line.startswith(CHECKPOINT_METRIC)]


def scancel(fleet: Fleet, *args: str):
    return fleet.slurm_command("scancel", list(args))


def test_a_signal_starts_a_checkpoint_that_lands_after_its_duration_and_is_exposed(cluster, tmp_path):
    fleet, _, job = cluster
    mark = tmp_path / "gpu-001" / textfile_name(str(JOB))
    fleet.advance(600)
    # The start mark only (the contract's "this job answers the signal"); the first periodic
    # checkpoint is at 1,800 s.
    assert float(mark.read_text().split()[-1]) == pytest.approx(job.start_time)
    asked_at = fleet.clock.now()
    assert scancel(fleet, "--signal=USR1", "--batch", str(JOB)).exit_code == 0
    assert job.checkpoints_requested == 1 and job.checkpoint_at is None
    fleet.advance(job.checkpoint_duration / 2)
    assert job.checkpoint_at is None  # still writing
    assert float(mark.read_text().split()[-1]) == pytest.approx(job.start_time)
    fleet.advance(job.checkpoint_duration)
    assert job.saved_progress == pytest.approx(600, abs=1)
    # The mark, written once the save finished, is the time of the state it holds: the request's
    # (the job went on training while it wrote, and that work is not in it).
    assert job.checkpoint_at == pytest.approx(asked_at)
    [sample] = checkpoint_samples(fleet, "gpu-001")
    assert sample.startswith(f'{CHECKPOINT_METRIC}{{job_id="{JOB}"}}')
    assert float(sample.split()[-1]) == pytest.approx(asked_at)
    assert checkpoint_samples(fleet, "gpu-002") == []  # only on the job's batch host


def test_checkpoint_time_grows_with_the_job_from_under_a_minute_to_five_minutes(tmp_path):
    assert spec(1).to_job().checkpoint_duration == 48
    assert 120 <= spec(8).to_job().checkpoint_duration <= 300
    assert spec(16).to_job().checkpoint_duration == spec(64).to_job().checkpoint_duration == 300


def test_a_requeue_after_the_checkpoint_loses_only_the_work_since_it(cluster):
    fleet, workload, job = cluster
    fleet.advance(1200)
    scancel(fleet, "--signal=USR1", "--batch", str(JOB))
    fleet.advance(job.checkpoint_duration + 60)
    saved, progress = job.saved_progress, job.progress
    assert saved == pytest.approx(1200, abs=1) and progress > saved
    fleet.scheduler.requeue(JOB)
    assert job.state == PENDING
    assert workload.ledger.lost_gpu_s["other"] == pytest.approx((progress - saved) * 8)
    assert job.run_seconds == pytest.approx(8 * 3600 - saved)  # resumes from the checkpoint


def test_without_the_signal_the_same_requeue_loses_everything_since_the_start(cluster):
    fleet, workload, job = cluster
    fleet.advance(1200 + 48 + 60)
    progress = job.progress
    fleet.scheduler.requeue(JOB)
    assert workload.ledger.lost_gpu_s["other"] == pytest.approx(progress * 8)
    assert job.run_seconds == pytest.approx(8 * 3600)


def test_a_kill_while_the_checkpoint_is_still_being_written_keeps_the_previous_one(cluster):
    fleet, workload, job = cluster
    fleet.advance(CHECKPOINT_SECONDS + 300)  # the periodic checkpoint at 1,800 s has landed
    assert job.saved_progress == CHECKPOINT_SECONDS
    scancel(fleet, "--signal=USR1", "--batch", str(JOB))
    fleet.advance(job.checkpoint_duration / 3)
    progress = job.progress
    fleet.scheduler.requeue(JOB)
    assert workload.ledger.lost_gpu_s["other"] == pytest.approx((progress - CHECKPOINT_SECONDS) * 8)


def test_a_job_hung_on_a_lost_gpu_cannot_checkpoint(cluster):
    fleet, _, job = cluster
    fleet.advance(600)
    fleet.inject({"kind": "xid", "node": "gpu-001", "gpu": 3, "xid": 79})
    assert job.stalled
    assert scancel(fleet, "--signal=USR1", "--batch", str(JOB)).exit_code == 0  # delivered...
    fleet.advance(job.checkpoint_duration * 4)
    assert job.checkpoint_at is None and job.saved_progress == 0  # ...but never answered
    [start_mark] = checkpoint_samples(fleet, "gpu-001")  # only the one written at its start
    assert float(start_mark.split()[-1]) == pytest.approx(job.start_time)


def test_the_mark_goes_when_the_job_ends(cluster, tmp_path):
    fleet, _, job = cluster
    scancel(fleet, "--signal=USR2", "--batch", str(JOB))
    fleet.advance(120)
    assert (tmp_path / "gpu-001" / textfile_name(str(JOB))).exists()
    assert scancel(fleet, str(JOB)).exit_code == 0  # no --signal: a cancel, as scancel does
    assert job.state == CANCELLED
    assert not (tmp_path / "gpu-001" / textfile_name(str(JOB))).exists()
    assert checkpoint_samples(fleet, "gpu-001") == []


def test_scancel_refuses_what_it_does_not_know(cluster):
    fleet, _, job = cluster
    refused = scancel(fleet, "--signal=KILL", "--batch", str(JOB))
    assert refused.exit_code == 1 and "unsupported" in refused.stderr
    assert scancel(fleet, "--signal=USR1", "--batch", "999").exit_code == 1
    assert job.state == RUNNING and job.checkpoints_requested == 0


def test_a_warm_start_marks_the_checkpoints_its_jobs_already_made(tmp_path):
    """Jobs the warm start finds running for hours have saved their progress every 30 minutes of
    it: their marks give the state of the last of those saves, not that nothing was saved since the
    run began (which made the pages' redone work after a requeue twice what the job lost)."""
    fleet = Fleet(nodes=8, seed=1, speed=0, start=T0, warm=False, textfile_root=str(tmp_path))
    try:
        Workload([]).attach(fleet, warm=True)
        saved = [job for job in fleet.scheduler.jobs.values() if job.state == RUNNING and job.saved_progress > 0]
        assert saved, "the warm start found no job past its first checkpoint"
        for job in saved:
            mark = tmp_path / job.nodes[0] / textfile_name(str(job.job_id))
            landed = float(mark.read_text().split()[-1])
            assert job.checkpoint_at == pytest.approx(landed, abs=0.001)  # the mark has milliseconds
            assert job.start_time < landed <= T0
            # Its state is of when the run reached the saved progress, at the job's speed.
            assert landed == pytest.approx(job.start_time + job.saved_progress / job.slowdown)
    finally:
        fleet.stop()
