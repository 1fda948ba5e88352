"""Which jobs hold which GPUs: NVML's processes mapped to jobs, and a Slurm prolog's mapping files.

Job attribution is a join (docs/architecture.md#the-gpu-to-job-join): this collector emits ``gpu_job_info{gpu,uuid,job_id,pod,
source} 1`` once per (GPU, job) and the scheduler side emits the jobs' metadata. Two sources:

1. Processes. For each GPU, ``nvmlDeviceGetComputeRunningProcesses`` lists the PIDs using it;
   ``<procfs>/<pid>/cgroup`` says whose they are:
   - Slurm, cgroup v1: ``9:memory:/slurm/uid_1000/job_1234/step_0/task_0`` (also
     ``/slurm_<node>/...`` with multiple slurmd);
   - Slurm, cgroup v2: ``0::/system.slice/slurmstepd.scope/job_1234/step_0/user/task_0``
     (also ``<node>_slurmstepd.scope``, and ``step_batch``/``step_extern`` steps);
   - Kubernetes, cgroupfs driver: ``/kubepods/burstable/pod<uid>/<container>``; systemd driver:
     ``/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid_with_underscores>.slice/...``.
   Slurm's cgroup carries the job's own id (``SLURM_JOB_ID``), also for an array task, whose id
   differs from its array's: that is the id ``slurm_job_info{job_id}`` carries, so the join holds.
   Series from this source have ``source="cgroup"`` (Slurm) or ``source="kubernetes"``.
2. Mapping files (``--job-mapping-dir``), the format dcgm-exporter's ``--hpc-job-mapping-dir``
   and Princeton jobstats' prolog use: one file per GPU, written by the Slurm prolog and removed
   by the epilog, named by the GPU's index (``3``), a MIG instance ``<gpu>.<instance>``
   (attributed to its GPU), or a GPU/MIG UUID; one job id per line, where only the first word
   counts (jobstats writes ``<jobid> <uid>``). Dot files are a prolog's half-written temporaries
   and are ignored. ``source="mapping"``. A GPU allocated this way is attributed even with no
   process on it, which is what makes "held but unused" visible.

A job seen through both sources is reported once, as ``mapping``: the file exists for the job's
whole life while processes come and go, so the series' identity stays stable. A process whose
cgroup names no job, on a GPU the mapping gives to exactly one job, is counted as that job's.

Labels: Slurm jobs have ``job_id`` set and ``pod=""``; Kubernetes pods have ``pod`` (the pod
UID) set and ``job_id=""``, so a join on ``job_id`` never matches a pod and
``gpu_job_info{pod!=""}`` selects the pods.

``gpu_processes`` is exposed only when NVML answered, so a GPU whose process list could not be
read is never mistaken for an unused one. A process that exited between NVML's answer and the
cgroup read is normal and only loses its attribution; an unreadable or malformed mapping file is
skipped and counted as a collector error. GPUs that are lost keep their mapping-file attribution
(which job lost its GPU is what an operator needs to know).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable

import pynvml
from pynvml import NVMLError

from cwkernel.metrics import FamilySet, gauge, metric_table
from exporter.collector import Collector, CollectorContext, NoDataError, register_collector
from exporter.hostfs import FileTree, HostFS
from exporter.nvml.session import GpuDevice, NvmlSession

CGROUP, KUBERNETES, MAPPING = "cgroup", "kubernetes", "mapping"
GPU = ("gpu", "uuid")
OWNER = ("job_id", "pod")

PROCESSES_SOURCE = "nvmlDeviceGetComputeRunningProcesses"
CGROUP_SOURCE = "/proc/PID/cgroup (under --procfs)"

JOB_METRICS = metric_table(
    gauge("gpu_job_info", "GPU-to-job attribution, value 1, one series per (GPU, job); job_id for Slurm jobs, "
          "pod (UID) for Kubernetes pods; source: cgroup, kubernetes or mapping.",
          [*GPU, *OWNER, "source"], "",
          f"{PROCESSES_SOURCE} + {CGROUP_SOURCE}; files in --job-mapping-dir named by GPU index or UUID"),
    gauge("gpu_processes", "Compute processes on the GPU; 0 on a GPU allocated to a job means held but unused.",
          GPU, "", PROCESSES_SOURCE),
    gauge("gpu_process_memory_used_bytes", "Device memory used by one process, with the job (or pod) it belongs "
          "to; empty job_id and pod when neither its cgroup nor the mapping names one.",
          [*GPU, "pid", *OWNER], "bytes", f"{PROCESSES_SOURCE} (.usedGpuMemory) + {CGROUP_SOURCE}"),
)


@dataclass(frozen=True, order=True)
class Owner:
    """Who a process or an allocation belongs to: a Slurm job, or a Kubernetes pod."""

    job_id: str = ""
    pod: str = ""
    source: str = CGROUP


NOBODY = Owner("", "", "")

# A Slurm cgroup: some component names slurm (slurm, slurm_<node>, [<node>_]slurmstepd.scope),
# a later one is job_<id>.
_SLURM_JOB = re.compile(r"/[^/]*slurm[^/]*(?:/[^/]+)*?/job_(\d+)(?:/|$)")
# Kubernetes: pod<uid> under kubepods (cgroupfs driver), or kubepods[-<qos>]-pod<uid>.slice
# (systemd driver, where the UID's dashes become underscores). Static pods' UIDs are plain hex.
_K8S_CGROUPFS = re.compile(r"/kubepods(?:/[^/]+)*?/pod([0-9a-fA-F][0-9a-fA-F-]{15,})(?:/|$)")
_K8S_SYSTEMD = re.compile(r"/kubepods(?:-[a-z]+)?-pod([0-9a-fA-F][0-9a-fA-F_]{15,})\.slice(?:/|$)")

# A Slurm job id as a prolog writes it: SLURM_JOB_ID, or array (1234_7) and het-job (1234+1) forms.
_JOB_ID = re.compile(r"^\d+(?:_\d+|\+\d+)?$")
_INDEX_NAME = re.compile(r"^(\d+)(?:\.(\d+))?$")
_UUID_NAME = re.compile(r"^(?:GPU|MIG)-[0-9a-fA-F-]+$")


def owner_from_cgroup(text: str) -> Owner | None:
    """The Slurm job or Kubernetes pod a ``/proc/<pid>/cgroup`` file places the process in."""
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        path = parts[2].strip()
        match = _SLURM_JOB.search(path)
        if match:
            return Owner(job_id=match.group(1), source=CGROUP)
        match = _K8S_CGROUPFS.search(path)
        if match:
            return Owner(pod=match.group(1).lower(), source=KUBERNETES)
        match = _K8S_SYSTEMD.search(path)
        if match:
            return Owner(pod=match.group(1).replace("_", "-").lower(), source=KUBERNETES)
    return None


def parse_mapping_file(text: str) -> list[str]:
    """The job ids of one mapping file (first word of each non-blank line); ValueError if malformed."""
    jobs: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        words = line.split()
        if not words:
            continue
        if not _JOB_ID.match(words[0]):
            raise ValueError(f"line {number}: {words[0]!r} is not a Slurm job id")
        if words[0] not in jobs:
            jobs.append(words[0])
    return jobs


def mapping_target(name: str, devices: Iterable[GpuDevice]) -> GpuDevice | None:
    """The GPU a mapping file's name designates: index, ``<index>.<mig>``, or GPU/MIG UUID."""
    index_match = _INDEX_NAME.match(name)
    for device in devices:
        if index_match:
            if device.index == int(index_match.group(1)):
                return device
        elif _UUID_NAME.match(name):
            if name == device.uuid or any(name == mig.uuid for mig in device.mig_instances):
                return device
    return None


