"""The job collector: NVML processes mapped to Slurm jobs and Kubernetes pods, and mapping files."""
from __future__ import annotations

import shutil
from pathlib import Path

import pynvml
import pytest

from exporter.collector import CollectorContext
from exporter.collectors.jobs import JobsCollector, owner_from_cgroup, parse_mapping_file
from exporter.config import ExporterConfig
from exporter.hostfs import HostFS, MemoryFS
from exporter.nvml.fake import GIB, FakeMigInstance, FakeNVML, FakeProcess, FakeState
from exporter.nvml.session import NvmlSession
from tests.exporter.helpers import Samples, parse_exposition, render, sample, series

FIXTURES = Path(__file__).parent.parent / "fixtures" / "jobs"
POD_CGROUPFS = "0f4a5e0c-3f3b-4b2e-9a59-1c2d3e4f5a6b"
POD_SYSTEMD = "7e9d2c1b-aa55-4c3d-8e7f-0123456789ab"
POD_GUARANTEED = "11112222-3333-4444-5555-666677778888"
SLURM = {"namespace": "", "container": ""}  # the labels only a pod the kubelet reports has


class Node:
    """A fake 8-GPU node, its procfs fixture tree and mapping directory, and the job collector."""

    def __init__(self, mapping_dir: Path | None, procfs: object | None = None) -> None:
        self.state = FakeState.h100_node(gpus=8, seed=3)
        self.session = NvmlSession(FakeNVML(self.state))
        config = ExporterConfig(job_mapping_dir=str(mapping_dir) if mapping_dir else None)
        self.ctx = CollectorContext(config=config, procfs=procfs or HostFS(FIXTURES / "proc"), sysfs=MemoryFS(),
                                    nvml=self.session)
        self.collector = JobsCollector(self.ctx)

    def run(self, pids_by_gpu: dict[int, list[int]], memory: int = GIB) -> None:
        for index, pids in pids_by_gpu.items():
            self.state.gpu(index).processes = [FakeProcess(pid, memory) for pid in pids]

    def scrape(self) -> Samples:
        self.session.refresh()
        return parse_exposition(render(self.collector.collect()))

    def uuid(self, index: int) -> str:
        return self.state.gpu(index).uuid

    def errors(self) -> int:
        return self.ctx.errors.counts().get("jobs", 0)


def jobs_of(samples: Samples, gpu: int) -> set[tuple[str, str, str]]:
    return {(s["job_id"], s["pod"], s["source"]) for s in series(samples, "gpu_job_info") if s["gpu"] == str(gpu)}


@pytest.fixture
def mapping(tmp_path: Path) -> Path:
    target = tmp_path / "gpujobmap"
    shutil.copytree(FIXTURES / "mapping", target)
    return target


@pytest.mark.parametrize(
    ("pid", "job_id", "pod", "source"),
    [
        (4101, "1234", "", "cgroup"),
        (4102, "1240", "", "cgroup"),
        (4201, "5678", "", "cgroup"),
        (4202, "5679", "", "cgroup"),
        (4301, "", POD_CGROUPFS, "kubernetes"),
        (4302, "", POD_SYSTEMD, "kubernetes"),
        (4303, "", POD_GUARANTEED, "kubernetes"),
    ],
)
def test_cgroup_layouts_name_their_job_or_pod(pid, job_id, pod, source):
    owner = owner_from_cgroup((FIXTURES / "proc" / str(pid) / "cgroup").read_text())
    assert owner is not None
    assert (owner.job_id, owner.pod, owner.source) == (job_id, pod, source)


@pytest.mark.parametrize("pid", [4401, 4402])
def test_cgroups_outside_any_job_name_none(pid):
    assert owner_from_cgroup((FIXTURES / "proc" / str(pid) / "cgroup").read_text()) is None


@pytest.mark.parametrize(
    "text",
    ["0::/system.slice/job_12.service", "0::/\n", "garbage", "0::/system.slice/slurmstepd.scope/job_x/step_0"],
)
def test_near_misses_are_not_jobs(text):
    assert owner_from_cgroup(text) is None


