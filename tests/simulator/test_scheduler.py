"""The simulated Slurm: placement, drain/resume, requeue, reboot, node failure, as slurmctld does them."""
from __future__ import annotations

import pytest

from simulator import slurm_face
from simulator.jobs import COMPLETED, FAILED, NODE_FAIL, PENDING, RUNNING, TRAIN, JobGenerator, SimJob
from simulator.scheduler import REBOOT_SECONDS, SchedulerError, SimScheduler
from simulator.topology import build_topology

T0 = 1_800_000_000.0


def empty_cluster(nodes: int = 8) -> SimScheduler:
    scheduler = SimScheduler(build_topology(nodes), JobGenerator(1, nodes, 8), T0, queue_target=0)
    return scheduler


def submit(scheduler: SimScheduler, job_id: int, gpus: int, nodes: int = 1, run: float = 3600.0) -> SimJob:
    job = SimJob(job_id, "train", "alice", "llm", "batch", gpus, nodes, 86400.0, scheduler.now, run, TRAIN)
    scheduler.jobs[job_id] = job
    return job


def test_multi_node_jobs_take_whole_nodes_and_small_jobs_pack():
    scheduler = empty_cluster(4)
    big = submit(scheduler, 1, 8, nodes=2)
    small_a = submit(scheduler, 2, 2)
    small_b = submit(scheduler, 3, 4)
    scheduler.tick(T0 + 1)
    assert big.state == RUNNING and len(big.nodes) == 2
    assert all(gpus == list(range(8)) for gpus in big.gpus.values())
    # Both small jobs share one node rather than each taking a whole one.
    assert small_a.nodes == small_b.nodes
    assert set(small_a.gpus[small_a.nodes[0]]).isdisjoint(small_b.gpus[small_b.nodes[0]])


def test_job_waits_with_reason_when_the_cluster_is_full():
    scheduler = empty_cluster(2)
    first = submit(scheduler, 1, 8, nodes=2)
    second = submit(scheduler, 2, 8, nodes=1)
    scheduler.tick(T0 + 1)
    assert first.state == RUNNING
    assert second.state == PENDING and second.reason == "Resources"


def test_job_completes_after_its_run_time_and_frees_its_gpus():
    scheduler = empty_cluster(1)
    job = submit(scheduler, 1, 8, run=600)
    scheduler.tick(T0 + 1)
    scheduler.tick(T0 + 700)
    assert job.state == COMPLETED
    assert scheduler.nodes["gpu-001"].allocations == {}


def test_drained_node_gets_no_new_jobs_but_running_ones_finish():
    scheduler = empty_cluster(2)
    running = submit(scheduler, 1, 8, run=600)
    scheduler.tick(T0 + 1)
    node = running.nodes[0]
    scheduler.drain(node, "xid 79 on gpu 3", user="clusterwatch")
    assert scheduler.nodes[node].state_flags == ["DRAIN"]
    later = submit(scheduler, 2, 8)
    scheduler.tick(T0 + 2)
    assert later.state == RUNNING and later.nodes != [node]
    assert running.state == RUNNING  # a drain never kills what runs
    scheduler.tick(T0 + 700)
    assert running.state == COMPLETED
    assert scheduler.nodes[node].state == "idle" and scheduler.nodes[node].drain


def test_requeued_job_restarts_on_other_nodes():
    scheduler = empty_cluster(3)
    job = submit(scheduler, 1, 8)
    scheduler.tick(T0 + 1)
    first_node = job.nodes[0]
    scheduler.drain(first_node, "bad gpu")
    result = slurm_face.scontrol(scheduler, ["requeue", "1"])
    assert result.exit_code == 0
    assert job.state == PENDING and job.restart_count == 1
    scheduler.tick(T0 + 2)
    assert job.state == RUNNING and job.nodes != [first_node]


def test_node_that_stops_responding_fails_its_jobs_and_they_are_requeued():
    scheduler = empty_cluster(2)
    job = submit(scheduler, 1, 8)
    scheduler.tick(T0 + 1)
    node = job.nodes[0]
    scheduler.set_responding(node, False)
    assert scheduler.nodes[node].state == "down"
    assert "NOT_RESPONDING" in scheduler.nodes[node].state_flags
    assert job.state == PENDING and job.restart_count == 1  # NODE_FAIL, then requeued (requeue=true)
    scheduler.tick(T0 + 2)
    assert job.state == RUNNING and job.nodes != [node]


