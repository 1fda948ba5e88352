"""Every fixture version parses to the same model; expectations are written as data."""
import json
from pathlib import Path

import pytest

from scheduler.parsers import SlurmResponseError, load_document, parse_jobs, parse_nodes, source_info

FIXTURES = Path(__file__).parent.parent / "fixtures"
NEWER = ["slurm-23.11", "slurm-24.11"]


def load(folder: str, name: str) -> dict:
    return load_document((FIXTURES / folder / name).read_text(), name)


def jobs_by_id(folder: str) -> dict:
    return {job.job_id: job for job in parse_jobs(load(folder, "squeue.json"))}


def test_real_22_05_squeue():
    jobs = jobs_by_id("slurm-22.05")
    sleeper, plain = jobs["1"], jobs["2"]
    assert (sleeper.name, sleeper.user, sleeper.partition, sleeper.state) == ("sleeper", "root", "debug", "RUNNING")
    assert sleeper.user_id == "0"
    assert sleeper.nodes == ("localhost",)
    assert dict(sleeper.gpu_indices) == {"localhost": (0,)}
    assert sleeper.gpus == 1
    assert sleeper.time_limit_seconds is None  # null in 22.05: no limit set
    assert sleeper.start_time == 1795483144.0 and sleeper.exit_code == 0
    assert plain.gpus == 0 and dict(plain.gpu_indices) == {}
    assert sleeper.array_id == ""


def test_real_22_05_sinfo():
    [node] = parse_nodes(load("slurm-22.05", "sinfo.json"))
    assert (node.name, node.state, node.state_flags) == ("localhost", "ALLOCATED", ())
    assert (node.gpus, node.gpus_allocated, node.cpus, node.cpus_allocated) == (2, 1, 2, 2)
    assert node.partitions == ("debug",)
    assert node.memory_bytes == 1000 * 1024 * 1024


@pytest.mark.parametrize("folder,release,parser", [
    ("slurm-22.05", "22.05.8", "v0.0.38"), ("slurm-23.11", "23.11.4", "v0.0.40"), ("slurm-24.11", "24.11.1", "v0.0.42"),
])
def test_source_info_without_hard_coded_versions(folder, release, parser):
    info = source_info(load(folder, "squeue.json"), "slurm-cli")
    assert (info.release, info.data_parser) == (release, parser)


# job id: (state, flags, array id, nodes, GPU indices per node, GPUs, time limit s, exit code, started)
JOB_EXPECTATIONS = {
    "101": ("RUNNING", (), "", ("gpu-001", "gpu-002"),
            {"gpu-001": tuple(range(8)), "gpu-002": tuple(range(8))}, 16, 86400.0, 0, True),
    "205": ("RUNNING", (), "200_5", ("gpu-003",), {"gpu-003": (2, 5)}, 2, None, 0, True),
    "300": ("PENDING", (), "", (), {}, 4, 3600.0, 0, False),
    "99": ("FAILED", (), "", ("gpu-004",), {"gpu-004": (7,)}, 1, 1800.0, 1, True),
    "102": ("COMPLETED", ("COMPLETING",), "", ("cpu-01",), {}, 0, 600.0, 0, True),
}


@pytest.mark.parametrize("folder", NEWER)
@pytest.mark.parametrize("job_id", sorted(JOB_EXPECTATIONS))
def test_newer_squeue_shapes(folder, job_id):
    job = jobs_by_id(folder)[job_id]
    state, flags, array_id, nodes, indices, gpus, limit, exit_code, started = JOB_EXPECTATIONS[job_id]
    assert (job.state, job.state_flags, job.array_id, job.nodes) == (state, flags, array_id, nodes)
    assert dict(job.gpu_indices) == indices
    assert (job.gpus, job.time_limit_seconds, job.exit_code) == (gpus, limit, exit_code)
    assert (job.start_time is not None) == started


# node: (state, flags, reason, set by, GPUs, allocated, partitions)
NODE_EXPECTATIONS = {
    "gpu-001": ("ALLOCATED", (), "", "", 8, 8, ("gpu", "all")),
    "gpu-002": ("ALLOCATED", (), "", "", 8, 8, ("gpu",)),
    "gpu-003": ("MIXED", ("DRAIN",), "cw: XID 79 on GPU 3", "clusterwatch", 8, 2, ("gpu",)),
    "gpu-004": ("IDLE", ("DRAIN", "NOT_RESPONDING"), "Not responding", "slurm", 8, 0, ("gpu",)),
    "cpu-01": ("IDLE", (), "", "", 0, 0, ("debug",)),
}


@pytest.mark.parametrize("folder", NEWER)
def test_newer_grouped_sinfo_shape(folder):
    nodes = {node.name: node for node in parse_nodes(load(folder, "sinfo.json"))}
    assert set(nodes) == set(NODE_EXPECTATIONS)  # gpu-001 listed twice (two partitions), merged
    for name, expected in NODE_EXPECTATIONS.items():
        node = nodes[name]
        assert (node.state, node.state_flags, node.reason, node.reason_set_by, node.gpus,
                node.gpus_allocated, node.partitions) == expected
    assert nodes["gpu-003"].draining and not nodes["gpu-003"].drained
    assert nodes["gpu-004"].drained


def test_per_node_shape_of_scontrol_and_slurmrestd():
    nodes = {node.name: node for node in parse_nodes(load("slurm-24.11", "scontrol-show-nodes.json"))}
    node = nodes["gpu-004"]
    assert (node.state, node.state_flags) == ("IDLE", ("DRAIN", "REBOOT_REQUESTED"))
    assert node.reason_time == 1795499930.0 and node.reason_set_by == "root"
    assert nodes["gpu-001"].partitions == ("gpu", "all")


def test_grouped_record_with_several_nodes_splits_counts():
    document = {"sinfo": [{"node": {"state": ["IDLE"]}, "nodes": {"nodes": ["n[1-2]"]},
                           "cpus": {"total": 8, "allocated": 0}, "gres": {"total": "gpu:4", "used": "gpu:0"},
                           "partition": {"name": "p"}, "memory": {"maximum": 10, "allocated": 0}}]}
    nodes = parse_nodes(document)
    assert [node.name for node in nodes] == ["n1", "n2"]
    assert all(node.cpus == 4 and node.gpus == 4 for node in nodes)


def test_unknown_fields_and_missing_fields_do_not_break_parsing():
    [job] = parse_jobs({"jobs": [{"job_id": 7, "job_state": "SOME_FUTURE_STATE", "new_field": {"x": 1}}]})
    assert (job.job_id, job.state, job.nodes, job.gpus) == ("7", "SOME_FUTURE_STATE", (), 0)
    assert parse_nodes({"nodes": [{"name": "n1"}]})[0].name == "n1"
    assert parse_nodes({}) == [] and parse_jobs({}) == []


@pytest.mark.parametrize("raw,message", [
    ("not json", "not JSON"),
    ("[1, 2]", "expected a JSON object"),
    (json.dumps({"errors": [{"error": "Unable to contact slurm controller", "error_number": 1}], "jobs": []}),
     "Unable to contact slurm controller"),
])
def test_load_document_refuses_errors(raw, message):
    with pytest.raises(SlurmResponseError, match=message):
        load_document(raw, "squeue")