def test_processes_are_attributed_through_their_cgroups():
    node = Node(mapping_dir=None)
    node.run({0: [4101], 1: [4102, 4201], 4: [4301, 4302], 5: [4303, 4401]})
    node.state.gpu(1).processes[1].used_gpu_memory = 3 * GIB
    samples = node.scrape()
    assert jobs_of(samples, 0) == {("1234", "", "cgroup")}
    assert jobs_of(samples, 1) == {("1240", "", "cgroup"), ("5678", "", "cgroup")}  # a shared GPU: both
    assert jobs_of(samples, 4) == {("", POD_CGROUPFS, "kubernetes"), ("", POD_SYSTEMD, "kubernetes")}
    assert jobs_of(samples, 5) == {("", POD_GUARANTEED, "kubernetes")}  # the login shell attributes nothing
    assert sample(samples, "gpu_processes", gpu=1, uuid=node.uuid(1)) == 2
    assert sample(samples, "gpu_process_memory_used_bytes", gpu=1, uuid=node.uuid(1), pid=4201, job_id="5678",
                  pod="", **SLURM) == 3 * GIB
    assert sample(samples, "gpu_process_memory_used_bytes", gpu=5, uuid=node.uuid(5), pid=4401, job_id="",
                  pod="", **SLURM) == GIB
    assert sample(samples, "gpu_processes", gpu=7, uuid=node.uuid(7)) == 0
    assert node.errors() == 0


def test_one_process_on_several_gpus_is_attributed_on_each():
    node = Node(mapping_dir=None)
    node.run({gpu: [4201] for gpu in range(8)})
    samples = node.scrape()
    assert all(jobs_of(samples, gpu) == {("5678", "", "cgroup")} for gpu in range(8))


def test_a_process_that_exited_loses_its_attribution_without_an_error():
    node = Node(mapping_dir=None)
    node.run({2: [4101, 999_999]})  # no <procfs>/999999: it exited after NVML listed it
    samples = node.scrape()
    assert jobs_of(samples, 2) == {("1234", "", "cgroup")}
    assert sample(samples, "gpu_processes", gpu=2, uuid=node.uuid(2)) == 2
    assert sample(samples, "gpu_process_memory_used_bytes", gpu=2, uuid=node.uuid(2), pid=999_999, job_id="",
                  pod="", **SLURM) == GIB
    assert node.errors() == 0


def test_unknown_process_memory_is_omitted_but_the_process_counted():
    node = Node(mapping_dir=None)
    node.state.gpu(0).processes = [FakeProcess(4101, None)]
    samples = node.scrape()
    assert series(samples, "gpu_process_memory_used_bytes") == []
    assert sample(samples, "gpu_processes", gpu=0, uuid=node.uuid(0)) == 1
    assert jobs_of(samples, 0) == {("1234", "", "cgroup")}


def test_mapping_files_attribute_gpus_with_no_process_on_them(mapping):
    node = Node(mapping)
    node.run({0: [4101], 1: [4201]})
    samples = node.scrape()
    # GPU 0: the job's process is there too; reported once, as the stable mapping source.
    assert jobs_of(samples, 0) == {("1234", "", "mapping")}
    assert jobs_of(samples, 1) == {("5678", "", "cgroup")}
    assert jobs_of(samples, 2) == {("5678", "", "mapping")}  # "<jobid> <uid>", as jobstats writes it
    # GPU 3 is held by two jobs and used by neither: held but unused.
    assert jobs_of(samples, 3) == {("9001", "", "mapping"), ("9002", "", "mapping")}
    assert sample(samples, "gpu_processes", gpu=3, uuid=node.uuid(3)) == 0
    assert jobs_of(samples, 4) == set()
    assert node.errors() == 0


def test_a_process_outside_any_job_cgroup_belongs_to_the_gpus_only_mapped_job(mapping):
    node = Node(mapping)
    node.run({0: [4402], 3: [4402]})  # proctrack/linuxproc: the job's process sits in slurmd.service
    samples = node.scrape()
    uuid0, uuid3 = node.uuid(0), node.uuid(3)
    assert sample(samples, "gpu_process_memory_used_bytes", gpu=0, uuid=uuid0, pid=4402, job_id="1234", pod="", **SLURM) == GIB
    # GPU 3 is shared by two jobs: which one owns the process cannot be told.
    assert sample(samples, "gpu_process_memory_used_bytes", gpu=3, uuid=uuid3, pid=4402, job_id="", pod="", **SLURM) == GIB


def test_mapping_files_named_by_mig_instance_or_uuid_attribute_their_gpu(mapping):
    node = Node(mapping)
    gpu5 = node.state.gpu(5)
    gpu5.mig_mode = True
    gpu5.mig_instances = [FakeMigInstance(1, 0, "MIG-aaaaaaaa-1111-2222-3333-444444444444", "3g.40gb", 40 * GIB)]
    (mapping / "4.0").write_text("4400\n")
    (mapping / node.uuid(6)).write_text("6600\n")
    (mapping / "MIG-aaaaaaaa-1111-2222-3333-444444444444").write_text("5500 1000\n")
    samples = node.scrape()
    assert jobs_of(samples, 4) == {("4400", "", "mapping")}
    assert jobs_of(samples, 5) == {("5500", "", "mapping")}
    assert jobs_of(samples, 6) == {("6600", "", "mapping")}


