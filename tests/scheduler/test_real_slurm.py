"""The adapter against a real single-node Slurm 22.05 with two fake GPUs (see slurm_cluster.py).

Reads: GPU jobs submitted with sbatch are seen with the GPU indices Slurm gave them. Actions:
drain, resume, requeue and reboot go through the real scontrol and show on the next poll; invalid
input is refused before scontrol runs (22.05's scontrol answers success for a node that does not
exist, so the adapter's own check is the only guard).
"""
from __future__ import annotations

import time

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from scheduler import ActionRefused, build_scheduler
from tests.scheduler.slurm_cluster import ToolSpy, started_slurm

pytestmark = pytest.mark.real_component



@pytest.fixture(scope="module")
def slurm():
    yield from started_slurm()


@pytest.fixture
def adapter(slurm):
    # Nothing test-specific in the adapter: only the namespace prefix and the config path.
    adapter = build_scheduler("slurm-cli", command_prefix=slurm.prefix, env={"SLURM_CONF": slurm.env["SLURM_CONF"]},
                              min_interval=0.2, timeout=30)
    adapter.backend.runner = ToolSpy(adapter.backend.runner, "scontrol")
    slurm.run("scancel", "--user=root", check=False)
    wait_for(adapter, lambda snap: not active_jobs(snap) and node(snap).state == "IDLE" and not node(snap).drain,
             "idle node without jobs", on_timeout=lambda: slurm.run("scontrol", "update", "NodeName=localhost",
                                                                   "State=RESUME", check=False))
    return adapter


def active_jobs(snapshot):
    # squeue keeps finished jobs listed for MinJobAge (300 s by default).
    return [job for job in snapshot.jobs
            if job.state in ("PENDING", "RUNNING", "SUSPENDED") or "COMPLETING" in job.state_flags]


def node(snapshot):
    return snapshot.node("localhost")


def wait_for(adapter, condition, what, timeout=30.0, on_timeout=None):
    deadline = time.monotonic() + timeout
    tried_fix = False
    while True:
        adapter.poller.expire()
        status = adapter.refresh(wait=True)
        if status.snapshot is not None and status.healthy and condition(status.snapshot):
            return status.snapshot
        if time.monotonic() > deadline:
            if on_timeout is not None and not tried_fix:
                on_timeout()
                tried_fix, deadline = True, time.monotonic() + timeout
                continue
            pytest.fail(f"timed out waiting for {what}; last: {status}")
        time.sleep(0.3)


def submit(slurm, *args: str) -> str:
    output = slurm.run("sbatch", "--parsable", *args).stdout.strip()
    return output.split(";")[0]


def test_reads_gpu_jobs_with_the_indices_slurm_assigned(slurm, adapter):
    first = submit(slurm, "--gres=gpu:1", "--job-name=gpu-a", "--wrap", "sleep 300")
    second = submit(slurm, "--gres=gpu:1", "--job-name=gpu-b", "--wrap", "sleep 300")
    snapshot = wait_for(adapter, lambda snap: len([job for job in snap.jobs if job.state == "RUNNING"]) == 2,
                        "two running GPU jobs")
    jobs = {job.job_id: job for job in snapshot.jobs}
    indices = [jobs[job_id].gpu_indices["localhost"] for job_id in (first, second)]
    assert sorted(index for pair in indices for index in pair) == [0, 1]  # one distinct GPU each
    assert all(jobs[job_id].gpus == 1 and jobs[job_id].nodes == ("localhost",) for job_id in (first, second))
    assert jobs[first].name == "gpu-a" and jobs[first].user == "root" and jobs[first].partition == "debug"
    assert (node(snapshot).gpus, node(snapshot).gpus_allocated) == (2, 2)
    assert snapshot.source.release.startswith("22.05") and snapshot.source.data_parser == "v0.0.38"

    registry = CollectorRegistry()
    registry.register(adapter.collector)
    text = generate_latest(registry).decode()
    for job_id, pair in zip((first, second), indices):
        assert f'slurm_job_gpu_info{{gpu="{pair[0]}",instance="localhost",job_id="{job_id}"}} 1.0' in text
    assert "clusterwatch_scheduler_up 1.0" in text