def test_reboot_asap_drains_waits_for_jobs_then_reboots_and_resumes():
    scheduler = empty_cluster(1)
    job = submit(scheduler, 1, 8, run=600)
    scheduler.tick(T0 + 1)
    reboots = []
    scheduler.listeners.append(lambda event, subject: reboots.append(subject.name) if event == "reboot" else None)
    assert slurm_face.scontrol(scheduler, ["reboot", "ASAP", "nextstate=RESUME", "reason=gpu reset", "gpu-001"]).exit_code == 0
    node = scheduler.nodes["gpu-001"]
    assert node.drain and "REBOOT_REQUESTED" in node.state_flags
    scheduler.tick(T0 + 300)
    assert node.rebooting_until is None and job.state == RUNNING  # waits for the job
    scheduler.tick(T0 + 700)  # job done: reboot starts
    assert job.state == COMPLETED and node.state == "down" and "REBOOT_ISSUED" in node.state_flags
    scheduler.tick(T0 + 700 + REBOOT_SECONDS + 1)
    assert reboots == ["gpu-001"]
    assert node.state == "idle" and not node.drain and node.reason == ""


def test_failed_job_loses_work_since_its_last_checkpoint():
    scheduler = empty_cluster(1)
    job = submit(scheduler, 1, 8, run=86400)
    scheduler.tick(T0 + 1)
    scheduler.tick(T0 + 2400)  # 40 minutes in: the last checkpoint was at 30
    scheduler.fail_job(job.job_id, FAILED)
    assert job.state == FAILED
    assert scheduler.lost_gpu_seconds == pytest.approx((2399 - 1800) * 8, rel=0.01)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["update", "NodeName=gpu-999", "State=DRAIN", "Reason=x"], "Invalid node name"),
        (["update", "NodeName=gpu-001", "State=DRAIN"], "reason"),
        (["update", "NodeName=gpu-001", "State=RESUME"], "not drained"),
        (["update", "NodeName=gpu-001", "State=EXPLODE"], "Invalid node state"),
        (["requeue", "424242"], "Invalid job id"),
        (["requeue", "abc"], "Invalid job id"),
        (["reboot", "nextstate=SIDEWAYS", "gpu-001"], "nextstate"),
        (["launch-missiles"], "invalid keyword"),
    ],
)
def test_scontrol_refuses_like_slurm(argv, message):
    scheduler = empty_cluster(1)
    result = slurm_face.scontrol(scheduler, argv)
    assert result.exit_code == 1
    assert message.lower() in result.stderr.lower()


def test_node_down_via_scontrol_fails_jobs_with_node_fail():
    scheduler = empty_cluster(1)
    job = submit(scheduler, 1, 8)
    job.requeue = False
    scheduler.tick(T0 + 1)
    assert slurm_face.scontrol(scheduler, ["update", "NodeName=gpu-001", "State=DOWN", "Reason=dead psu"]).exit_code == 0
    assert job.state == NODE_FAIL


def test_squeue_and_sinfo_have_the_slurm_22_05_shape():
    scheduler = empty_cluster(4)
    submit(scheduler, 1, 8, nodes=2)
    submit(scheduler, 2, 3)
    scheduler.tick(T0 + 1)
    squeue = slurm_face.squeue(scheduler)
    assert squeue["meta"]["plugin"]["type"] == "openapi/v0.0.38"
    job = next(j for j in squeue["jobs"] if j["job_id"] == 1)
    assert job["job_state"] == "RUNNING" and job["nodes"] == "gpu-[001-002]"
    assert job["gres_detail"] == ["gpu:8(IDX:0-7)", "gpu:8(IDX:0-7)"]
    assert job["time_limit"] == 1440  # minutes, as Slurm 22.05 reports it
    small = next(j for j in squeue["jobs"] if j["job_id"] == 2)
    assert small["gres_detail"] == ["gpu:3(IDX:0-2)"]
    sinfo = slurm_face.sinfo(scheduler)
    states = {n["name"]: (n["state"], n["gres_used"]) for n in sinfo["nodes"]}
    assert states["gpu-001"] == ("allocated", "gpu:8(IDX:0-7)")
    assert states["gpu-003"] == ("mixed", "gpu:3(IDX:0-2)")
    assert states["gpu-004"] == ("idle", "gpu:0(IDX:N/A)")


def test_scheduler_adapter_reads_the_simulated_face():
    """The simulator's JSON goes through the real adapter's parsers unchanged."""
    from scheduler.parsers import parse_jobs, parse_nodes  # the adapter's public parsers

    scheduler = empty_cluster(4)
    submit(scheduler, 7, 4)
    scheduler.tick(T0 + 1)
    scheduler.drain("gpu-004", "cw: test")
    jobs = parse_jobs(slurm_face.squeue(scheduler))
    nodes = parse_nodes(slurm_face.sinfo(scheduler))
    job = next(j for j in jobs if j.job_id == "7")
    assert job.state == "RUNNING"
    assert dict(job.gpu_indices) == {"gpu-001": (0, 1, 2, 3)}
    drained = next(n for n in nodes if n.name == "gpu-004")
    assert "DRAIN" in drained.state_flags and drained.reason == "cw: test"
