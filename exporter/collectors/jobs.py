"""Which jobs hold which GPUs: NVML's processes mapped to jobs, and a Slurm prolog's mapping files.

Job attribution is a join (docs/architecture.md#the-gpu-to-job-join): this collector emits ``gpu_job_info{gpu,uuid,job_id,pod,
namespace,container,source} 1`` once per (GPU, job) and the scheduler side emits the jobs' metadata. Three sources:

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
3. The kubelet's pod-resources API (``--pod-resources-socket``, ``exporter/podresources``): every
   device allocated to a container, whose ids for ``nvidia.com/gpu`` are GPU or MIG UUIDs (or
   indexes), ``::<n>`` appended under time-slicing. ``source="kubelet"``; attributed with or
   without a process, as mapping files are, so "held but unused" works on Kubernetes too. Polled
   off the collection loop; an unanswered kubelet only loses this attribution, counted as one
   collector error per failure (not per cycle) and shown by ``clusterwatch_exporter_pod_resources_up``.

A job seen through its processes and an allocation is reported once, as the allocation
(``mapping`` or ``kubelet``): the allocation exists for the job's whole life while processes come
and go, so the series' identity stays stable. A process whose cgroup names no job, on a GPU the
mapping gives to exactly one job, is counted as that job's; a process in a pod's cgroup (which
names the pod only by UID, which the kubelet's API does not give) on a GPU the kubelet gives to
exactly one container is counted as that container's.

Labels: Slurm jobs have ``job_id`` set and ``pod=""``. Pods the kubelet reports have ``pod`` (the
pod's name), ``namespace``, ``container`` and ``job_id="<namespace>/<pod>"`` (``pod_job_id``), so
the rules and pages that join on ``job_id`` treat a pod as a job. Pods known only from a process
cgroup (no kubelet socket) have ``pod`` set to the pod's UID, ``job_id=""`` and no namespace or
container: a join on ``job_id`` never matches them. ``gpu_job_info{pod!=""}`` selects the pods.

``gpu_processes`` is exposed only when NVML answered, so a GPU whose process list could not be
read is never mistaken for an unused one. A process that exited between NVML's answer and the
cgroup read is normal and only loses its attribution; an unreadable or malformed mapping file is
skipped and counted as a collector error. GPUs that are lost keep their mapping-file attribution
(which job lost its GPU is what an operator needs to know).
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any, Iterable

import pynvml
from pynvml import NVMLError

from cwkernel.metrics import FamilySet, gauge, metric_table
from exporter.collector import Collector, CollectorContext, NoDataError, register_collector
from exporter.hostfs import FileTree, HostFS
from exporter.nvml.session import GpuDevice, NvmlSession
from exporter.podresources.allocations import DeviceAllocation, socket_for
from exporter.podresources.poller import PodResourcesPoller, Snapshot

log = logging.getLogger(__name__)

CGROUP, KUBERNETES, MAPPING, KUBELET = "cgroup", "kubernetes", "mapping", "kubelet"
GPU = ("gpu", "uuid")
OWNER = ("job_id", "pod", "namespace", "container")

PROCESSES_SOURCE = "nvmlDeviceGetComputeRunningProcesses"
CGROUP_SOURCE = "/proc/PID/cgroup (under --procfs)"
KUBELET_SOURCE = "kubelet pod-resources v1 List (--pod-resources-socket)"

JOB_METRICS = metric_table(
    gauge("gpu_job_info", "GPU-to-job attribution, value 1, one series per (GPU, job); job_id for Slurm jobs; "
          "for pods the kubelet reports, pod (name), namespace, container and job_id <namespace>/<pod>; "
          "for pods seen only in a process cgroup, pod (UID); source: cgroup, kubernetes, mapping or kubelet.",
          [*GPU, *OWNER, "source"], "",
          f"{PROCESSES_SOURCE} + {CGROUP_SOURCE}; files in --job-mapping-dir named by GPU index or UUID; "
          f"{KUBELET_SOURCE}"),
    gauge("gpu_processes", "Compute processes on the GPU; 0 on a GPU allocated to a job means held but unused.",
          GPU, "", PROCESSES_SOURCE),
    gauge("gpu_process_memory_used_bytes", "Device memory used by one process, with the job (or pod) it belongs "
          "to; empty job_id and pod when neither its cgroup nor the mapping names one.",
          [*GPU, "pid", *OWNER], "bytes", f"{PROCESSES_SOURCE} (.usedGpuMemory) + {CGROUP_SOURCE}"),
    gauge("gpu_kubernetes_allocatable", "1 for a GPU the kubelet can allocate to pods (itself or one of its MIG "
          "instances); absent when no kubelet answers or it is too old to say (before Kubernetes 1.21).",
          GPU, "", "kubelet pod-resources v1 GetAllocatableResources (--pod-resources-socket)"),
    gauge("clusterwatch_exporter_pod_resources_up", "Whether the kubelet's pod-resources API answered the last "
          "List (1) or not (0: socket missing, permission denied, timeout...; the log says which); absent when "
          "the source is off.", (), "", KUBELET_SOURCE),
)


@dataclass(frozen=True, order=True)
class Owner:
    """Who a process or an allocation belongs to: a Slurm job, or a Kubernetes pod."""

    job_id: str = ""
    pod: str = ""
    source: str = CGROUP
    namespace: str = ""
    container: str = ""

    @property
    def key(self) -> tuple[str, str, str, str]:
        """Who, without how we know: one series per key."""
        return self.job_id, self.pod, self.namespace, self.container


NOBODY = Owner("", "", "")


def pod_job_id(namespace: str, pod: str) -> str:
    """The ``job_id`` of a Kubernetes pod: unique on the cluster, as a Slurm job id is."""
    return f"{namespace}/{pod}"


def kubelet_owner(allocation: DeviceAllocation) -> Owner:
    return Owner(pod_job_id(allocation.namespace, allocation.pod), allocation.pod, KUBELET,
                 allocation.namespace, allocation.container)

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


# Time-slicing shares one GPU as replicas "<uuid>::<n>" (NVIDIA device plugin's sharing config).
_REPLICA = re.compile(r"::\d+$")


def allocated_gpu(device_id: str, devices: Iterable[GpuDevice]) -> GpuDevice | None:
    """The GPU a kubelet device id designates: as a mapping file's name, less a time-slicing replica."""
    return mapping_target(_REPLICA.sub("", device_id), devices)


