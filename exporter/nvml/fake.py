"""A fake NVML: pynvml's functions, argument types, return structures and error codes, no GPU.

``FakeNVML`` is handed to the exporter in place of the ``pynvml`` module. Its functions take
and return what the real ones do (ctypes handles of type ``c_nvmlDevice_t``, ``c_nvmlMemory_t``,
``c_nvmlFieldValue_t`` arrays, ``str`` for the calls pynvml decodes, friendly objects for
processes) and raise ``pynvml.NVMLError(code)``, which builds the same subclass the real library
raises. Anything it does not define (constants, struct classes, error classes) is read from the
real ``pynvml`` module, so collector code cannot tell the two apart. A real function the fake
does not implement raises ``NVMLError_FunctionNotFound``, as an older driver would.

Values come from a ``FakeState`` that tests and the cluster simulator change at run time from
other threads: every call runs under the state's lock, and XID events are handed to waiting
``nvmlEventSetWait`` callers through a condition variable on that lock. Like the real driver,
the fake also logs each XID in a kernel log (``FakeState.kernel_log``, in ``/dev/kmsg``'s
format, with the lines real drivers write), from which the exporter recovers at start the XIDs
its event set could not receive.

Two ways a GPU goes away, as on real nodes:
- ``lost``: still enumerated, but every call on it (and ``nvmlDeviceGetHandleByIndex``) raises
  ``NVMLError_GpuIsLost``; the state a GPU is in right after falling off the bus.
- ``absent``: no longer enumerated at all (``nvmlDeviceGetCount`` is one less and the indices
  of later GPUs shift down, as after the driver re-enumerates); stale handles raise GpuIsLost.
``FakeGPU.index`` is the GPU's index with every GPU present (its minor number); NVML's index
(``nvmlDeviceGetIndex``) is its position among the present GPUs, like the real one.
"""
from __future__ import annotations

import ctypes
import inspect
import random
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from functools import wraps
from typing import Any, Callable, TypeVar

import pynvml
from pynvml import NVMLError

from exporter.kmsg import MemoryKmsg
from exporter.nvml import CLOCK_EVENT_DURATION_FIELDS, pack_field_value
from exporter.nvrm import gpu_line, xid_line
from exporter.xid_catalog import lookup

MEDIA_SAMPLING_PERIOD_US = 167_000  # the sampling period NVML returns with encoder/decoder utilization
NOT_A_MIG_ID = 0xFFFFFFFF  # what NVML reports as instance ids on a GPU without MIG
GIB = 1024**3

# Event types the fake accepts in nvmlDeviceRegisterEvents; only XIDs are ever delivered.
SUPPORTED_EVENT_TYPES = (
    pynvml.nvmlEventTypeXidCriticalError
    | pynvml.nvmlEventTypeSingleBitEccError
    | pynvml.nvmlEventTypeDoubleBitEccError
    | pynvml.nvmlEventTypePState
    | pynvml.nvmlEventTypeClock
)

# pynvml helpers that never touch the library, so the fake may hand out the real ones.
_PURE_HELPERS = frozenset({"nvmlStructToFriendlyObject", "nvmlFriendlyObject"})


def _opaque_handle(pointer_type: Any) -> Any:
    """A real ctypes pointer of ``pointer_type`` to a private byte: its address is its identity."""
    return ctypes.cast(ctypes.create_string_buffer(1), pointer_type)


def _address(handle: Any) -> int:
    try:
        return ctypes.addressof(handle.contents)
    except (AttributeError, TypeError, ValueError):  # not a pointer, or a NULL one
        return 0


@dataclass
class FakeProcess:
    """A compute process on a GPU; ``used_gpu_memory`` in bytes, None where NVML cannot tell."""

    pid: int
    used_gpu_memory: int | None = 0
    gpu_instance_id: int = NOT_A_MIG_ID
    compute_instance_id: int = NOT_A_MIG_ID


@dataclass(eq=False)
class FakeMigInstance:
    """One MIG compute instance, reached through ``nvmlDeviceGetMigDeviceHandleByIndex``."""

    gpu_instance_id: int
    compute_instance_id: int
    uuid: str
    profile: str  # "1g.10gb": MIG device names end with it
    memory_total: int
    memory_used: int = 0
    handle: Any = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.handle = _opaque_handle(pynvml.c_nvmlDevice_t)


@dataclass
class FakeNvLink:
    """State and error counters of one NVLink."""

    up: bool = True
    replay: int = 0
    recovery: int = 0
    crc_flit: int = 0
    crc_data: int = 0


