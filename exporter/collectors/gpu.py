"""GPU metrics through the pynvml API, one set of series per GPU (labels ``gpu``, ``uuid``).

The collector reads ``ctx.nvml`` (an ``NvmlSession``, refreshed by the loop before collectors
run) and never knows whether it holds the real ``pynvml`` or the fake. Counters NVML exposes as
field values (ECC, retired pages, remapped rows, NVLink errors, PCIe replays, energy, clock-event
durations, recovery action) are read in one ``nvmlDeviceGetFieldValues`` call per GPU.

Failures, as an operator should see them:
- a GPU raising ``GpuIsLost`` (or gone from the bus) is reported ``gpu_up 0`` with its last
  known uuid and none of its other series; the other GPUs are unaffected;
- ``NotSupported`` is a model difference (no fan on an SXM board), so that metric is simply
  omitted; any other NVML error on one metric omits it and counts a collector error;
- NVML down: ``clusterwatch_exporter_nvml_up 0`` and the GPUs seen before reported down; the
  same while an NVML call hangs past the collection's ``nvml_timeout`` (``unavailable``).

Two counters are integrated here across cycles, from the samples of each cycle (trapezoid rule
over the time between cycles, so a Prometheus scrape interval cannot alias them):
``gpu_busy_seconds_total`` from utilization, and ``gpu_clock_event_seconds_total`` for the
reasons whose duration NVML does not report as a field.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import pynvml
from pynvml import NVMLError
from prometheus_client.core import Metric

from cwkernel.metrics import FamilySet, counter, gauge, metric_table
from exporter.collector import Collector, register_collector
from exporter.nvml import CLOCK_EVENT_DURATION_FIELDS, unpack_field_values
from exporter.nvml.session import GpuDevice, NvmlSession

GPU = ("gpu", "uuid")
MIG = ("gpu", "uuid", "gpu_instance_id", "compute_instance_id")

# Clock-event (throttle) reasons, as label value and NVML bit.
CLOCK_EVENT_REASONS: tuple[tuple[str, int], ...] = (
    ("gpu_idle", pynvml.nvmlClocksEventReasonGpuIdle),
    ("applications_clocks_setting", pynvml.nvmlClocksEventReasonApplicationsClocksSetting),
    ("sw_power_cap", pynvml.nvmlClocksEventReasonSwPowerCap),
    ("hw_slowdown", pynvml.nvmlClocksEventReasonHwSlowdown),
    ("sync_boost", pynvml.nvmlClocksEventReasonSyncBoost),
    ("sw_thermal_slowdown", pynvml.nvmlClocksEventReasonSwThermalSlowdown),
    ("hw_thermal_slowdown", pynvml.nvmlClocksEventReasonHwThermalSlowdown),
    ("hw_power_brake_slowdown", pynvml.nvmlClocksEventReasonHwPowerBrakeSlowdown),
    ("display_clock_setting", pynvml.nvmlClocksEventReasonDisplayClockSetting),
)
# The reasons an alert rule adds up, per GPU: one counter per class instead of one per reason, so
# that a rule over 131,072 GPUs reads one series each (alerts/rules/hardware.yml,
# GpuThermalThrottling and GpuPowerThrottling; docs/alerts.md#group-structure).
CLOCK_EVENT_CLASSES: dict[str, tuple[str, ...]] = {
    "thermal": ("hw_thermal_slowdown", "sw_thermal_slowdown"),
    "power_brake": ("hw_slowdown", "hw_power_brake_slowdown"),
}

RECOVERY_ACTIONS: dict[int, str] = {
    value: name[len("NVML_GPU_RECOVERY_ACTION_"):].lower()
    for name, value in vars(pynvml).items()
    if name.startswith("NVML_GPU_RECOVERY_ACTION_") and isinstance(value, int)
}

_DURATION_FIELD_NAMES = ", ".join(
    name for name, value in vars(pynvml).items()
    if name.startswith("NVML_FI_DEV_CLOCKS_EVENT_REASON_") and value in CLOCK_EVENT_DURATION_FIELDS.values()
)

GPU_METRICS = metric_table(
    gauge("clusterwatch_exporter_nvml_up", "1 if NVML is initialised and answering, else 0.", [], "",
          "nvmlInit, nvmlDeviceGetCount"),
    gauge("gpu_info", "GPU identity, value 1; model_name is the product name nvidia-smi shows.",
          [*GPU, "model_name", "serial", "driver_version", "vbios_version", "pci_bus_id", "cuda_version"], "",
          "nvmlDeviceGetName, nvmlDeviceGetSerial, nvmlSystemGetDriverVersion, nvmlDeviceGetVbiosVersion, "
          "nvmlDeviceGetPciInfo (busId), nvmlSystemGetCudaDriverVersion"),
    gauge("gpu_up", "1 if the GPU answers NVML, 0 if it is lost or gone from the bus since it was seen.",
          GPU, "", "nvmlDeviceGetHandleByIndex; NVMLError_GpuIsLost"),
    gauge("gpu_utilization_ratio", "Fraction of the last sample period a kernel ran on the GPU (0-1).",
          GPU, "ratio", "nvmlDeviceGetUtilizationRates (.gpu / 100)"),
    gauge("gpu_memory_copy_utilization_ratio", "Fraction of the last sample period device memory was read or written (0-1).",
          GPU, "ratio", "nvmlDeviceGetUtilizationRates (.memory / 100)"),
    counter("gpu_busy_seconds_total", "Seconds the GPU was busy, integrated from utilization samples across cycles.",
            GPU, "seconds", "nvmlDeviceGetUtilizationRates (.gpu), integrated by the exporter"),
    gauge("gpu_memory_used_bytes", "Device memory allocated.", GPU, "bytes", "nvmlDeviceGetMemoryInfo (.used)"),
    gauge("gpu_memory_free_bytes", "Device memory free.", GPU, "bytes", "nvmlDeviceGetMemoryInfo (.free)"),
    gauge("gpu_memory_total_bytes", "Device memory installed.", GPU, "bytes", "nvmlDeviceGetMemoryInfo (.total)"),
    gauge("gpu_memory_reserved_bytes", "Device memory the driver and firmware keep (counted in "
          "gpu_memory_used_bytes); absent where the driver lacks nvmlDeviceGetMemoryInfo_v2.", GPU, "bytes",
          "nvmlDeviceGetMemoryInfo (version nvmlMemory_v2, .reserved)"),
    gauge("gpu_encoder_utilization_ratio", "Fraction of the driver's last sampling period (~167 ms) the video "
          "encoder (NVENC) was busy (0-1); absent on GPUs without one.", GPU, "ratio",
          "nvmlDeviceGetEncoderUtilization (% / 100)"),
    gauge("gpu_decoder_utilization_ratio", "Fraction of the driver's last sampling period the video decoders "
          "(NVDEC) were busy (0-1).", GPU, "ratio", "nvmlDeviceGetDecoderUtilization (% / 100)"),
    gauge("gpu_temperature_celsius", "GPU die temperature.", GPU, "celsius",
          "nvmlDeviceGetTemperature (NVML_TEMPERATURE_GPU)"),
    gauge("gpu_memory_temperature_celsius", "HBM memory temperature.", GPU, "celsius", "field NVML_FI_DEV_MEMORY_TEMP"),
    gauge("gpu_power_watts", "Power draw.", GPU, "watts", "nvmlDeviceGetPowerUsage (mW)"),
    gauge("gpu_power_limit_watts", "Power limit the driver enforces.", GPU, "watts", "nvmlDeviceGetEnforcedPowerLimit (mW)"),
    counter("gpu_energy_joules_total", "Energy consumed since the driver was loaded.", GPU, "joules",
            "field NVML_FI_DEV_TOTAL_ENERGY_CONSUMPTION (mJ)"),
    gauge("gpu_sm_clock_hertz", "SM clock.", GPU, "hertz", "nvmlDeviceGetClockInfo (NVML_CLOCK_SM, MHz)"),
    gauge("gpu_memory_clock_hertz", "Memory clock.", GPU, "hertz", "nvmlDeviceGetClockInfo (NVML_CLOCK_MEM, MHz)"),
    gauge("gpu_sm_clock_max_hertz", "Highest SM clock the GPU supports.", GPU, "hertz",
          "nvmlDeviceGetMaxClockInfo (NVML_CLOCK_SM, MHz)"),
    gauge("gpu_memory_clock_max_hertz", "Highest memory clock the GPU supports.", GPU, "hertz",
          "nvmlDeviceGetMaxClockInfo (NVML_CLOCK_MEM, MHz)"),
    gauge("gpu_clock_event_active", "1 while the reason holds clocks down (clock-event / throttle reason), else 0.",
          [*GPU, "reason"], "", "nvmlDeviceGetCurrentClocksEventReasons (bitmask)"),
    counter("gpu_clock_event_seconds_total", "Seconds clocks were held down for the reason.",
            [*GPU, "reason"], "seconds",
            f"fields {_DURATION_FIELD_NAMES} (ns) where the driver has them; other reasons (and drivers "
            "without the fields) integrated by the exporter from nvmlDeviceGetCurrentClocksEventReasons"),
    counter("gpu_clock_event_class_seconds_total", "Seconds clocks were held down, summed over the reasons of a class: "
            "thermal (hw_thermal_slowdown, sw_thermal_slowdown) or power_brake (hw_slowdown, "
            "hw_power_brake_slowdown). A second with two reasons of the class active counts twice. One series "
            "per class, so that a rule reads one per GPU; absent in a cycle that could not read every reason of "
            "the class.", [*GPU, "class"], "seconds",
            "the sum of gpu_clock_event_seconds_total over the class's reasons"),
    gauge("gpu_pcie_transmit_bytes_per_second", "PCIe transmit throughput over the last ~20 ms.", GPU, "bytes/second",
          "nvmlDeviceGetPcieThroughput (NVML_PCIE_UTIL_TX_BYTES, KB/s)"),
    gauge("gpu_pcie_receive_bytes_per_second", "PCIe receive throughput over the last ~20 ms.", GPU, "bytes/second",
          "nvmlDeviceGetPcieThroughput (NVML_PCIE_UTIL_RX_BYTES, KB/s)"),
    counter("gpu_pcie_replay_total", "PCIe replays (link-level retransmissions).", GPU, "",
            "field NVML_FI_DEV_PCIE_REPLAY_COUNTER"),
    gauge("gpu_pcie_link_generation", "Current PCIe link generation.", GPU, "", "nvmlDeviceGetCurrPcieLinkGeneration"),
    gauge("gpu_pcie_link_generation_max", "Highest PCIe generation of the GPU and its slot.", GPU, "",
          "nvmlDeviceGetMaxPcieLinkGeneration"),
    gauge("gpu_pcie_link_width", "Current PCIe link width in lanes.", GPU, "", "nvmlDeviceGetCurrPcieLinkWidth"),
    gauge("gpu_pcie_link_width_max", "Widest PCIe link the GPU and its slot support, in lanes.", GPU, "",
          "nvmlDeviceGetMaxPcieLinkWidth"),
    counter("gpu_ecc_errors_total", "ECC errors: corrected (single-bit) or uncorrected (double-bit); volatile since "
            "the last driver load, aggregate over the GPU's life.", [*GPU, "type", "counter"], "",
            "fields NVML_FI_DEV_ECC_SBE_VOL_TOTAL, _DBE_VOL_TOTAL, _SBE_AGG_TOTAL, _DBE_AGG_TOTAL"),
    gauge("gpu_retired_pages", "Memory pages retired, by cause (single_bit or double_bit).", [*GPU, "cause"], "",
          "fields NVML_FI_DEV_RETIRED_SBE, NVML_FI_DEV_RETIRED_DBE"),
    gauge("gpu_retired_pages_pending", "1 if pages are waiting to be retired at the next driver load.", GPU, "",
          "field NVML_FI_DEV_RETIRED_PENDING"),
    gauge("gpu_remapped_rows", "HBM rows remapped, by the error that caused it (correctable or uncorrectable).",
          [*GPU, "type"], "", "fields NVML_FI_DEV_REMAPPED_COR, NVML_FI_DEV_REMAPPED_UNC"),
    gauge("gpu_remapped_rows_pending", "1 if a row remapping waits for a GPU reset.", GPU, "",
          "field NVML_FI_DEV_REMAPPED_PENDING"),
    gauge("gpu_remapped_rows_failure", "1 if a row remapping failed (the GPU needs service).", GPU, "",
          "field NVML_FI_DEV_REMAPPED_FAILURE"),
    gauge("gpu_nvlink_links", "NVLinks the GPU has.", GPU, "", "NvmlSession (NVML_FI_DEV_NVLINK_LINK_COUNT)"),
    gauge("gpu_nvlink_links_active", "NVLinks currently active; fewer than gpu_nvlink_links means a link is down.",
          GPU, "", "field NVML_FI_DEV_NVLINK_GET_STATE (scopeId = link)"),
    counter("gpu_nvlink_errors_total", "NVLink errors of all links by type: replay, recovery, crc_flit, crc_data.",
            [*GPU, "type"], "",
            "fields NVML_FI_DEV_NVLINK_{REPLAY,RECOVERY,CRC_FLIT,CRC_DATA}_ERROR_COUNT_TOTAL; where the driver "
            "lacks a total, the sum of the per-link fields"),
    counter("gpu_nvlink_errors_all_types_total", "NVLink errors of all links and all four types (replay, recovery, "
            "crc_flit, crc_data): one series per GPU, so that a rule reads one per GPU.", GPU, "",
            "the sum of gpu_nvlink_errors_total over its types"),
    counter("gpu_nvlink_link_errors_total",
            "NVLink errors of one link by type, only for links that have counted any (to find the bad link without "
            "18 x 4 series per GPU).", [*GPU, "link", "type"], "",
            "fields NVML_FI_DEV_NVLINK_ERROR_DL_REPLAY, _DL_RECOVERY, _DL_CRC (crc_flit) with scopeId = link; "
            "NVML_FI_DEV_NVLINK_CRC_DATA_ERROR_COUNT_L0..L11 (crc_data, links 0-11 only); read only when a total "
            "is non-zero or missing"),
    gauge("gpu_nvlink_link_down", "1 for each NVLink that is not active (absent while every link is up).",
          [*GPU, "link"], "", "field NVML_FI_DEV_NVLINK_GET_STATE (scopeId = link)"),
    gauge("gpu_fan_speed_ratio", "Fan speed as a fraction of its maximum (0-1); absent on fanless boards.", GPU,
          "ratio", "nvmlDeviceGetFanSpeed (%)"),
    gauge("gpu_performance_state", "Performance state, 0 (P0, fastest) to 15.", GPU, "",
          "nvmlDeviceGetPerformanceState"),
    gauge("gpu_persistence_mode", "1 if persistence mode is on.", GPU, "", "nvmlDeviceGetPersistenceMode"),
    gauge("gpu_recovery_action", "Action NVML recommends to recover the GPU (0 none, 1 gpu_reset, 2 node_reboot, "
          "3 drain_p2p, 4 drain_and_reset, ...); the action label names it.", [*GPU, "action"], "",
          "field NVML_FI_DEV_GET_GPU_RECOVERY_ACTION"),
    gauge("gpu_mig_mode", "1 if MIG mode is enabled.", GPU, "", "nvmlDeviceGetMigMode (current)"),
    gauge("gpu_mig_info", "MIG compute instance identity, value 1.", [*MIG, "mig_uuid", "profile"], "",
          "nvmlDeviceGetMigDeviceHandleByIndex, nvmlDeviceGetUUID, nvmlDeviceGetGpuInstanceId, "
          "nvmlDeviceGetComputeInstanceId, nvmlDeviceGetName"),
    gauge("gpu_mig_memory_used_bytes", "Device memory allocated in the MIG instance.", MIG, "bytes",
          "nvmlDeviceGetMemoryInfo on the MIG device (.used)"),
    gauge("gpu_mig_memory_total_bytes", "Device memory of the MIG instance.", MIG, "bytes",
          "nvmlDeviceGetMemoryInfo on the MIG device (.total)"),
)

# Field values read by one nvmlDeviceGetFieldValues call per GPU and exposed as they are:
# (field id, metric, extra labels, scale to base units).
DIRECT_FIELDS: tuple[tuple[int, str, dict[str, str], float], ...] = (
    (pynvml.NVML_FI_DEV_MEMORY_TEMP, "gpu_memory_temperature_celsius", {}, 1.0),
    (pynvml.NVML_FI_DEV_TOTAL_ENERGY_CONSUMPTION, "gpu_energy_joules_total", {}, 1e-3),
    (pynvml.NVML_FI_DEV_PCIE_REPLAY_COUNTER, "gpu_pcie_replay_total", {}, 1.0),
    (pynvml.NVML_FI_DEV_ECC_SBE_VOL_TOTAL, "gpu_ecc_errors_total", {"type": "corrected", "counter": "volatile"}, 1.0),
    (pynvml.NVML_FI_DEV_ECC_DBE_VOL_TOTAL, "gpu_ecc_errors_total", {"type": "uncorrected", "counter": "volatile"}, 1.0),
    (pynvml.NVML_FI_DEV_ECC_SBE_AGG_TOTAL, "gpu_ecc_errors_total", {"type": "corrected", "counter": "aggregate"}, 1.0),
    (pynvml.NVML_FI_DEV_ECC_DBE_AGG_TOTAL, "gpu_ecc_errors_total", {"type": "uncorrected", "counter": "aggregate"}, 1.0),
    (pynvml.NVML_FI_DEV_RETIRED_SBE, "gpu_retired_pages", {"cause": "single_bit"}, 1.0),
    (pynvml.NVML_FI_DEV_RETIRED_DBE, "gpu_retired_pages", {"cause": "double_bit"}, 1.0),
    (pynvml.NVML_FI_DEV_RETIRED_PENDING, "gpu_retired_pages_pending", {}, 1.0),
    (pynvml.NVML_FI_DEV_REMAPPED_COR, "gpu_remapped_rows", {"type": "correctable"}, 1.0),
    (pynvml.NVML_FI_DEV_REMAPPED_UNC, "gpu_remapped_rows", {"type": "uncorrectable"}, 1.0),
    (pynvml.NVML_FI_DEV_REMAPPED_PENDING, "gpu_remapped_rows_pending", {}, 1.0),
    (pynvml.NVML_FI_DEV_REMAPPED_FAILURE, "gpu_remapped_rows_failure", {}, 1.0),
)

# NVLink error counters by type: (field id, whether the id is per link L0..L11 rather than scoped).
NVLINK_SCOPED_ERRORS = (
    ("replay", pynvml.NVML_FI_DEV_NVLINK_ERROR_DL_REPLAY),
    ("recovery", pynvml.NVML_FI_DEV_NVLINK_ERROR_DL_RECOVERY),
    ("crc_flit", pynvml.NVML_FI_DEV_NVLINK_ERROR_DL_CRC),
)
NVLINK_CRC_DATA_FIELDS = tuple(getattr(pynvml, f"NVML_FI_DEV_NVLINK_CRC_DATA_ERROR_COUNT_L{link}") for link in range(12))
# All-links totals by type: one field each instead of one per link. Per-link fields are read only
# when a total is non-zero (to name the bad link) or when the driver lacks the total.
NVLINK_TOTAL_FIELDS = (
    ("replay", pynvml.NVML_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL),
    ("recovery", pynvml.NVML_FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_TOTAL),
    ("crc_flit", pynvml.NVML_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL),
    ("crc_data", pynvml.NVML_FI_DEV_NVLINK_CRC_DATA_ERROR_COUNT_TOTAL),
)

FieldKey = tuple[int, int]  # (field id, scope id)


def field_requests(nvlink_count: int) -> list[FieldKey]:
    """The fields one GPU is asked for every cycle; depends only on its number of NVLinks."""
    requests = [(field_id, 0) for field_id, *_ in DIRECT_FIELDS]
    requests += [(field_id, 0) for field_id in CLOCK_EVENT_DURATION_FIELDS.values()]
    requests.append((pynvml.NVML_FI_DEV_GET_GPU_RECOVERY_ACTION, 0))
    if nvlink_count:
        requests += [(pynvml.NVML_FI_DEV_NVLINK_GET_STATE, link) for link in range(nvlink_count)]
        requests += [(field_id, 0) for _, field_id in NVLINK_TOTAL_FIELDS]
    return requests


def nvlink_link_requests(nvlink_count: int) -> list[FieldKey]:
    """The per-link error fields, read only when the totals call for them."""
    requests = []
    for link in range(nvlink_count):
        requests += [(field_id, link) for _, field_id in NVLINK_SCOPED_ERRORS]
        if link < len(NVLINK_CRC_DATA_FIELDS):
            requests.append((NVLINK_CRC_DATA_FIELDS[link], 0))
    return requests


class _GpuLost(Exception):
    """The GPU stopped answering mid-cycle; its partial reading is dropped."""


class _Reading:
    """One GPU's samples for this cycle, committed only if the GPU answered to the end."""

    def __init__(self, device: GpuDevice) -> None:
        self.labels = {"gpu": device.index, "uuid": device.uuid}
        self.samples: list[tuple[str, float]] = []  # the GPU's labels only
        self.labeled: list[tuple[str, float, dict[str, object]]] = []  # and more

    def add(self, metric: str, value: float | None, /, **labels: object) -> None:
        if value is not None:
            if labels:
                self.labeled.append((metric, value, labels))
            else:
                self.samples.append((metric, value))

    def commit(self, out: FamilySet) -> None:
        out.add_all(self.samples, **self.labels)
        for metric, value, labels in self.labeled:
            out.add(metric, value, **self.labels, **labels)