def test_array_and_het_job_ids_are_kept_as_written(mapping):
    (mapping / "7").write_text("4321_7\n4400+1\n")
    samples = Node(mapping).scrape()
    assert jobs_of(samples, 7) == {("4321_7", "", "mapping"), ("4400+1", "", "mapping")}


def test_malformed_or_stray_mapping_files_are_skipped_and_counted(mapping):
    (mapping / "4").write_text("not-a-job\n")  # bad content
    (mapping / "12").write_text("1\n")  # no GPU 12 on this node
    (mapping / "notes.txt").write_text("1\n")  # not a GPU name
    (mapping / "5").mkdir()  # a directory where a file belongs
    (mapping / ".6.tmp").write_text("half-writ")  # a prolog's temporary: ignored silently
    (mapping / "7").write_text("")  # emptied by an epilog: no job, not an error
    node = Node(mapping)
    samples = node.scrape()
    assert node.errors() == 4
    assert jobs_of(samples, 0) == {("1234", "", "mapping")}  # the good files still count
    assert all(jobs_of(samples, gpu) == set() for gpu in (4, 5, 6, 7))


def test_a_missing_mapping_directory_is_counted_and_processes_still_attributed(tmp_path):
    node = Node(tmp_path / "absent")
    node.run({0: [4101]})
    samples = node.scrape()
    assert jobs_of(samples, 0) == {("1234", "", "cgroup")}
    assert node.errors() == 1


def test_a_lost_gpu_keeps_its_mapped_job_and_reports_no_process_count(mapping):
    node = Node(mapping)
    node.run({0: [4101], 2: [4201]})
    node.scrape()
    node.state.gpu(2).lost = True
    samples = node.scrape()  # lost before the cycle: the session lists it as missing
    assert jobs_of(samples, 2) == {("5678", "", "mapping")}
    assert ("gpu_processes", frozenset({("gpu", "2"), ("uuid", node.uuid(2))})) not in samples
    assert jobs_of(samples, 0) == {("1234", "", "mapping")}
    assert node.errors() == 0


def test_a_gpu_lost_mid_cycle_is_marked_lost_and_keeps_its_mapped_job(mapping):
    node = Node(mapping)
    node.run({0: [4101]})
    node.session.refresh()
    node.state.gpu(0).lost = True  # falls off the bus between the refresh and this collector
    samples = parse_exposition(render(node.collector.collect()))
    assert jobs_of(samples, 0) == {("1234", "", "mapping")}
    assert series(samples, "gpu_processes") and all(s["gpu"] != "0" for s in series(samples, "gpu_processes"))
    assert [device.index for device in node.session.missing] == [0]


def test_a_process_query_failing_otherwise_is_counted_and_leaves_the_count_unknown():
    node = Node(mapping_dir=None)
    node.state.gpu(1).failing["nvmlDeviceGetComputeRunningProcesses"] = pynvml.NVML_ERROR_UNKNOWN
    samples = node.scrape()
    assert all(s["gpu"] != "1" for s in series(samples, "gpu_processes"))
    assert len(series(samples, "gpu_processes")) == 7
    assert node.errors() == 1


def test_an_unreadable_cgroup_is_counted():
    class Denied(MemoryFS):
        def read_text(self, path: str) -> str:
            raise PermissionError(13, "Permission denied", path)

    node = Node(mapping_dir=None, procfs=Denied())
    node.run({0: [4101]})
    samples = node.scrape()
    assert series(samples, "gpu_job_info") == []
    assert node.errors() == 1


def test_nvml_down_still_serves_mapping_attribution_of_gpus_seen_before(mapping):
    node = Node(mapping)
    node.scrape()
    node.state.init_error = pynvml.NVML_ERROR_DRIVER_NOT_LOADED
    node.session.close()
    samples = node.scrape()
    assert jobs_of(samples, 3) == {("9001", "", "mapping"), ("9002", "", "mapping")}
    assert series(samples, "gpu_processes") == []


@pytest.mark.parametrize(
    ("text", "jobs"),
    [("1234\n", ["1234"]), ("1234 1000\n", ["1234"]), ("\n1\n\n2\n1\n", ["1", "2"]), ("", [])],
)
def test_mapping_file_format(text, jobs):
    assert parse_mapping_file(text) == jobs


def test_mapping_file_with_a_bad_line_is_refused():
    with pytest.raises(ValueError, match="line 2"):
        parse_mapping_file("1234\nabc\n")


def test_registered_as_the_jobs_collector():
    from exporter.collector import available_collectors

    assert available_collectors()["jobs"].factory is JobsCollector