@dataclass(eq=False)
class FakeGPU:
    """One GPU's identity and readings, in the units NVML reports them (mW, mJ, MHz, KB/s, %)."""

    index: int
    uuid: str
    name: str = "NVIDIA H100 80GB HBM3"
    serial: str = ""
    pci_bus_id: str = ""
    vbios: str = "96.00.99.00.01"
    utilization_gpu: int = 0
    utilization_memory: int = 0
    memory_total: int = 80 * GIB
    memory_used: int = 0  # as nvmlDeviceGetMemoryInfo (v1) reports it: the reserved part included
    memory_reserved: int = 0  # kept by the driver and firmware (nvmlDeviceGetMemoryInfo_v2 .reserved)
    encoder_utilization: int = 0  # % (nvmlDeviceGetEncoderUtilization)
    decoder_utilization: int = 0  # % (nvmlDeviceGetDecoderUtilization)
    temperature_gpu: int = 30
    temperature_memory: int = 35
    power_mw: int = 70_000
    power_limit_mw: int = 700_000
    energy_mj: int = 0
    clock_sm_mhz: int = 345
    clock_mem_mhz: int = 2619
    max_clock_sm_mhz: int = 1980
    max_clock_mem_mhz: int = 2619
    clock_event_reasons: int = pynvml.nvmlClocksEventReasonGpuIdle
    # Accumulated time (ns) each reason held clocks down, keyed by the reason's bit.
    clock_event_ns: dict[int, int] = field(default_factory=dict)
    pcie_tx_kbps: int = 0
    pcie_rx_kbps: int = 0
    pcie_replay: int = 0
    pcie_gen: int = 5
    pcie_gen_max: int = 5
    pcie_width: int = 16
    pcie_width_max: int = 16
    ecc_sbe_volatile: int = 0
    ecc_dbe_volatile: int = 0
    ecc_sbe_aggregate: int = 0
    ecc_dbe_aggregate: int = 0
    retired_sbe: int = 0
    retired_dbe: int = 0
    retired_pending: bool = False
    remapped_correctable: int = 0
    remapped_uncorrectable: int = 0
    remap_pending: bool = False
    remap_failure: bool = False
    nvlinks: list[FakeNvLink] = field(default_factory=list)
    fan_speed: int = 0
    pstate: int = 0
    persistence_mode: bool = True
    recovery_action: int = pynvml.NVML_GPU_RECOVERY_ACTION_NONE
    mig_mode: bool = False
    mig_instances: list[FakeMigInstance] = field(default_factory=list)
    processes: list[FakeProcess] = field(default_factory=list)
    lost: bool = False
    absent: bool = False
    # A GPU the driver hangs on (nvidia-smi stuck in D state): every call on it blocks until the
    # event is set, holding no lock of the fake's, so other threads' calls still answer.
    hang: threading.Event | None = None
    # GPU Performance Monitoring (Hopper and later): whether the GPU has it, and the level each
    # NVML_GPM_METRIC_* id reads now (percent, or MiB/s for bandwidths); ids not set read 0.
    # Change levels with ``FakeState.set_gpm`` so a sample pair averages them over its span.
    gpm_supported: bool = True
    gpm_levels: dict[int, float] = field(default_factory=dict)
    # Levels integrated over time (level x seconds) up to ``gpm_time`` on ``FakeState.clock``.
    gpm_totals: dict[int, float] = field(default_factory=dict, repr=False)
    gpm_time: float | None = field(default=None, repr=False)
    # GPM per MIG GPU instance (nvmlGpmMigSampleGet), by GPU instance id: each instance's own
    # levels, set with ``FakeState.set_gpm(..., gpu_instance_id=)``. Sampled only while MIG mode is
    # on, for the GPU instances ``mig_instances`` name, on a GPU with GPM (``gpm_supported``).
    mig_gpm: dict[int, "GpmCounters"] = field(default_factory=dict, repr=False)
    # pynvml function names (or NVML_FI_* / NVML_GPM_METRIC_* names) answering NOT_SUPPORTED on this GPU.
    unsupported: set[str] = field(default_factory=set)
    # pynvml function names (or NVML_FI_* / NVML_GPM_METRIC_* names) -> NVML_ERROR_* code they raise.
    failing: dict[str, int] = field(default_factory=dict)
    handle: Any = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.handle = _opaque_handle(pynvml.c_nvmlDevice_t)
        if not self.serial:
            self.serial = f"165442{self.index:07d}"
        if not self.pci_bus_id:
            self.pci_bus_id = f"00000000:{H100_BUSES[self.index % len(H100_BUSES)]:02X}:00.0"


# PCI buses of the eight GPUs of a DGX/HGX H100 board, in NVML enumeration order.
H100_BUSES = (0x18, 0x2A, 0x3A, 0x5D, 0x9A, 0xAB, 0xBA, 0xDB)

# What real drivers write after the code for some XIDs (tests/fixtures/kmsg/README.md has the
# sources); other codes get the catalog's mnemonic.
XID_DETAILS = {
    13: "Graphics SM Warp Exception on (GPC 0, TPC 0, SM 0): Illegal Instruction Encoding",
    31: "channel 0x00000008, intr 00000000. MMU Fault: ENGINE GRAPHICS GPC2 GPCCLIENT_PROP_0 faulted @ "
        "0x0_00000000. Fault is of type FAULT_PDE ACCESS_TYPE_VIRT_READ",
    48: "An uncorrectable double bit error (DBE) has been detected on GPU in the framebuffer at physAddr "
        "0x7fffa8860 partition 7, subpartition 1.",
    79: "GPU has fallen off the bus.",
    109: "Ch 00000008, errorString CTX SWITCH TIMEOUT, Info 0x58005",
}


@dataclass
class FakeXid:
    """An XID as injected: the ground truth the simulator can compare the exporter against."""

    gpu_index: int
    xid: int
    timestamp_us: int


@dataclass(eq=False)
class GpmCounters:
    """One MIG GPU instance's GPM levels (NVML_GPM_METRIC_* id -> percent or MiB/s) and their
    integral over time, as ``FakeGPU``'s gpm_* fields hold the whole GPU's."""

    gpm_levels: dict[int, float] = field(default_factory=dict)
    gpm_totals: dict[int, float] = field(default_factory=dict)
    gpm_time: float | None = None


@dataclass(eq=False)
class _GpmSample:
    """What an ``nvmlGpmSample_t`` holds once filled: whose (a GPU, or one of its MIG GPU
    instances), when, and the integrated levels."""

    gpu: FakeGPU | None = None
    gpu_instance_id: int | None = None
    time: float = 0.0
    totals: dict[int, float] = field(default_factory=dict)
    levels: dict[int, float] = field(default_factory=dict)  # at ``time``: a zero-span pair reads these


@dataclass(eq=False)
class _EventSet:
    handle: Any
    masks: dict[int, int] = field(default_factory=dict)  # id(FakeGPU) -> registered event types
    pending: deque[tuple[FakeGPU, int, int]] = field(default_factory=deque)  # (gpu, type, data)
    freed: bool = False
    waiting: int = 0  # threads inside nvmlEventSetWait on this set
    in_flight: bool = False  # an event returned whose caller has not come back to wait again