@register_collector("jobs")
class JobsCollector(Collector):
    """GPU-to-job attribution from process cgroups and a Slurm prolog's mapping directory."""

    def __init__(self, ctx: CollectorContext) -> None:
        super().__init__(ctx)
        mapping_dir = ctx.config.job_mapping_dir
        self._mapping: FileTree | None = HostFS(mapping_dir) if mapping_dir else None

    def collect(self) -> FamilySet:
        session: NvmlSession | None = self.ctx.nvml
        if session is None:
            raise NoDataError("no NVML session")
        out = FamilySet(JOB_METRICS)
        devices = list(session.devices) if session.up else []
        allocations = self._read_mapping([*devices, *session.missing])
        owners_by_pid: dict[int, Owner | None] = {}
        for device in devices:
            processes = self._processes(session, device)
            self._collect_gpu(out, device, allocations.get(device, []), processes, owners_by_pid)
        for device in session.missing:
            if device not in devices:  # lost during this cycle: _processes already reported it
                self._collect_gpu(out, device, allocations.get(device, []), None, owners_by_pid)
        return out

    # -- one GPU --------------------------------------------------------------------------------

    def _collect_gpu(self, out: FamilySet, device: GpuDevice, allocated: list[str],
                     processes: list[Any] | None, owners_by_pid: dict[int, Owner | None]) -> None:
        labels = {"gpu": device.index, "uuid": device.uuid}
        owners = {(job, ""): MAPPING for job in allocated}
        only_job = Owner(allocated[0], "", MAPPING) if len(allocated) == 1 else NOBODY
        for process in processes or ():
            owner = self._owner(process.pid, owners_by_pid) or only_job
            owners.setdefault((owner.job_id, owner.pod), owner.source)
            if process.usedGpuMemory is not None:  # None: NVML cannot tell (e.g. no privilege)
                out.add("gpu_process_memory_used_bytes", process.usedGpuMemory, **labels, pid=process.pid,
                        job_id=owner.job_id, pod=owner.pod)
        for (job_id, pod), source in sorted(owners.items()):
            if job_id or pod:
                out.add("gpu_job_info", 1, **labels, job_id=job_id, pod=pod, source=source)
        if processes is not None:
            out.add("gpu_processes", len(processes), **labels)

    def _processes(self, session: NvmlSession, device: GpuDevice) -> list[Any] | None:
        """The GPU's compute processes, or None when NVML could not say."""
        try:
            return list(session.nvml.nvmlDeviceGetComputeRunningProcesses(device.handle))
        except NVMLError as exc:
            if isinstance(exc, pynvml.NVMLError_GpuIsLost):
                session.mark_lost(device, exc)
            elif not isinstance(exc, pynvml.NVMLError_NotSupported):
                self.skip(f"GPU {device.index} {PROCESSES_SOURCE}", exc)
            return None

    def _owner(self, pid: int, cache: dict[int, Owner | None]) -> Owner | None:
        # One process may use several GPUs: its cgroup is read once per cycle.
        if pid not in cache:
            try:
                cache[pid] = owner_from_cgroup(self.ctx.procfs.read_text(f"{pid}/cgroup"))
            except (FileNotFoundError, ProcessLookupError):
                cache[pid] = None  # the process exited since NVML listed it: normal
            except OSError as exc:
                self.skip("process cgroup unreadable", exc)
                cache[pid] = None
        return cache[pid]

    # -- mapping directory ----------------------------------------------------------------------

    def _read_mapping(self, devices: list[GpuDevice]) -> dict[GpuDevice, list[str]]:
        """Job ids per GPU from the mapping directory; bad files are skipped and counted."""
        if self._mapping is None:
            return {}
        try:
            names = self._mapping.listdir("")
        except OSError as exc:
            self.skip("job mapping directory unreadable", exc)
            return {}
        allocations: dict[GpuDevice, list[str]] = {}
        for name in names:
            if name.startswith("."):
                continue
            device = mapping_target(name, devices)
            if device is None:
                self.skip(f"job mapping file {name}: names no GPU of this node")
                continue
            try:
                jobs = parse_mapping_file(self._mapping.read_text(name))
            except FileNotFoundError:
                continue  # removed by an epilog between listing and reading
            except (OSError, ValueError) as exc:
                self.skip(f"job mapping file {name}", exc)
                continue
            merged = allocations.setdefault(device, [])
            merged.extend(job for job in jobs if job not in merged)
        return allocations