@dataclass
class _Integrals:
    """Per-GPU counters integrated across cycles from sampled levels (trapezoid rule)."""

    time: float | None = None
    levels: dict[str, float] = field(default_factory=dict)
    totals: dict[str, float] = field(default_factory=dict)
    # Reasons whose duration the driver reported as a field once: from then on always used,
    # so one counter never mixes the driver's total with the exporter's integral.
    driver_reasons: set[str] = field(default_factory=set)

    def add(self, key: str, level: float, dt: float) -> float:
        last = self.levels.get(key, level)
        self.levels[key] = level
        self.totals[key] = self.totals.get(key, 0.0) + (last + level) / 2 * dt
        return self.totals[key]


@register_collector("gpu")
class GpuCollector(Collector):
    """GPU utilization, memory, power, clocks, errors and links through NVML."""

    def __init__(self, ctx: Any) -> None:
        super().__init__(ctx)
        self._integrals: dict[str, _Integrals] = {}
        self._requests: dict[int, list[FieldKey]] = {}
        self._memory_v2 = True  # until the driver says it lacks nvmlDeviceGetMemoryInfo_v2

    def collect(self) -> Iterable[Metric]:
        out = FamilySet(GPU_METRICS)
        session: NvmlSession | None = self.ctx.nvml
        out.add("clusterwatch_exporter_nvml_up", 1 if session is not None and session.up else 0)
        if session is None:
            return out
        for device in list(session.devices) if session.up else []:
            self._collect_gpu(out, session, device)
        for device in session.missing:
            out.add("gpu_up", 0, gpu=device.index, uuid=device.uuid)
        return out

    def unavailable(self) -> FamilySet:
        """NVML hangs: it is as good as down, and so is every GPU seen before."""
        out = FamilySet(GPU_METRICS)
        out.add("clusterwatch_exporter_nvml_up", 0)
        session: NvmlSession | None = self.ctx.nvml
        for device in session.known() if session is not None else []:
            out.add("gpu_up", 0, gpu=device.index, uuid=device.uuid)
        return out

    def _collect_gpu(self, out: FamilySet, session: NvmlSession, device: GpuDevice) -> None:
        reading = _Reading(device)
        try:
            self._read_gpu(session, device, reading)
        except _GpuLost as lost:
            session.mark_lost(device, lost.__cause__ or lost)
            return
        reading.commit(out)

    def _read_gpu(self, session: NvmlSession, device: GpuDevice, reading: _Reading) -> None:
        nvml = session.nvml
        reading.add("gpu_up", 1)
        reading.add("gpu_info", 1, model_name=device.name, serial=device.serial, driver_version=session.driver_version,
                    vbios_version=device.vbios_version, pci_bus_id=device.pci_bus_id,
                    cuda_version=session.cuda_driver_version)
        integrals, dt = self._elapsed(device)
        fields = self._read_fields(nvml, device)
        self._utilization(nvml, device, reading, integrals, dt)
        self._memory(nvml, device, reading)
        self._media(nvml, device, reading)
        self._power_and_thermal(nvml, device, reading)
        self._clocks(nvml, device, reading)
        self._clock_events(nvml, device, reading, fields, integrals, dt)
        self._pcie(nvml, device, reading)
        self._direct_fields(fields, reading)
        self._nvlinks(device, fields, reading)
        self._recovery_action(fields, reading)
        self._settings(nvml, device, reading)
        self._mig(nvml, device, reading)

    # -- error handling -------------------------------------------------------------------------

    def _call(self, device: GpuDevice, call: Callable[..., Any], *args: Any) -> Any:
        """``call(handle, *args)``, or None where this GPU cannot answer it."""
        try:
            return call(device.handle, *args)
        except NVMLError as exc:
            self._nvml_error(device, call.__name__, exc)
            return None

    def _nvml_error(self, device: GpuDevice, what: str, exc: NVMLError) -> None:
        if isinstance(exc, pynvml.NVMLError_NotSupported):
            return  # a model difference, not a fault: the metric is simply absent
        if isinstance(exc, pynvml.NVMLError_GpuIsLost):
            raise _GpuLost(str(exc)) from exc
        self.skip(f"GPU {device.index} {what}", exc)

    def _elapsed(self, device: GpuDevice) -> tuple[_Integrals, float]:
        integrals = self._integrals.setdefault(device.uuid, _Integrals())
        now = self.ctx.clock()
        # A long gap (NVML down, GPU lost) is not credited to whatever level is sampled next.
        max_gap = 3 * float(getattr(self.ctx.config, "interval", 5.0))
        dt = 0.0 if integrals.time is None else min(max(now - integrals.time, 0.0), max_gap)
        integrals.time = now
        return integrals, dt

    # -- readers --------------------------------------------------------------------------------

    def _read_fields(self, nvml: Any, device: GpuDevice) -> dict[FieldKey, float]:
        requests = self._requests.get(device.nvlink_count)
        if requests is None:
            requests = self._requests[device.nvlink_count] = field_requests(device.nvlink_count)
        fields = self._field_values(nvml, device, requests)
        totals = [fields.get((field_id, 0)) for _, field_id in NVLINK_TOTAL_FIELDS]
        if device.nvlink_count and any(total is None or total > 0 for total in totals):
            fields.update(self._field_values(nvml, device, nvlink_link_requests(device.nvlink_count)))
        return fields

    def _field_values(self, nvml: Any, device: GpuDevice, requests: list[FieldKey]) -> dict[FieldKey, float]:
        values = self._call(device, nvml.nvmlDeviceGetFieldValues, requests)
        numbers: dict[FieldKey, float] = {}
        for field_id, scope_id, ret, value in unpack_field_values(values) if values is not None else ():
            if value is not None:
                numbers[(field_id, scope_id)] = value
            else:
                self._nvml_error(device, f"field {field_id}", NVMLError(ret))
        return numbers

    def _utilization(self, nvml: Any, device: GpuDevice, reading: _Reading, integrals: _Integrals, dt: float) -> None:
        rates = self._call(device, nvml.nvmlDeviceGetUtilizationRates)
        if rates is None:
            return
        reading.add("gpu_utilization_ratio", rates.gpu / 100)
        reading.add("gpu_memory_copy_utilization_ratio", rates.memory / 100)
        reading.add("gpu_busy_seconds_total", integrals.add("busy", rates.gpu / 100, dt))

    def _memory(self, nvml: Any, device: GpuDevice, reading: _Reading) -> None:
        memory = None
        if self._memory_v2:
            try:
                memory = nvml.nvmlDeviceGetMemoryInfo(device.handle, nvml.nvmlMemory_v2)
            except NVMLError as exc:
                if not isinstance(exc, (pynvml.NVMLError_FunctionNotFound, pynvml.NVMLError_NotSupported,
                                        pynvml.NVMLError_ArgumentVersionMismatch)):
                    self._nvml_error(device, "nvmlDeviceGetMemoryInfo_v2", exc)
                    return
                self._memory_v2 = False  # an older driver: version 1 from now on, without .reserved
        if memory is None:
            memory = self._call(device, nvml.nvmlDeviceGetMemoryInfo)
        if memory is not None:
            # used as version 1 reports it (reserved included), whichever version answered
            reading.add("gpu_memory_used_bytes", memory.total - memory.free)
            reading.add("gpu_memory_free_bytes", memory.free)
            reading.add("gpu_memory_total_bytes", memory.total)
            reading.add("gpu_memory_reserved_bytes", getattr(memory, "reserved", None))

    def _media(self, nvml: Any, device: GpuDevice, reading: _Reading) -> None:
        encoder = self._call(device, nvml.nvmlDeviceGetEncoderUtilization)
        reading.add("gpu_encoder_utilization_ratio", None if encoder is None else encoder[0] / 100)
        decoder = self._call(device, nvml.nvmlDeviceGetDecoderUtilization)
        reading.add("gpu_decoder_utilization_ratio", None if decoder is None else decoder[0] / 100)

    def _power_and_thermal(self, nvml: Any, device: GpuDevice, reading: _Reading) -> None:
        reading.add("gpu_temperature_celsius", self._call(device, nvml.nvmlDeviceGetTemperature, nvml.NVML_TEMPERATURE_GPU))
        reading.add("gpu_power_watts", _scaled(self._call(device, nvml.nvmlDeviceGetPowerUsage), 1e-3))
        reading.add("gpu_power_limit_watts", _scaled(self._call(device, nvml.nvmlDeviceGetEnforcedPowerLimit), 1e-3))

    def _clocks(self, nvml: Any, device: GpuDevice, reading: _Reading) -> None:
        mhz = 1e6
        reading.add("gpu_sm_clock_hertz", _scaled(self._call(device, nvml.nvmlDeviceGetClockInfo, nvml.NVML_CLOCK_SM), mhz))
        reading.add("gpu_memory_clock_hertz", _scaled(self._call(device, nvml.nvmlDeviceGetClockInfo, nvml.NVML_CLOCK_MEM), mhz))
        reading.add("gpu_sm_clock_max_hertz", _scaled(self._call(device, nvml.nvmlDeviceGetMaxClockInfo, nvml.NVML_CLOCK_SM), mhz))
        reading.add("gpu_memory_clock_max_hertz",
                    _scaled(self._call(device, nvml.nvmlDeviceGetMaxClockInfo, nvml.NVML_CLOCK_MEM), mhz))

    def _clock_events(self, nvml: Any, device: GpuDevice, reading: _Reading, fields: dict[FieldKey, float],
                      integrals: _Integrals, dt: float) -> None:
        mask = self._call(device, nvml.nvmlDeviceGetCurrentClocksEventReasons)
        seconds: dict[str, float] = {}
        for reason, bit in CLOCK_EVENT_REASONS:
            active = None if mask is None else float(bool(mask & bit))
            reading.add("gpu_clock_event_active", active, reason=reason)
            duration_ns = fields.get((CLOCK_EVENT_DURATION_FIELDS.get(bit, -1), 0))
            if duration_ns is not None:
                integrals.driver_reasons.add(reason)
                seconds[reason] = duration_ns / 1e9
                reading.add("gpu_clock_event_seconds_total", seconds[reason], reason=reason)
            elif active is not None and reason not in integrals.driver_reasons:
                seconds[reason] = integrals.add(reason, active, dt)
                reading.add("gpu_clock_event_seconds_total", seconds[reason], reason=reason)
        # Only with every reason of the class read: a sum missing one would drop, and a rule's
        # rate() would take the drop for a counter reset.
        for name, reasons in CLOCK_EVENT_CLASSES.items():
            if all(reason in seconds for reason in reasons):
                reading.add("gpu_clock_event_class_seconds_total", sum(seconds[r] for r in reasons), **{"class": name})

    def _pcie(self, nvml: Any, device: GpuDevice, reading: _Reading) -> None:
        kib = 1024
        reading.add("gpu_pcie_transmit_bytes_per_second",
                    _scaled(self._call(device, nvml.nvmlDeviceGetPcieThroughput, nvml.NVML_PCIE_UTIL_TX_BYTES), kib))
        reading.add("gpu_pcie_receive_bytes_per_second",
                    _scaled(self._call(device, nvml.nvmlDeviceGetPcieThroughput, nvml.NVML_PCIE_UTIL_RX_BYTES), kib))
        reading.add("gpu_pcie_link_generation", self._call(device, nvml.nvmlDeviceGetCurrPcieLinkGeneration))
        reading.add("gpu_pcie_link_generation_max", self._call(device, nvml.nvmlDeviceGetMaxPcieLinkGeneration))
        reading.add("gpu_pcie_link_width", self._call(device, nvml.nvmlDeviceGetCurrPcieLinkWidth))
        reading.add("gpu_pcie_link_width_max", self._call(device, nvml.nvmlDeviceGetMaxPcieLinkWidth))

    @staticmethod
    def _direct_fields(fields: dict[FieldKey, float], reading: _Reading) -> None:
        for field_id, name, labels, scale in DIRECT_FIELDS:
            reading.add(name, _scaled(fields.get((field_id, 0)), scale), **labels)

    @staticmethod
    def _nvlinks(device: GpuDevice, fields: dict[FieldKey, float], reading: _Reading) -> None:
        # Per-GPU totals always; per-link series only for links with something to show: 18 links
        # x 5 series x 8 GPUs would be two thirds of a node's exposition, nearly all zeros.
        if not device.nvlink_count:
            return
        states = [fields.get((pynvml.NVML_FI_DEV_NVLINK_GET_STATE, link)) for link in range(device.nvlink_count)]
        for link, state in enumerate(states):
            if state == 0:
                reading.add("gpu_nvlink_link_down", 1, link=link)
        if any(state is not None for state in states):
            reading.add("gpu_nvlink_links", device.nvlink_count)
            reading.add("gpu_nvlink_links_active", sum(1 for state in states if state))
        per_link: dict[str, float] = {}
        for link in range(device.nvlink_count):
            link_errors = [(kind, fields.get((field_id, link))) for kind, field_id in NVLINK_SCOPED_ERRORS]
            if link < len(NVLINK_CRC_DATA_FIELDS):
                link_errors.append(("crc_data", fields.get((NVLINK_CRC_DATA_FIELDS[link], 0))))
            for kind, value in link_errors:
                if value is not None:
                    per_link[kind] = per_link.get(kind, 0.0) + value
                    if value:
                        reading.add("gpu_nvlink_link_errors_total", value, link=link, type=kind)
        totals = {kind: fields.get((field_id, 0), per_link.get(kind))  # the driver's total, else the links' sum
                  for kind, field_id in NVLINK_TOTAL_FIELDS}
        for kind, total in totals.items():
            reading.add("gpu_nvlink_errors_total", total, type=kind)
        # The types come from one field-values call, so a type missing is one the driver never has.
        if any(total is not None for total in totals.values()):
            reading.add("gpu_nvlink_errors_all_types_total", sum(t for t in totals.values() if t is not None))

    @staticmethod
    def _recovery_action(fields: dict[FieldKey, float], reading: _Reading) -> None:
        code = fields.get((pynvml.NVML_FI_DEV_GET_GPU_RECOVERY_ACTION, 0))
        if code is not None:
            reading.add("gpu_recovery_action", code, action=RECOVERY_ACTIONS.get(int(code), f"unknown_{int(code)}"))

    def _settings(self, nvml: Any, device: GpuDevice, reading: _Reading) -> None:
        reading.add("gpu_fan_speed_ratio", _scaled(self._call(device, nvml.nvmlDeviceGetFanSpeed), 0.01))
        pstate = self._call(device, nvml.nvmlDeviceGetPerformanceState)
        if pstate != nvml.NVML_PSTATE_UNKNOWN:
            reading.add("gpu_performance_state", pstate)
        reading.add("gpu_persistence_mode", self._call(device, nvml.nvmlDeviceGetPersistenceMode))
        reading.add("gpu_mig_mode", 1 if device.mig_enabled else 0)

    def _mig(self, nvml: Any, device: GpuDevice, reading: _Reading) -> None:
        for mig in device.mig_instances:
            ids = {"gpu_instance_id": mig.gpu_instance_id, "compute_instance_id": mig.compute_instance_id}
            reading.add("gpu_mig_info", 1, **ids, mig_uuid=mig.uuid, profile=mig.profile)
            try:
                memory = nvml.nvmlDeviceGetMemoryInfo(mig.handle)
            except NVMLError as exc:
                self._nvml_error(device, f"MIG {mig.uuid} nvmlDeviceGetMemoryInfo", exc)
                continue
            reading.add("gpu_mig_memory_used_bytes", memory.used, **ids)
            reading.add("gpu_mig_memory_total_bytes", memory.total, **ids)


def _scaled(value: float | None, scale: float) -> float | None:
    return None if value is None else value * scale
