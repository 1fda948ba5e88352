"""One process's use of NVML: init with backoff, device enumeration, identities, lost GPUs.

The collection loop calls ``refresh()`` once per cycle before the collectors run; the GPU, XID
and job collectors then read ``devices`` (GPUs that answer) and ``missing`` (GPUs seen earlier
in this process that are now lost or gone, which must be reported down, never just vanish).

Identity (uuid, name, serial, PCI bus id, VBIOS, NVLink count) is read once per device handle
and cached: it cannot change while the driver holds the device, and reading it every cycle
would multiply the NVML calls of a cycle. MIG instances are re-enumerated every cycle on GPUs
in MIG mode, because instances can be created and destroyed without a reset.
"""
from __future__ import annotations

import ctypes
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import pynvml
from pynvml import NVMLError

log = logging.getLogger(__name__)

# Errors that mean the device (or the library) is gone, not that one reading is unavailable.
_LOST_ERRORS = (pynvml.NVMLError_GpuIsLost, pynvml.NVMLError_Uninitialized)


def handle_key(handle: Any) -> int:
    """A hashable identity for an NVML device handle (the address it points to)."""
    return ctypes.addressof(handle.contents)


@dataclass
class MigInstance:
    """One MIG compute instance of a GPU."""

    handle: Any
    uuid: str
    gpu_instance_id: int
    compute_instance_id: int
    profile: str  # "1g.10gb", the tail of the MIG device's name


@dataclass(eq=False)
class GpuDevice:
    """One physical GPU as this process knows it; ``index`` is NVML's current index."""

    index: int
    handle: Any
    uuid: str
    name: str = ""
    serial: str = ""
    pci_bus_id: str = ""
    vbios_version: str = ""
    nvlink_count: int = 0
    mig_enabled: bool = False
    mig_instances: list[MigInstance] = field(default_factory=list)