def test_invalid_input_is_refused_before_scontrol_runs(slurm, adapter):
    spy = adapter.backend.runner
    refusals = [
        lambda: adapter.actions.drain("nosuch", "x", "test"),
        lambda: adapter.actions.drain("localhost,localhost", "x", "test"),
        lambda: adapter.actions.drain("localhost", "\n;", "test"),
        lambda: adapter.actions.requeue("1; scancel 1", "test"),
        lambda: adapter.actions.reboot("localhost", "x", "IDLE", "test"),
        lambda: adapter.actions.resume("localhost", ""),
    ]
    for refusal in refusals:
        with pytest.raises(ActionRefused):
            refusal()
    assert spy.calls == []
    snapshot = wait_for(adapter, lambda snap: True, "a poll")
    assert not node(snapshot).drain
    # What the check prevents: the real scontrol says nothing and exits 0 for an unknown node.
    assert slurm.run("scontrol", "update", "NodeName=nosuch", "State=DRAIN", "Reason=x").returncode == 0


def test_drain_and_resume_show_on_the_next_poll(slurm, adapter):
    result = adapter.actions.drain("localhost", 'cw: XID 79 on GPU 1 "quoted"; $(reboot)', "policy:xid")
    assert result.ok, result
    assert adapter.backend.runner.calls == [
        ["update", "NodeName=localhost", "State=DRAIN", "Reason=cw: XID 79 on GPU 1 quoted reboot"]]
    snapshot = wait_for(adapter, lambda snap: node(snap).drain, "DRAIN flag")
    drained = node(snapshot)
    assert drained.reason == "cw: XID 79 on GPU 1 quoted reboot"
    assert drained.reason_set_by == "root" and drained.reason_time is not None
    assert drained.drained and drained.resumable  # idle and drained

    result = adapter.actions.resume("localhost", "operator:alice")
    assert result.ok, result
    snapshot = wait_for(adapter, lambda snap: not node(snap).drain, "drain cleared")
    assert node(snapshot).state == "IDLE" and node(snapshot).reason == ""
    # In service: Slurm refuses a second resume, as the model says (the dashboard's 409).
    assert not node(snapshot).resumable
    again = adapter.actions.resume("localhost", "operator:alice")
    assert not again.ok and "Invalid node state" in again.message, again


def test_requeue_shows_on_the_next_poll(slurm, adapter):
    job_id = submit(slurm, "--gres=gpu:1", "--requeue", "--wrap", "sleep 300")
    wait_for(adapter, lambda snap: any(job.job_id == job_id and job.state == "RUNNING" for job in snap.jobs),
             "job running")
    result = adapter.actions.requeue(job_id, "policy:hung")
    assert result.ok, result
    snapshot = wait_for(adapter, lambda snap: any(job.job_id == job_id and job.state == "PENDING" for job in snap.jobs),
                        "job back in the queue")
    assert [job for job in snapshot.jobs if job.job_id == job_id][0].nodes == ()
    missing = adapter.actions.requeue("999999", "policy:hung")
    assert not missing.ok and "Invalid job id" in missing.message and missing.returncode == 1


def test_reboot_request_shows_on_the_next_poll(slurm, adapter):
    submit(slurm, "--gres=gpu:1", "--wrap", "sleep 300")  # busy node: ASAP reboot waits for it
    wait_for(adapter, lambda snap: any(job.state == "RUNNING" for job in snap.jobs), "job running")
    result = adapter.actions.reboot("localhost", "cw: XID 48", "RESUME", "policy:xid")
    assert result.ok, result
    snapshot = wait_for(adapter, lambda snap: node(snap).has_flag("REBOOT_REQUESTED"), "reboot requested")
    assert node(snapshot).drain and node(snapshot).reason == "cw: XID 48"
    slurm.run("scontrol", "cancel_reboot", "localhost")
    slurm.run("scancel", "--user=root")
    slurm.run("scontrol", "update", "NodeName=localhost", "State=RESUME", check=False)