class FakeState:
    """What the fake NVML reports; safe to change from any thread while the exporter runs.

    Change fields under ``with state.lock:`` when several must change together (the exporter
    then never sees half of an update).
    """

    def __init__(
        self,
        gpus: list[FakeGPU] | None = None,
        driver_version: str = "550.90.07",
        cuda_driver_version: int = 12040,
    ) -> None:
        self.lock = threading.RLock()
        self._event_ready = threading.Condition(self.lock)
        self.gpus: list[FakeGPU] = list(gpus or [])
        self.driver_version = driver_version
        self.cuda_driver_version = cuda_driver_version
        self.library_missing = False
        self.init_error: int | None = None
        self.xid_history: list[FakeXid] = []
        self.kernel_log = MemoryKmsg()  # the driver's log since "boot"; see new_boot()
        self._named_in_log: set[int] = set()  # id(FakeGPU) of GPUs the log has a "GPU at PCI" line for
        self._event_sets: dict[int, _EventSet] = {}
        self._scheduled: list[tuple[float, int, int]] = []  # (time.monotonic() due, gpu index, xid)
        # GPM: the time GPM samples are stamped with (tests swap in their own clock), and the
        # samples allocated by nvmlGpmSampleAlloc, by address.
        self.clock: Callable[[], float] = time.monotonic
        self._gpm_samples: dict[int, _GpmSample] = {}

    @classmethod
    def h100_node(cls, gpus: int = 8, seed: int = 0) -> "FakeState":
        """A node of ``gpus`` idle H100 80GB SXM GPUs with plausible, seed-dependent readings."""
        rng = random.Random(seed)
        return cls([h100_gpu(index, rng) for index in range(gpus)])

    def gpu(self, index: int) -> FakeGPU:
        """The GPU whose ``FakeGPU.index`` is ``index``."""
        with self.lock:
            for gpu in self.gpus:
                if gpu.index == index:
                    return gpu
        raise KeyError(f"no fake GPU with index {index}")

    def present_gpus(self) -> list[FakeGPU]:
        """The GPUs NVML enumerates, in enumeration order."""
        with self.lock:
            return sorted((gpu for gpu in self.gpus if not gpu.absent), key=lambda gpu: gpu.index)

    def inject_xid(self, gpu_index: int, xid: int, timestamp_us: int | None = None) -> None:
        """Queue an XID critical error on every event set that registered XIDs on that GPU.

        The event NVML delivers (``c_nvmlEventData_t``) carries no time; ``timestamp_us`` is kept
        in ``xid_history`` only, as the ground truth of when the fault happened.
        """
        stamp = timestamp_us if timestamp_us is not None else time.time_ns() // 1000
        with self.lock:
            gpu = self.gpu(gpu_index)
            self.xid_history.append(FakeXid(gpu_index, xid, stamp))
            self._log_xid(gpu, xid)
            for event_set in self._event_sets.values():
                if event_set.masks.get(id(gpu), 0) & pynvml.nvmlEventTypeXidCriticalError:
                    event_set.pending.append((gpu, pynvml.nvmlEventTypeXidCriticalError, xid))
            self._event_ready.notify_all()


    def set_gpm(self, gpu_index: int, levels: dict[int, float], since: float | None = None,
                gpu_instance_id: int | None = None) -> None:
        """Change GPM levels (NVML_GPM_METRIC_* id -> percent or MiB/s) from now on, or from
        ``since`` (a time on ``clock`` not after now, not before the last change: a simulation
        step that ran at these levels), of the GPU or of one of its MIG GPU instances.

        The old levels are integrated up to the change first, so a sample pair spanning it reads
        the time-weighted average, as the hardware counters give.
        """
        with self.lock:
            gpu = self.gpu(gpu_index)
            counters = gpu if gpu_instance_id is None else gpu.mig_gpm.setdefault(gpu_instance_id, GpmCounters())
            self._gpm_advance(counters, since)
            counters.gpm_levels.update(levels)
            self._gpm_advance(counters)

    def _gpm_advance(self, gpu: "FakeGPU | GpmCounters", until: float | None = None) -> float:
        now = self.clock() if until is None else until
        if gpu.gpm_time is not None and now > gpu.gpm_time:
            dt = now - gpu.gpm_time
            for metric_id, level in gpu.gpm_levels.items():
                gpu.gpm_totals[metric_id] = gpu.gpm_totals.get(metric_id, 0.0) + level * dt
        if gpu.gpm_time is None or now > gpu.gpm_time:
            gpu.gpm_time = now
        return gpu.gpm_time

    def new_boot(self) -> None:
        """The node rebooted: the kernel log starts empty (and names each GPU again at its first XID)."""
        with self.lock:
            self.kernel_log.clear()
            self._named_in_log.clear()

    def _log_xid(self, gpu: FakeGPU, xid: int) -> None:
        """What the driver writes to the kernel log for an XID, as drivers since 525 do."""
        if id(gpu) not in self._named_in_log:
            self._named_in_log.add(id(gpu))
            self.kernel_log.log(gpu_line(gpu.pci_bus_id, gpu.uuid))
        process = gpu.processes[0] if gpu.processes else None
        detail = XID_DETAILS.get(xid) or lookup(xid).mnemonic or "Unknown error"
        self.kernel_log.log(xid_line(gpu.pci_bus_id, xid, detail, process.pid if process else None, "python"))
        if xid == 79:
            self.kernel_log.log(f"NVRM: GPU {gpu.pci_bus_id[-12:].lower()}: GPU has fallen off the bus.")

    def wait_events_handled(self, timeout: float) -> bool:
        """Wait up to ``timeout`` real seconds until every queued event has been taken by a thread
        waiting on its set, and that thread has come back to wait again (so it has handled it).
        A simulation on a clock of its own calls this before a collection: a watcher thread that
        the machine's load made late would otherwise have its XID counted a round later, and the
        run would depend on the machine. Sets nobody waits on are not waited for. False: timed out."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while any(s.in_flight or (s.pending and s.waiting) for s in self._event_sets.values()):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._event_ready.wait(remaining)
            return True

    def schedule_xid(self, gpu_index: int, xid: int, after_seconds: float) -> None:
        """Inject an XID ``after_seconds`` from now (scenario files use this for timed faults).

        Delivered by whichever ``nvmlEventSetWait`` is waiting then; no timer thread is needed.
        """
        self.gpu(gpu_index)  # fail now, not when due, on a wrong index
        with self.lock:
            self._scheduled.append((time.monotonic() + after_seconds, gpu_index, xid))
            self._scheduled.sort()
            self._event_ready.notify_all()

    def _fire_due(self) -> float | None:
        """Inject the scheduled XIDs now due; seconds until the next one, or None."""
        now = time.monotonic()
        while self._scheduled and self._scheduled[0][0] <= now:
            _, gpu_index, xid = self._scheduled.pop(0)
            self.inject_xid(gpu_index, xid)
        return self._scheduled[0][0] - now if self._scheduled else None


def h100_gpu(index: int, rng: random.Random | None = None) -> FakeGPU:
    """One idle H100 80GB HBM3 (SXM5) with the limits and clocks the real board reports."""
    rng = rng or random.Random(index)
    uuid = "GPU-" + "-".join(
        "".join(rng.choice("0123456789abcdef") for _ in range(width)) for width in (8, 4, 4, 4, 12)
    )
    return FakeGPU(
        index=index,
        uuid=uuid,
        serial=f"1654423{rng.randrange(10**6):06d}",
        memory_used=rng.randrange(400, 600) * 1024**2,  # driver and context overhead
        memory_reserved=326 * 1024**2,  # the driver's reservation (plausible, not a measured figure)
        temperature_gpu=rng.randrange(28, 36),
        temperature_memory=rng.randrange(30, 40),
        power_mw=rng.randrange(65_000, 80_000),
        energy_mj=rng.randrange(10**9, 5 * 10**9),
        clock_sm_mhz=345,
        nvlinks=[FakeNvLink() for _ in range(18)],
        fan_speed=0,
    )


_Method = TypeVar("_Method", bound=Callable[..., Any])


def _base_name(name: str) -> str:
    return re.sub(r"_v\d+$", "", name)


def _on_device(method: _Method) -> _Method:
    """Wrap a device query: resolve the handle to (gpu, mig) and raise what NVML would first."""
    names = (method.__name__, _base_name(method.__name__))

    @wraps(method)
    def call(self: "FakeNVML", handle: Any, *args: Any) -> Any:
        with self.state.lock:
            gpu, mig = self._resolve(handle)
            hang = gpu.hang
            if hang is None:
                _raise_configured(gpu, names)
                return method(self, gpu, mig, *args)
        hang.wait()
        return call(self, handle, *args)

    return call  # type: ignore[return-value]


def _on_gpu(method: _Method) -> _Method:
    """Like ``_on_device`` for queries NVML answers on whole GPUs only (NOT_SUPPORTED on MIG)."""

    @wraps(method)
    def call(self: "FakeNVML", gpu: FakeGPU, mig: FakeMigInstance | None, *args: Any) -> Any:
        if mig is not None:
            raise NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return method(self, gpu, *args)

    return _on_device(call)  # type: ignore[return-value]


def _raise_configured(gpu: FakeGPU, names: tuple[str, ...]) -> None:
    for name in names:
        if name in gpu.failing:
            raise NVMLError(gpu.failing[name])
    for name in names:
        if name in gpu.unsupported:
            raise NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)


def _process_object(process: FakeProcess) -> Any:
    """The friendly object pynvml builds from a ``c_nvmlProcessInfo_t``, built the same way."""
    unavailable = pynvml.NVML_VALUE_NOT_AVAILABLE_ulonglong.value
    memory = unavailable if process.used_gpu_memory is None else process.used_gpu_memory
    info = pynvml.c_nvmlProcessInfo_t(
        pid=process.pid,
        usedGpuMemory=memory,
        gpuInstanceId=process.gpu_instance_id,
        computeInstanceId=process.compute_instance_id,
    )
    obj = pynvml.nvmlStructToFriendlyObject(info)
    if obj.usedGpuMemory == unavailable:
        obj.usedGpuMemory = None
    return obj


def _function_not_found(name: str) -> Callable[..., Any]:
    def missing(*args: Any, **kwargs: Any) -> Any:
        raise NVMLError(pynvml.NVML_ERROR_FUNCTION_NOT_FOUND)

    missing.__name__ = name
    return missing


class FakeNVML:
    """Module-like stand-in for ``pynvml`` reading a ``FakeState``."""

    def __init__(self, state: FakeState | None = None) -> None:
        self.state = state if state is not None else FakeState.h100_node()
        self._init_count = 0
        self._handles: dict[int, tuple[FakeGPU, FakeMigInstance | None]] = {}

    def __getattr__(self, name: str) -> Any:
        value = getattr(pynvml, name)
        if name.startswith("nvml") and inspect.isfunction(value) and name not in _PURE_HELPERS:
            return _function_not_found(name)
        return value

    # -- library --------------------------------------------------------------------------------

    def nvmlInit(self) -> None:
        self.nvmlInitWithFlags(0)

    def nvmlInitWithFlags(self, flags: int) -> None:
        with self.state.lock:
            if self.state.library_missing:
                raise NVMLError(pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)
            if self.state.init_error is not None:
                raise NVMLError(self.state.init_error)
            self._init_count += 1

    def nvmlShutdown(self) -> None:
        with self.state.lock:
            self._require_init()
            self._init_count -= 1

    def _require_init(self) -> None:
        if self._init_count <= 0:
            raise NVMLError(pynvml.NVML_ERROR_UNINITIALIZED)

    def nvmlSystemGetDriverVersion(self) -> str:
        with self.state.lock:
            self._require_init()
            return self.state.driver_version

    def nvmlSystemGetNVMLVersion(self) -> str:
        with self.state.lock:
            self._require_init()
            return f"12.{self.state.driver_version}"

    def nvmlSystemGetCudaDriverVersion(self) -> int:
        with self.state.lock:
            self._require_init()
            return self.state.cuda_driver_version

    nvmlSystemGetCudaDriverVersion_v2 = nvmlSystemGetCudaDriverVersion

    # -- enumeration and handles ------------------------------------------------------------------

    def nvmlDeviceGetCount(self) -> int:
        with self.state.lock:
            self._require_init()
            return len(self.state.present_gpus())

    def nvmlDeviceGetHandleByIndex(self, index: int) -> Any:
        with self.state.lock:
            self._require_init()
            present = self.state.present_gpus()
            if not 0 <= index < len(present):
                raise NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
            gpu = present[index]
            if gpu.lost:
                raise NVMLError(pynvml.NVML_ERROR_GPU_IS_LOST)
            hang = gpu.hang
            if hang is None:
                return gpu.handle
        hang.wait()
        return self.nvmlDeviceGetHandleByIndex(index)

    def nvmlDeviceGetHandleByUUID(self, uuid: str | bytes) -> Any:
        wanted = uuid.decode() if isinstance(uuid, bytes) else uuid
        return self._handle_where(lambda gpu: gpu.uuid == wanted)

    def nvmlDeviceGetHandleByPciBusId(self, bus_id: str | bytes) -> Any:
        wanted = (bus_id.decode() if isinstance(bus_id, bytes) else bus_id).upper()
        return self._handle_where(lambda gpu: gpu.pci_bus_id.upper() == wanted)

    def _handle_where(self, matches: Callable[[FakeGPU], bool]) -> Any:
        with self.state.lock:
            self._require_init()
            for gpu in self.state.present_gpus():
                if matches(gpu):
                    if gpu.lost:
                        raise NVMLError(pynvml.NVML_ERROR_GPU_IS_LOST)
                    return gpu.handle
            raise NVMLError(pynvml.NVML_ERROR_NOT_FOUND)

    def _resolve(self, handle: Any) -> tuple[FakeGPU, FakeMigInstance | None]:
        self._require_init()
        address = _address(handle)
        if address not in self._handles:
            self._index_handles()
        if address not in self._handles:
            raise NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        gpu, mig = self._handles[address]
        if gpu.lost or gpu.absent or gpu not in self.state.gpus:
            raise NVMLError(pynvml.NVML_ERROR_GPU_IS_LOST)
        return gpu, mig

    def _index_handles(self) -> None:
        # Rebuilt on a miss only: the simulator may add GPUs or MIG instances at any time.
        self._handles = {}
        for gpu in self.state.gpus:
            self._handles[_address(gpu.handle)] = (gpu, None)
            for mig in gpu.mig_instances:
                self._handles[_address(mig.handle)] = (gpu, mig)

    @_on_device
    def nvmlDeviceGetIndex(self, gpu: FakeGPU, mig: FakeMigInstance | None) -> int:
        return self.state.present_gpus().index(gpu)

    # -- identity -------------------------------------------------------------------------------

    @_on_device
    def nvmlDeviceGetUUID(self, gpu: FakeGPU, mig: FakeMigInstance | None) -> str:
        return mig.uuid if mig is not None else gpu.uuid

    @_on_device
    def nvmlDeviceGetName(self, gpu: FakeGPU, mig: FakeMigInstance | None) -> str:
        return f"{gpu.name} MIG {mig.profile}" if mig is not None else gpu.name

    @_on_gpu
    def nvmlDeviceGetSerial(self, gpu: FakeGPU) -> str:
        return gpu.serial

    @_on_gpu
    def nvmlDeviceGetVbiosVersion(self, gpu: FakeGPU) -> str:
        return gpu.vbios

    @_on_gpu
    def nvmlDeviceGetPciInfo_v3(self, gpu: FakeGPU) -> Any:
        domain, bus, rest = gpu.pci_bus_id.split(":")
        device = rest.split(".")[0]
        return pynvml.nvmlPciInfo_t(
            busIdLegacy=gpu.pci_bus_id[-12:].encode(),
            domain=int(domain, 16),
            bus=int(bus, 16),
            device=int(device, 16),
            pciDeviceId=0x233010DE,  # H100 SXM5 80GB
            pciSubSystemId=0x16C110DE,
            busId=gpu.pci_bus_id.encode(),
        )

    nvmlDeviceGetPciInfo = nvmlDeviceGetPciInfo_v3

    # -- processes ------------------------------------------------------------------------------

    @_on_device
    def nvmlDeviceGetComputeRunningProcesses_v3(self, gpu: FakeGPU, mig: FakeMigInstance | None) -> list[Any]:
        processes = gpu.processes
        if mig is not None:
            processes = [
                process
                for process in processes
                if (process.gpu_instance_id, process.compute_instance_id)
                == (mig.gpu_instance_id, mig.compute_instance_id)
            ]
        return [_process_object(process) for process in processes]

    nvmlDeviceGetComputeRunningProcesses = nvmlDeviceGetComputeRunningProcesses_v3
    nvmlDeviceGetComputeRunningProcesses_v2 = nvmlDeviceGetComputeRunningProcesses_v3

    @_on_device
    def nvmlDeviceGetGraphicsRunningProcesses_v3(self, gpu: FakeGPU, mig: FakeMigInstance | None) -> list[Any]:
        return []  # compute nodes run no graphics contexts

    nvmlDeviceGetGraphicsRunningProcesses = nvmlDeviceGetGraphicsRunningProcesses_v3

    # -- events ---------------------------------------------------------------------------------

    def nvmlEventSetCreate(self) -> Any:
        with self.state.lock:
            self._require_init()
            event_set = _EventSet(_opaque_handle(pynvml.c_nvmlEventSet_t))
            self.state._event_sets[_address(event_set.handle)] = event_set
            return event_set.handle

    @_on_gpu
    def nvmlDeviceGetSupportedEventTypes(self, gpu: FakeGPU) -> int:
        return SUPPORTED_EVENT_TYPES

    @_on_gpu
    def nvmlDeviceRegisterEvents(self, gpu: FakeGPU, event_types: int, event_set: Any) -> None:
        registered = self._event_set(event_set)
        if event_types & ~SUPPORTED_EVENT_TYPES:
            raise NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        registered.masks[id(gpu)] = registered.masks.get(id(gpu), 0) | event_types

    def nvmlEventSetWait_v2(self, event_set: Any, timeoutms: int) -> Any:
        """Block until an event is queued (or ``timeoutms`` passes: NVMLError_Timeout)."""
        deadline = time.monotonic() + max(0, timeoutms) / 1000
        with self.state.lock:
            waiting = self._event_set(event_set)
            waiting.in_flight = False  # back to wait: the last event it returned is handled
            waiting.waiting += 1
            self.state._event_ready.notify_all()  # for wait_events_handled
            try:
                while True:
                    next_due = self.state._fire_due()
                    if waiting.pending or waiting.freed:
                        break
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise NVMLError(pynvml.NVML_ERROR_TIMEOUT)
                    self.state._event_ready.wait(remaining if next_due is None else min(remaining, next_due))
            finally:
                waiting.waiting -= 1
            if waiting.freed:
                raise NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
            gpu, event_type, data = waiting.pending.popleft()
            waiting.in_flight = True
            return pynvml.c_nvmlEventData_t(
                device=gpu.handle,
                eventType=event_type,
                eventData=data,
                gpuInstanceId=NOT_A_MIG_ID,
                computeInstanceId=NOT_A_MIG_ID,
            )

    nvmlEventSetWait = nvmlEventSetWait_v2

    def nvmlEventSetFree(self, event_set: Any) -> None:
        with self.state.lock:
            freed = self._event_set(event_set)
            freed.freed = True
            del self.state._event_sets[_address(freed.handle)]
            self.state._event_ready.notify_all()  # a thread blocked on it must not wait forever

    def _event_set(self, handle: Any) -> _EventSet:
        event_set = self.state._event_sets.get(_address(handle))
        if event_set is None:
            raise NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return event_set

    # -- readings -------------------------------------------------------------------------------

    @_on_gpu
    def nvmlDeviceGetUtilizationRates(self, gpu: FakeGPU) -> Any:
        return pynvml.c_nvmlUtilization_t(gpu=gpu.utilization_gpu, memory=gpu.utilization_memory)

    @_on_device
    def nvmlDeviceGetMemoryInfo(self, gpu: FakeGPU, mig: FakeMigInstance | None, version: int | None = None) -> Any:
        total, used = (mig.memory_total, mig.memory_used) if mig is not None else (gpu.memory_total, gpu.memory_used)
        if not version:
            return pynvml.c_nvmlMemory_t(total=total, free=total - used, used=used)
        _raise_configured(gpu, ("nvmlDeviceGetMemoryInfo_v2",))  # pynvml calls this entry point for a version
        if version != pynvml.nvmlMemory_v2:
            raise NVMLError(pynvml.NVML_ERROR_ARGUMENT_VERSION_MISMATCH)
        reserved = min(used, gpu.memory_reserved) if mig is None else 0
        return pynvml.c_nvmlMemory_v2_t(version=version, total=total, reserved=reserved, free=total - used,
                                        used=used - reserved)

    @_on_gpu
    def nvmlDeviceGetEncoderUtilization(self, gpu: FakeGPU) -> list[int]:
        return [gpu.encoder_utilization, MEDIA_SAMPLING_PERIOD_US]

    @_on_gpu
    def nvmlDeviceGetDecoderUtilization(self, gpu: FakeGPU) -> list[int]:
        return [gpu.decoder_utilization, MEDIA_SAMPLING_PERIOD_US]

    @_on_gpu
    def nvmlDeviceGetTemperature(self, gpu: FakeGPU, sensor: int) -> int:
        if sensor != pynvml.NVML_TEMPERATURE_GPU:
            raise NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return gpu.temperature_gpu

    @_on_gpu
    def nvmlDeviceGetPowerUsage(self, gpu: FakeGPU) -> int:
        return gpu.power_mw

    @_on_gpu
    def nvmlDeviceGetEnforcedPowerLimit(self, gpu: FakeGPU) -> int:
        return gpu.power_limit_mw

    @_on_gpu
    def nvmlDeviceGetPowerManagementLimit(self, gpu: FakeGPU) -> int:
        return gpu.power_limit_mw

    @_on_gpu
    def nvmlDeviceGetTotalEnergyConsumption(self, gpu: FakeGPU) -> int:
        return gpu.energy_mj

    @_on_gpu
    def nvmlDeviceGetClockInfo(self, gpu: FakeGPU, clock_type: int) -> int:
        return _clock(clock_type, sm=gpu.clock_sm_mhz, mem=gpu.clock_mem_mhz)

    @_on_gpu
    def nvmlDeviceGetMaxClockInfo(self, gpu: FakeGPU, clock_type: int) -> int:
        return _clock(clock_type, sm=gpu.max_clock_sm_mhz, mem=gpu.max_clock_mem_mhz)

    @_on_gpu
    def nvmlDeviceGetCurrentClocksEventReasons(self, gpu: FakeGPU) -> int:
        return gpu.clock_event_reasons

    nvmlDeviceGetCurrentClocksThrottleReasons = nvmlDeviceGetCurrentClocksEventReasons

    @_on_gpu
    def nvmlDeviceGetPcieThroughput(self, gpu: FakeGPU, counter: int) -> int:
        if counter == pynvml.NVML_PCIE_UTIL_TX_BYTES:
            return gpu.pcie_tx_kbps
        if counter == pynvml.NVML_PCIE_UTIL_RX_BYTES:
            return gpu.pcie_rx_kbps
        raise NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)

    @_on_gpu
    def nvmlDeviceGetPcieReplayCounter(self, gpu: FakeGPU) -> int:
        return gpu.pcie_replay

    @_on_gpu
    def nvmlDeviceGetCurrPcieLinkGeneration(self, gpu: FakeGPU) -> int:
        return gpu.pcie_gen

    @_on_gpu
    def nvmlDeviceGetMaxPcieLinkGeneration(self, gpu: FakeGPU) -> int:
        return gpu.pcie_gen_max

    nvmlDeviceGetGpuMaxPcieLinkGeneration = nvmlDeviceGetMaxPcieLinkGeneration

    @_on_gpu
    def nvmlDeviceGetCurrPcieLinkWidth(self, gpu: FakeGPU) -> int:
        return gpu.pcie_width

    @_on_gpu
    def nvmlDeviceGetMaxPcieLinkWidth(self, gpu: FakeGPU) -> int:
        return gpu.pcie_width_max

    @_on_gpu
    def nvmlDeviceGetTotalEccErrors(self, gpu: FakeGPU, error_type: int, counter_type: int) -> int:
        corrected = error_type == pynvml.NVML_MEMORY_ERROR_TYPE_CORRECTED
        if counter_type == pynvml.NVML_VOLATILE_ECC:
            return gpu.ecc_sbe_volatile if corrected else gpu.ecc_dbe_volatile
        if counter_type == pynvml.NVML_AGGREGATE_ECC:
            return gpu.ecc_sbe_aggregate if corrected else gpu.ecc_dbe_aggregate
        raise NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)

    @_on_gpu
    def nvmlDeviceGetRetiredPagesPendingStatus(self, gpu: FakeGPU) -> int:
        return int(gpu.retired_pending)

    @_on_gpu
    def nvmlDeviceGetRemappedRows(self, gpu: FakeGPU) -> tuple[int, int, int, int]:
        return (gpu.remapped_correctable, gpu.remapped_uncorrectable, int(gpu.remap_pending), int(gpu.remap_failure))

    @_on_gpu
    def nvmlDeviceGetNvLinkState(self, gpu: FakeGPU, link: int) -> int:
        return int(_link(gpu, link).up)

    @_on_gpu
    def nvmlDeviceGetNvLinkErrorCounter(self, gpu: FakeGPU, link: int, counter: int) -> int:
        attribute = _NVLINK_COUNTERS.get(counter)
        if attribute is None:
            raise NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return int(getattr(_link(gpu, link), attribute))

    @_on_gpu
    def nvmlDeviceGetFanSpeed(self, gpu: FakeGPU) -> int:
        return gpu.fan_speed

    @_on_gpu
    def nvmlDeviceGetPerformanceState(self, gpu: FakeGPU) -> int:
        return gpu.pstate

    @_on_gpu
    def nvmlDeviceGetPersistenceMode(self, gpu: FakeGPU) -> int:
        return int(gpu.persistence_mode)

    # -- MIG ------------------------------------------------------------------------------------

    @_on_gpu
    def nvmlDeviceGetMigMode(self, gpu: FakeGPU) -> list[int]:
        return [int(gpu.mig_mode), int(gpu.mig_mode)]

    @_on_gpu
    def nvmlDeviceGetMaxMigDeviceCount(self, gpu: FakeGPU) -> int:
        return 7 if gpu.mig_mode else 0  # an H100 splits into at most seven compute instances

    @_on_gpu
    def nvmlDeviceGetMigDeviceHandleByIndex(self, gpu: FakeGPU, index: int) -> Any:
        if not gpu.mig_mode:
            raise NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        if not 0 <= index < len(gpu.mig_instances):
            raise NVMLError(pynvml.NVML_ERROR_NOT_FOUND)
        return gpu.mig_instances[index].handle

    @_on_device
    def nvmlDeviceIsMigDeviceHandle(self, gpu: FakeGPU, mig: FakeMigInstance | None) -> bool:
        return mig is not None

    @_on_device
    def nvmlDeviceGetGpuInstanceId(self, gpu: FakeGPU, mig: FakeMigInstance | None) -> int:
        if mig is None:
            raise NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return mig.gpu_instance_id

    @_on_device
    def nvmlDeviceGetComputeInstanceId(self, gpu: FakeGPU, mig: FakeMigInstance | None) -> int:
        if mig is None:
            raise NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return mig.compute_instance_id

    @_on_device
    def nvmlDeviceGetDeviceHandleFromMigDeviceHandle(self, gpu: FakeGPU, mig: FakeMigInstance | None) -> Any:
        if mig is None:
            raise NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return gpu.handle

    # -- GPU Performance Monitoring ---------------------------------------------------------------

    @_on_device
    def nvmlGpmQueryDeviceSupport(self, gpu: FakeGPU, mig: FakeMigInstance | None) -> Any:
        support = pynvml.c_nvmlGpmSupport_t()
        support.version = pynvml.NVML_GPM_SUPPORT_VERSION
        support.isSupportedDevice = int(gpu.gpm_supported and mig is None)
        return support

    def nvmlGpmSampleAlloc(self) -> Any:
        with self.state.lock:
            self._require_init()
            sample = _opaque_handle(pynvml.c_nvmlGpmSample_t)
            self.state._gpm_samples[_address(sample)] = _GpmSample()
            return sample

    def nvmlGpmSampleFree(self, gpmSample: Any) -> None:
        with self.state.lock:
            self._require_init()
            if self.state._gpm_samples.pop(_address(gpmSample), None) is None:
                raise NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)

    @_on_gpu
    def nvmlGpmSampleGet(self, gpu: FakeGPU, gpmSample: Any) -> Any:
        sample = self._gpm_sample(gpmSample)
        if not gpu.gpm_supported:
            raise NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        sample.gpu, sample.gpu_instance_id, sample.time = gpu, None, self.state._gpm_advance(gpu)
        sample.totals, sample.levels = dict(gpu.gpm_totals), dict(gpu.gpm_levels)
        return gpmSample

    @_on_gpu
    def nvmlGpmMigSampleGet(self, gpu: FakeGPU, gpuInstanceId: int, gpmSample: Any) -> Any:
        """A sample of one MIG GPU instance, on the GPU's handle (a MIG device handle is refused
        as NVML refuses it): NOT_SUPPORTED on a GPU without GPM or with MIG mode off,
        INVALID_ARGUMENT for a GPU instance the GPU does not have."""
        sample = self._gpm_sample(gpmSample)
        if not gpu.gpm_supported or not gpu.mig_mode:
            raise NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        if gpuInstanceId not in {mig.gpu_instance_id for mig in gpu.mig_instances}:
            raise NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        counters = gpu.mig_gpm.setdefault(gpuInstanceId, GpmCounters())
        sample.gpu, sample.gpu_instance_id, sample.time = gpu, gpuInstanceId, self.state._gpm_advance(counters)
        sample.totals, sample.levels = dict(counters.gpm_totals), dict(counters.gpm_levels)
        return gpmSample

    def nvmlGpmMetricsGet(self, metricsGet: Any) -> Any:
        """Fills ``metrics[i].value``/``.nvmlReturn`` of the first ``numMetrics`` requested ids:
        the average level between ``sample1`` and the later ``sample2``."""
        with self.state.lock:
            self._require_init()
            if metricsGet.version != pynvml.NVML_GPM_METRICS_GET_VERSION:
                raise NVMLError(pynvml.NVML_ERROR_ARGUMENT_VERSION_MISMATCH)
            if metricsGet.numMetrics > pynvml.NVML_GPM_METRIC_MAX:
                raise NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
            first, second = self._gpm_sample(metricsGet.sample1), self._gpm_sample(metricsGet.sample2)
            if (first.gpu is None or first.gpu is not second.gpu or first.gpu_instance_id != second.gpu_instance_id
                    or second.time < first.time):
                raise NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
            span = second.time - first.time  # 0 only on a stopped test or simulation clock
            for i in range(metricsGet.numMetrics):
                metric = metricsGet.metrics[i]
                try:
                    if metric.metricId not in FAKE_GPM_METRICS:
                        raise NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
                    _raise_configured(first.gpu, _GPM_METRIC_NAMES.get(metric.metricId, ()))
                except NVMLError as exc:  # per metric, as the driver does
                    metric.nvmlReturn, metric.value = exc.value, 0.0
                    continue
                delta = second.totals.get(metric.metricId, 0.0) - first.totals.get(metric.metricId, 0.0)
                value = delta / span if span > 0 else second.levels.get(metric.metricId, 0.0)
                metric.nvmlReturn, metric.value = pynvml.NVML_SUCCESS, value
            return metricsGet

    def _gpm_sample(self, handle: Any) -> _GpmSample:
        sample = self.state._gpm_samples.get(_address(handle))
        if sample is None:
            raise NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return sample

    # -- field values ---------------------------------------------------------------------------

    @_on_gpu
    def nvmlDeviceGetFieldValues(self, gpu: FakeGPU, field_ids: list[int | tuple[int, int]]) -> Any:
        """An array of ``c_nvmlFieldValue_t``, one per request, each with its own nvmlReturn."""
        now_us = time.time_ns() // 1000
        raw = b"".join(_field_value(gpu, request, now_us) for request in field_ids)
        values = (pynvml.c_nvmlFieldValue_t * len(field_ids))()
        ctypes.memmove(values, raw, len(raw))
        return values


# The GPM metrics the fake computes (the ratios and bandwidths of the exporter's gpm collector
# and the rest of the utilisation group); any other id answers NOT_SUPPORTED in its nvmlReturn.
FAKE_GPM_METRICS = frozenset(
    value for name, value in vars(pynvml).items()
    if name.startswith("NVML_GPM_METRIC_") and isinstance(value, int)
    and (1 <= value <= 13 or value in (20, 21, 60, 61))
)
# NVML_GPM_METRIC_* names by id, so ``FakeGPU.unsupported``/``failing`` can name one metric.
_GPM_METRIC_NAMES = {value: (name,) for name, value in vars(pynvml).items()
                     if name.startswith("NVML_GPM_METRIC_") and isinstance(value, int)}


def _clock(clock_type: int, sm: int, mem: int) -> int:
    if clock_type in (pynvml.NVML_CLOCK_SM, pynvml.NVML_CLOCK_GRAPHICS):
        return sm
    if clock_type == pynvml.NVML_CLOCK_MEM:
        return mem
    raise NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)


def _link(gpu: FakeGPU, link: int) -> FakeNvLink:
    if not gpu.nvlinks:
        raise NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
    if not 0 <= link < len(gpu.nvlinks):
        raise NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
    return gpu.nvlinks[link]


_NVLINK_COUNTERS = {
    pynvml.NVML_NVLINK_ERROR_DL_REPLAY: "replay",
    pynvml.NVML_NVLINK_ERROR_DL_RECOVERY: "recovery",
    pynvml.NVML_NVLINK_ERROR_DL_CRC_FLIT: "crc_flit",
    pynvml.NVML_NVLINK_ERROR_DL_CRC_DATA: "crc_data",
}

# Field id -> (value type, reader(gpu, scope id)). A reader raising NVMLError sets that field's
# nvmlReturn, as the driver does per field; ids not listed here answer NOT_SUPPORTED.
FieldReader = Callable[[FakeGPU, int], int]
_UINT = pynvml.NVML_VALUE_TYPE_UNSIGNED_INT
_ULL = pynvml.NVML_VALUE_TYPE_UNSIGNED_LONG_LONG


def _attribute(name: str) -> FieldReader:
    return lambda gpu, _scope: int(getattr(gpu, name))


def _scoped_link(name: str) -> FieldReader:
    return lambda gpu, scope: int(getattr(_link(gpu, scope), name))


def _fixed_link(link: int, name: str) -> FieldReader:
    return lambda gpu, _scope: int(getattr(_link(gpu, link), name))


def _all_links(name: str) -> FieldReader:
    def total(gpu: FakeGPU, _scope: int) -> int:
        if not gpu.nvlinks:
            raise NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return sum(int(getattr(link, name)) for link in gpu.nvlinks)

    return total


def _clock_event_ns(reason: int) -> FieldReader:
    return lambda gpu, _scope: gpu.clock_event_ns.get(reason, 0)


def _field_table() -> dict[int, tuple[int, FieldReader]]:
    table: dict[int, tuple[int, FieldReader]] = {
        pynvml.NVML_FI_DEV_MEMORY_TEMP: (_UINT, _attribute("temperature_memory")),
        pynvml.NVML_FI_DEV_TOTAL_ENERGY_CONSUMPTION: (_ULL, _attribute("energy_mj")),
        pynvml.NVML_FI_DEV_POWER_INSTANT: (_UINT, _attribute("power_mw")),
        pynvml.NVML_FI_DEV_ECC_SBE_VOL_TOTAL: (_ULL, _attribute("ecc_sbe_volatile")),
        pynvml.NVML_FI_DEV_ECC_DBE_VOL_TOTAL: (_ULL, _attribute("ecc_dbe_volatile")),
        pynvml.NVML_FI_DEV_ECC_SBE_AGG_TOTAL: (_ULL, _attribute("ecc_sbe_aggregate")),
        pynvml.NVML_FI_DEV_ECC_DBE_AGG_TOTAL: (_ULL, _attribute("ecc_dbe_aggregate")),
        pynvml.NVML_FI_DEV_RETIRED_SBE: (_ULL, _attribute("retired_sbe")),
        pynvml.NVML_FI_DEV_RETIRED_DBE: (_ULL, _attribute("retired_dbe")),
        pynvml.NVML_FI_DEV_RETIRED_PENDING: (_ULL, _attribute("retired_pending")),
        pynvml.NVML_FI_DEV_REMAPPED_COR: (_UINT, _attribute("remapped_correctable")),
        pynvml.NVML_FI_DEV_REMAPPED_UNC: (_UINT, _attribute("remapped_uncorrectable")),
        pynvml.NVML_FI_DEV_REMAPPED_PENDING: (_UINT, _attribute("remap_pending")),
        pynvml.NVML_FI_DEV_REMAPPED_FAILURE: (_UINT, _attribute("remap_failure")),
        pynvml.NVML_FI_DEV_PCIE_REPLAY_COUNTER: (_ULL, _attribute("pcie_replay")),
        pynvml.NVML_FI_DEV_GET_GPU_RECOVERY_ACTION: (_UINT, _attribute("recovery_action")),
        pynvml.NVML_FI_DEV_NVLINK_LINK_COUNT: (_UINT, lambda gpu, _scope: len(gpu.nvlinks)),
        pynvml.NVML_FI_DEV_NVLINK_GET_STATE: (_UINT, _scoped_link("up")),
        pynvml.NVML_FI_DEV_NVLINK_ERROR_DL_REPLAY: (_ULL, _scoped_link("replay")),
        pynvml.NVML_FI_DEV_NVLINK_ERROR_DL_RECOVERY: (_ULL, _scoped_link("recovery")),
        pynvml.NVML_FI_DEV_NVLINK_ERROR_DL_CRC: (_ULL, _scoped_link("crc_flit")),
    }
    for reason, field_id in CLOCK_EVENT_DURATION_FIELDS.items():
        table[field_id] = (_ULL, _clock_event_ns(reason))
    for kind, name in (("CRC_FLIT", "crc_flit"), ("CRC_DATA", "crc_data"), ("REPLAY", "replay"), ("RECOVERY", "recovery")):
        table[getattr(pynvml, f"NVML_FI_DEV_NVLINK_{kind}_ERROR_COUNT_TOTAL")] = (_ULL, _all_links(name))
    # The per-link fields NVML numbers for links 0-11 (their ids are not contiguous).
    for kind, name in (("CRC_FLIT", "crc_flit"), ("CRC_DATA", "crc_data"), ("REPLAY", "replay"), ("RECOVERY", "recovery")):
        for link in range(12):
            table[getattr(pynvml, f"NVML_FI_DEV_NVLINK_{kind}_ERROR_COUNT_L{link}")] = (_ULL, _fixed_link(link, name))
    return table


def _field_names() -> dict[int, tuple[str, ...]]:
    """Every NVML_FI_* name of each id (some ids have two), so ``unsupported`` may use either."""
    names: dict[int, tuple[str, ...]] = {}
    for name, value in vars(pynvml).items():
        if name.startswith("NVML_FI_") and isinstance(value, int):
            names[value] = names.get(value, ()) + (name,)
    return names


_FIELDS = _field_table()
_FIELD_NAMES = _field_names()



def _field_value(gpu: FakeGPU, request: int | tuple[int, int], now_us: int) -> bytes:
    field_id, scope_id = request if isinstance(request, tuple) else (request, 0)
    value_type, read = _FIELDS.get(field_id, (_UINT, None))
    try:
        if read is None:
            raise NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        if gpu.unsupported or gpu.failing:
            _raise_configured(gpu, _FIELD_NAMES.get(field_id, ()))
        value = read(gpu, scope_id)
    except NVMLError as exc:
        return pack_field_value(field_id, scope_id, now_us, exc.value, value_type, 0)
    return pack_field_value(field_id, scope_id, now_us, pynvml.NVML_SUCCESS, value_type, value)