class NvmlSession:
    """NVML brought up, kept up, and its GPUs enumerated, for every NVML collector to share."""

    def __init__(
        self,
        nvml: Any,
        clock: Callable[[], float] = time.monotonic,
        backoff_initial: float = 1.0,
        backoff_max: float = 300.0,
    ) -> None:
        self.nvml = nvml
        self.up = False
        self.last_error: str | None = None
        self.driver_version = ""
        self.cuda_driver_version = ""
        self.devices: list[GpuDevice] = []
        self.missing: list[GpuDevice] = []
        self._clock = clock
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._delay = backoff_initial
        self._next_attempt = float("-inf")
        self._logged_error: str | None = None
        self._identities: dict[int, GpuDevice] = {}
        self._seen: dict[str, GpuDevice] = {}  # uuid -> last known device, for reporting it down

    # -- per cycle ------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Bring NVML up if it is down (and the backoff allows), then enumerate its GPUs."""
        if not self.up and not self._try_init():
            self.devices, self.missing = [], list(self._seen.values())
            return
        try:
            count = self.nvml.nvmlDeviceGetCount()
        except NVMLError as exc:
            self._went_down(exc)
            self.devices, self.missing = [], list(self._seen.values())
            return
        self._enumerate(count)

    def mark_lost(self, device: GpuDevice, exc: BaseException) -> None:
        """A collector found ``device`` lost mid-cycle: report it down from now on."""
        if device in self.devices:
            self.devices = [other for other in self.devices if other is not device]
        if device not in self.missing:
            self.missing = [*self.missing, device]
        if device.handle is not None:
            self._identities.pop(handle_key(device.handle), None)
        log.warning("GPU %s (%s) lost: %s", device.index, device.uuid or "uuid unknown", exc)

    def known(self) -> list[GpuDevice]:
        """Every GPU seen in this process, as last seen (what to report down when NVML hangs)."""
        return list(self._seen.values())

    def device_for_handle(self, handle: Any) -> GpuDevice | None:
        """The enumerated GPU a handle (e.g. ``c_nvmlEventData_t.device``) refers to, if any."""
        return self._identities.get(handle_key(handle))

    def close(self) -> None:
        if self.up:
            try:
                self.nvml.nvmlShutdown()
            except NVMLError as exc:
                log.debug("nvmlShutdown: %s", exc)
        self.up = False

    # -- init and backoff -----------------------------------------------------------------------

    def _try_init(self) -> bool:
        now = self._clock()
        if now < self._next_attempt:
            return False
        try:
            self.nvml.nvmlInit()
        except NVMLError as exc:
            self._failed(exc, now)
            return False
        self._came_up()
        return True

    def _failed(self, exc: NVMLError, now: float) -> None:
        self.last_error = str(exc)
        self._next_attempt = now + self._delay
        # Logged once per distinct error: a node without a driver would otherwise log every cycle.
        if self.last_error != self._logged_error:
            log.warning("NVML unavailable (%s); retrying with backoff up to %.0fs", exc, self._backoff_max)
            self._logged_error = self.last_error
        else:
            log.debug("NVML still unavailable (%s); next try in %.1fs", exc, self._delay)
        self._delay = min(self._delay * 2, self._backoff_max)

    def _came_up(self) -> None:
        if self._logged_error is not None:
            log.info("NVML is up again")
        self.up = True
        self.last_error = None
        self._logged_error = None
        self._delay = self._backoff_initial
        self._identities = {}  # handles from an earlier init are not valid any more
        self.driver_version = self._optional(self.nvml.nvmlSystemGetDriverVersion)
        cuda = self._optional(self.nvml.nvmlSystemGetCudaDriverVersion)
        self.cuda_driver_version = f"{int(cuda) // 1000}.{int(cuda) % 1000 // 10}" if cuda else ""

    def _went_down(self, exc: NVMLError) -> None:
        self.close()
        self._failed(exc, self._clock())

    # -- enumeration ----------------------------------------------------------------------------

    def _enumerate(self, count: int) -> None:
        devices: list[GpuDevice] = []
        unreadable: list[int] = []
        for index in range(count):
            try:
                devices.append(self._device_at(index))
            except NVMLError as exc:
                log.debug("GPU %d unreadable: %s", index, exc)
                unreadable.append(index)
        self.devices = devices
        self._seen.update((device.uuid, device) for device in devices)
        self.missing = self._missing(devices, unreadable)

    def _device_at(self, index: int) -> GpuDevice:
        handle = self.nvml.nvmlDeviceGetHandleByIndex(index)
        key = handle_key(handle)
        device = self._identities.get(key)
        if device is None:
            device = self._identify(index, handle)
            self._identities[key] = device
        device.index = index  # indices shift when a GPU before it leaves the bus
        if device.mig_enabled:
            device.mig_instances = self._mig_instances(handle, device.mig_instances)
        return device

    def _missing(self, devices: list[GpuDevice], unreadable: list[int]) -> list[GpuDevice]:
        present = {device.uuid for device in devices}
        missing = [device for uuid, device in self._seen.items() if uuid not in present]
        # A GPU unreadable since this process started has no known identity, only its index.
        known_indices = {device.index for device in missing}
        missing += [GpuDevice(index=index, handle=None, uuid="") for index in unreadable if index not in known_indices]
        return missing

    def _identify(self, index: int, handle: Any) -> GpuDevice:
        nvml = self.nvml
        device = GpuDevice(index=index, handle=handle, uuid=nvml.nvmlDeviceGetUUID(handle))
        device.name = self._optional(nvml.nvmlDeviceGetName, handle)
        device.serial = self._optional(nvml.nvmlDeviceGetSerial, handle)
        device.vbios_version = self._optional(nvml.nvmlDeviceGetVbiosVersion, handle)
        pci = self._optional(nvml.nvmlDeviceGetPciInfo, handle)
        device.pci_bus_id = str(pci.busId) if pci else ""
        device.nvlink_count = self._nvlink_count(handle)
        mig = self._optional(nvml.nvmlDeviceGetMigMode, handle)
        device.mig_enabled = bool(mig and mig[0] == nvml.NVML_DEVICE_MIG_ENABLE)
        return device

    def _nvlink_count(self, handle: Any) -> int:
        values = self._optional(self.nvml.nvmlDeviceGetFieldValues, handle, [self.nvml.NVML_FI_DEV_NVLINK_LINK_COUNT])
        if not values or values[0].nvmlReturn != self.nvml.NVML_SUCCESS:
            return 0
        return int(values[0].value.uiVal)

    def _mig_instances(self, handle: Any, known: list[MigInstance]) -> list[MigInstance]:
        """The GPU's MIG instances now: every slot's handle and UUID each cycle (reconfiguring a
        GPU gives its new instances new UUIDs), the ids and profile of an instance ``known`` from
        the last cycle kept rather than read again."""
        nvml = self.nvml
        # Drivers before R470 named an instance by its GPU and ids ("MIG-GPU-<uuid>/<gi>/<ci>"): the
        # same name after a reconfiguration may be another profile, so those are read each cycle.
        by_uuid = {instance.uuid: instance for instance in known if not instance.uuid.startswith("MIG-GPU-")}
        instances = []
        for slot in range(self._optional(nvml.nvmlDeviceGetMaxMigDeviceCount, handle) or 0):
            try:
                mig = nvml.nvmlDeviceGetMigDeviceHandleByIndex(handle, slot)
                uuid = nvml.nvmlDeviceGetUUID(mig)
                instance = by_uuid.get(uuid)
                if instance is None:
                    instance = MigInstance(
                        handle=mig,
                        uuid=uuid,
                        gpu_instance_id=nvml.nvmlDeviceGetGpuInstanceId(mig),
                        compute_instance_id=nvml.nvmlDeviceGetComputeInstanceId(mig),
                        profile=nvml.nvmlDeviceGetName(mig).rsplit(" ", 1)[-1],
                    )
                instance.handle = mig
                instances.append(instance)
            except NVMLError as exc:
                if isinstance(exc, _LOST_ERRORS):
                    raise
                continue  # an empty slot (NotFound): instances need not be numbered contiguously
        return instances

    @staticmethod
    def _optional(call: Callable[..., Any], *args: Any) -> Any:
        """The call's result, or "" when this driver or model does not provide it."""
        try:
            return call(*args)
        except NVMLError as exc:
            if isinstance(exc, _LOST_ERRORS):
                raise
            return ""

