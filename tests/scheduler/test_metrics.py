"""The collector renders the cached snapshot: families, labels, cardinality, health."""
from dataclasses import replace

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from scheduler.actions import ActionCounts
from scheduler.metrics import MAX_LABEL, METRICS, NODE_FLAGS, SchedulerCollector
from scheduler.poller import PollStatus
from tests.scheduler.fakes import fixture_snapshot


def render(status: PollStatus, now: float = 1010.0, actions: ActionCounts | None = None) -> dict:
    registry = CollectorRegistry()
    registry.register(SchedulerCollector(lambda: status, "fake", actions, wall_clock=lambda: now))
    text = generate_latest(registry).decode()
    samples: dict[str, list] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def ok_status(snapshot=None) -> PollStatus:
    return PollStatus(snapshot=snapshot or fixture_snapshot(taken_at=1000.0), polls=3, errors=1,
                      last_attempt_end=1000.0, last_success=1000.0, last_duration=0.25)


def test_job_families():
    samples = render(ok_status())
    info = {labels["job_id"]: labels for labels, _ in samples["slurm_job_info"]}
    assert info["101"] == {"job_id": "101", "array_id": "", "user": "alice", "uid": "1000", "account": "llm",
                           "partition": "gpu", "name": "llama-pretrain", "state": "RUNNING", "reason": ""}
    assert info["205"]["array_id"] == "200_5" and info["300"]["reason"] == "Resources"
    gpus = {labels["job_id"]: value for labels, value in samples["slurm_job_gpus"]}
    assert gpus == {"101": 16, "205": 2, "300": 4, "99": 1, "102": 0}
    limits = {labels["job_id"]: value for labels, value in samples["slurm_job_time_limit_seconds"]}
    assert limits["101"] == 86400 and "205" not in limits  # infinite: no series
    starts = {labels["job_id"] for labels, _ in samples["slurm_job_start_time_seconds"]}
    assert "300" not in starts and "101" in starts
    assert {labels["job_id"]: value for labels, value in samples["slurm_job_exit_code"]} == {"99": 1, "102": 0}


def test_gpu_to_job_join():
    samples = render(ok_status())
    pairs = {(labels["job_id"], labels["instance"], labels["gpu"]) for labels, _ in samples["slurm_job_gpu_info"]}
    assert ("205", "gpu-003", "2") in pairs and ("205", "gpu-003", "5") in pairs
    assert len([pair for pair in pairs if pair[0] == "101"]) == 16
    # Job 99 has ended: squeue still lists it with its gres_detail, but its GPU is free again, and
    # the next job on gpu-004 GPU 7 must not match two jobs in the join.
    assert not [pair for pair in pairs if pair[0] == "99"]


def test_node_families_and_flags():
    samples = render(ok_status())
    info = {labels["instance"]: labels for labels, _ in samples["slurm_node_info"]}
    assert info["gpu-003"]["state"] == "MIXED" and info["gpu-003"]["reason"] == "cw: XID 79 on GPU 3"
    assert info["gpu-001"]["partitions"] == "gpu,all"
    flags = {(labels["instance"], labels["flag"]): value for labels, value in samples["slurm_node_flag"]}
    assert len(flags) == 5 * len(NODE_FLAGS)  # every node has every flag, 0 or 1
    assert flags[("gpu-003", "draining")] == 1 and flags[("gpu-003", "drained")] == 0
    assert flags[("gpu-004", "drained")] == 1 and flags[("gpu-004", "not_responding")] == 1
    assert flags[("gpu-001", "drain")] == 0


def test_partition_totals():
    samples = render(ok_status())
    gpus = {labels["partition"]: value for labels, value in samples["slurm_partition_gpus"]}
    allocated = {labels["partition"]: value for labels, value in samples["slurm_partition_gpus_allocated"]}
    assert gpus == {"gpu": 32, "all": 8, "debug": 0} and allocated["gpu"] == 18
    drain = {labels["partition"]: value for labels, value in samples["slurm_partition_nodes_drain"]}
    assert drain["gpu"] == 2
    jobs = {(labels["partition"], labels["state"]): value for labels, value in samples["slurm_partition_jobs"]}
    assert jobs[("gpu", "RUNNING")] == 2


def test_free_text_labels_are_cut():
    snapshot = fixture_snapshot(taken_at=1000.0)
    long_job = replace(snapshot.jobs[0], name="n" * 500)
    long_node = replace(snapshot.nodes[0], reason="r" * 500)
    snapshot = replace(snapshot, jobs=(long_job,), nodes=(long_node,))
    samples = render(ok_status(snapshot))
    [(job_labels, _)] = samples["slurm_job_info"]
    [(node_labels, _)] = samples["slurm_node_info"]
    assert len(job_labels["name"]) == MAX_LABEL and len(node_labels["reason"]) == MAX_LABEL


def test_health_when_polls_fail_keeps_data_and_shows_age():
    status = replace(ok_status(), last_error="SchedulerTimeout: no answer", errors=2)
    actions = ActionCounts()
    actions.add("drain", "done")
    actions.add("drain", "refused")
    samples = render(status, now=1300.0, actions=actions)
    assert samples["clusterwatch_scheduler_up"] == [({}, 0.0)]
    assert samples["clusterwatch_scheduler_data_age_seconds"] == [({}, 300.0)]
    assert samples["clusterwatch_scheduler_poll_errors_total"] == [({}, 2.0)]
    assert samples["clusterwatch_scheduler_poll_duration_seconds"] == [({}, 0.25)]
    assert ({"action": "drain", "outcome": "refused"}, 1.0) in samples["clusterwatch_scheduler_actions_total"]
    assert "slurm_job_info" in samples  # stale data is still served, with its age
    [(labels, _)] = samples["clusterwatch_scheduler_info"]
    assert labels == {"backend": "fake", "release": "23.11.4", "data_parser": "v0.0.40"}


def test_before_the_first_poll_only_health_is_exposed():
    samples = render(PollStatus(snapshot=None))
    assert samples["clusterwatch_scheduler_up"] == [({}, 0.0)]
    assert "slurm_job_info" not in samples and "clusterwatch_scheduler_data_age_seconds" not in samples


def test_every_family_is_documented():
    for spec in METRICS.values():
        assert spec.help and spec.source
        assert spec.name.startswith(("slurm_", "clusterwatch_scheduler_"))