@register_collector("jobs")
class JobsCollector(Collector):
    """GPU-to-job attribution from process cgroups, a Slurm prolog's mapping directory and the kubelet."""

    def __init__(self, ctx: CollectorContext) -> None:
        super().__init__(ctx)
        mapping_dir = ctx.config.job_mapping_dir
        self._mapping: FileTree | None = HostFS(mapping_dir) if mapping_dir else None
        socket = socket_for(ctx.config.pod_resources_socket)
        self._kubelet: PodResourcesPoller | None = None
        if socket is not None:
            from exporter.podresources.client import PodResourcesClient  # gRPC: only where there is a kubelet

            self._kubelet = PodResourcesPoller(PodResourcesClient(socket), ctx.config.interval)
            self._kubelet.start()
        self._kubelet_failure = ""  # the reason of the failure already counted, "" while answering

    def collect(self) -> FamilySet:
        session: NvmlSession | None = self.ctx.nvml
        if session is None:
            raise NoDataError("no NVML session")
        out = FamilySet(JOB_METRICS)
        devices = list(session.devices) if session.up else []
        every_gpu = [*devices, *session.missing]
        allocations = self._read_mapping(every_gpu)
        self._read_kubelet(out, every_gpu, allocations)
        owners_by_pid: dict[int, Owner | None] = {}
        for device in devices:
            processes = self._processes(session, device)
            self._collect_gpu(out, device, allocations.get(device, []), processes, owners_by_pid)
        for device in session.missing:
            if device not in devices:  # lost during this cycle: _processes already reported it
                self._collect_gpu(out, device, allocations.get(device, []), None, owners_by_pid)
        return out

    def close(self) -> None:
        if self._kubelet is not None:
            self._kubelet.stop()

    # -- one GPU --------------------------------------------------------------------------------

    def _collect_gpu(self, out: FamilySet, device: GpuDevice, allocated: list[Owner],
                     processes: list[Any] | None, owners_by_pid: dict[int, Owner | None]) -> None:
        labels = {"gpu": device.index, "uuid": device.uuid}
        owners = {owner.key: owner for owner in allocated}
        only = allocated[0] if len(allocated) == 1 else NOBODY
        for process in processes or ():
            owner = self._owner(process.pid, owners_by_pid)
            if owner is None or (owner.source == KUBERNETES and only.source == KUBELET):
                owner = only
            owners.setdefault(owner.key, owner)
            if process.usedGpuMemory is not None:  # None: NVML cannot tell (e.g. no privilege)
                out.add("gpu_process_memory_used_bytes", process.usedGpuMemory, **labels, pid=process.pid,
                        **_owner_labels(owner))
        for _, owner in sorted(owners.items()):
            if owner.job_id or owner.pod:
                out.add("gpu_job_info", 1, **labels, **_owner_labels(owner), source=owner.source)
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

    def _read_mapping(self, devices: list[GpuDevice]) -> dict[GpuDevice, list[Owner]]:
        """Job ids per GPU from the mapping directory; bad files are skipped and counted."""
        if self._mapping is None:
            return {}
        try:
            names = self._mapping.listdir("")
        except OSError as exc:
            self.skip("job mapping directory unreadable", exc)
            return {}
        allocations: dict[GpuDevice, list[Owner]] = {}
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
            merged.extend(owner for owner in (Owner(job, "", MAPPING) for job in jobs) if owner not in merged)
        return allocations

    # -- kubelet --------------------------------------------------------------------------------

    def _read_kubelet(self, out: FamilySet, devices: list[GpuDevice],
                      allocations: dict[GpuDevice, list[Owner]]) -> None:
        """Adds the kubelet's allocations to ``allocations``; ``gpu_kubernetes_allocatable`` and the up gauge."""
        snapshot = self._kubelet.latest() if self._kubelet is not None else None
        if snapshot is None:
            return  # off, or the first answer is still coming: neither is a failure
        if not self._kubelet_answered(snapshot):
            out.add("clusterwatch_exporter_pod_resources_up", 0)
            return
        out.add("clusterwatch_exporter_pod_resources_up", 1)
        for allocation in snapshot.devices:
            device = allocated_gpu(allocation.device_id, devices)
            if device is None:
                continue  # another resource's device (a NIC, an FPGA), or a GPU NVML does not show
            merged = allocations.setdefault(device, [])
            owner = kubelet_owner(allocation)
            if owner not in merged:
                merged.append(owner)
        allocatable = {gpu.index: gpu for gpu in (allocated_gpu(device_id, devices)
                                                  for _, device_id in snapshot.allocatable or ()) if gpu is not None}
        for index in sorted(allocatable):
            out.add("gpu_kubernetes_allocatable", 1, gpu=index, uuid=allocatable[index].uuid)

    def _kubelet_answered(self, snapshot: Snapshot) -> bool:
        """Whether ``snapshot`` is an answer; a new failure is counted and logged once, not every cycle."""
        assert self._kubelet is not None
        socket = self._kubelet.client.socket_path
        if snapshot.error is None:
            if self._kubelet_failure:
                log.info("kubelet pod-resources API at %s answers again", socket)
            self._kubelet_failure = ""
            return True
        if snapshot.error.reason != self._kubelet_failure:
            self._kubelet_failure = snapshot.error.reason
            self.skip(f"kubelet pod-resources API at {socket}: {snapshot.error.reason} "
                      "(pods are attributed from process cgroups only)", snapshot.error)
        return False


def _owner_labels(owner: Owner) -> dict[str, str]:
    return {"job_id": owner.job_id, "pod": owner.pod, "namespace": owner.namespace, "container": owner.container}
