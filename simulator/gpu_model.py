"""How an H100 responds to load and faults: the physics behind every simulated GPU reading.

Temperature follows load with a thermal lag, power follows utilization up to the enforced limit,
clocks drop under thermal or power limits (and the clock-event reasons say why), energy and
throttle time integrate over elapsed time. Inputs: the job's ``GpuActivity`` and the GPU's
active fault conditions. Output: the ``FakeGPU`` fields the fake NVML reports.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import pynvml

from exporter.nvml.fake import FakeGPU, FakeProcess
from simulator.activity import GpuActivity

AMBIENT_C = 27.0
THERMAL_TIME_CONSTANT = 60.0  # seconds for the die to cover 63% of a temperature step
IDLE_POWER_W = 72.0
BOOST_SM_MHZ, BASE_LOADED_SM_MHZ, IDLE_SM_MHZ = 1980, 1755, 345
NVLINK_BYTES_PER_SECOND = 450e9  # per direction on an H100 SXM's 18 links


_M = pynvml
# GPM levels (percent) per unit of utilization, by GpuActivity.profile: a training job keeps the
# tensor pipes busy, a memory-bound one the DRAM; both leave FP64 idle. An allocated GPU running
# nothing has utilization ~0, so every level is ~0 (idle-but-allocated).
GPM_PROFILES: dict[str, dict[int, float]] = {
    "tensor": {_M.NVML_GPM_METRIC_GRAPHICS_UTIL: 100.0, _M.NVML_GPM_METRIC_SM_UTIL: 93.0,
               _M.NVML_GPM_METRIC_SM_OCCUPANCY: 55.0, _M.NVML_GPM_METRIC_ANY_TENSOR_UTIL: 62.0,
               _M.NVML_GPM_METRIC_DRAM_BW_UTIL: 42.0, _M.NVML_GPM_METRIC_FP64_UTIL: 0.0,
               _M.NVML_GPM_METRIC_FP32_UTIL: 12.0, _M.NVML_GPM_METRIC_FP16_UTIL: 9.0},
    "memory": {_M.NVML_GPM_METRIC_GRAPHICS_UTIL: 100.0, _M.NVML_GPM_METRIC_SM_UTIL: 70.0,
               _M.NVML_GPM_METRIC_SM_OCCUPANCY: 35.0, _M.NVML_GPM_METRIC_ANY_TENSOR_UTIL: 4.0,
               _M.NVML_GPM_METRIC_DRAM_BW_UTIL: 88.0, _M.NVML_GPM_METRIC_FP64_UTIL: 0.0,
               _M.NVML_GPM_METRIC_FP32_UTIL: 30.0, _M.NVML_GPM_METRIC_FP16_UTIL: 3.0},
}


def gpm_levels(activity: GpuActivity) -> dict[int, float]:
    """The GPM levels (percent; NVLink in MiB/s) the fake NVML averages between two samples."""
    util = min(1.0, max(0.0, activity.utilization))
    levels = {metric: percent * util for metric, percent in GPM_PROFILES[activity.profile].items()}
    nvlink = NVLINK_BYTES_PER_SECOND * activity.nvlink_fraction / 2**20
    levels[_M.NVML_GPM_METRIC_NVLINK_TOTAL_RX_PER_SEC] = levels[_M.NVML_GPM_METRIC_NVLINK_TOTAL_TX_PER_SEC] = nvlink
    return levels


@dataclass
class GpuConditions:
    """Lasting fault conditions on one GPU (set from the fault book every update)."""

    thermal_c: float | None = None  # cooling failure: the temperature it settles at under load
    power_brake: bool = False
    nvlink_error_rate: float = 0.0  # errors per minute on ``nvlink_link``
    nvlink_link: int = 0


def update_gpu(gpu: FakeGPU, activity: GpuActivity, conditions: GpuConditions, dt: float,
               process: FakeProcess | None) -> None:
    """Move ``gpu`` forward by ``dt`` seconds of ``activity`` under ``conditions``."""
    util = min(1.0, max(0.0, activity.utilization))
    reasons = 0
    if util < 0.01:
        reasons |= pynvml.nvmlClocksEventReasonGpuIdle

    target_c = AMBIENT_C + 8 + 45 * util
    if conditions.thermal_c is not None:
        target_c = max(target_c, conditions.thermal_c * (0.85 + 0.15 * util))
    gpu.temperature_gpu = round(_approach(gpu.temperature_gpu, target_c, dt))
    gpu.temperature_memory = round(gpu.temperature_gpu + 6 + 4 * util)

    sm_mhz = IDLE_SM_MHZ if util < 0.01 else BOOST_SM_MHZ - (BOOST_SM_MHZ - BASE_LOADED_SM_MHZ) * util
    sm_mhz *= activity.clock_fraction
    limit_w = gpu.power_limit_mw / 1000
    if gpu.temperature_gpu >= 87:
        reasons |= pynvml.nvmlClocksEventReasonSwThermalSlowdown
        if gpu.temperature_gpu >= 92:
            reasons |= pynvml.nvmlClocksEventReasonHwThermalSlowdown
        sm_mhz = min(sm_mhz, 1980 - (gpu.temperature_gpu - 85) * 70)
    power_w = IDLE_POWER_W + (limit_w - IDLE_POWER_W - 25) * util ** 1.15 * (sm_mhz / BOOST_SM_MHZ + 0.1)
    if conditions.power_brake:
        reasons |= pynvml.nvmlClocksEventReasonHwPowerBrakeSlowdown | pynvml.nvmlClocksEventReasonHwSlowdown
        sm_mhz, power_w = min(sm_mhz, 1100.0), min(power_w, 0.45 * limit_w)
    elif power_w > limit_w * 0.98:
        reasons |= pynvml.nvmlClocksEventReasonSwPowerCap
        power_w = limit_w * 0.98
    if activity.clock_fraction < 1 and util > 0.01:
        reasons |= pynvml.nvmlClocksEventReasonHwSlowdown

    gpu.clock_sm_mhz = round(max(IDLE_SM_MHZ, sm_mhz))
    gpu.power_mw = round(power_w * 1000)
    gpu.energy_mj += round(power_w * dt * 1000)
    gpu.clock_event_reasons = reasons
    for bit in _bits(reasons):
        gpu.clock_event_ns[bit] = gpu.clock_event_ns.get(bit, 0) + int(dt * 1e9)

    gpu.utilization_gpu = round(util * 100)
    gpu.utilization_memory = round(min(100.0, util * 55 + activity.copy_utilization * 20))
    gpu.memory_used = int(gpu.memory_total * activity.memory_fraction)
    gpu.pcie_tx_kbps = int((2e5 + 6e6 * activity.storage_write + 4e5 * util) / 1)
    gpu.pcie_rx_kbps = int(3e5 + 2.5e6 * util)
    gpu.fan_speed = 0  # SXM boards are cooled by the chassis; NVML reports 0 or not supported
    gpu.pstate = 0 if util > 0.01 else 0
    gpu.processes = [process] if process is not None else []
    _nvlink(gpu, activity, conditions, dt)


def _nvlink(gpu: FakeGPU, activity: GpuActivity, conditions: GpuConditions, dt: float) -> None:
    if conditions.nvlink_error_rate and gpu.nvlinks:
        link = gpu.nvlinks[conditions.nvlink_link % len(gpu.nvlinks)]
        errors = conditions.nvlink_error_rate * dt / 60
        link.replay += math.ceil(errors)
        link.recovery += math.ceil(errors / 10)
        link.crc_flit += math.ceil(errors * 2)
        link.crc_data += math.ceil(errors / 5)


def _approach(current: float, target: float, dt: float) -> float:
    return target + (current - target) * math.exp(-dt / THERMAL_TIME_CONSTANT)


def _bits(mask: int) -> list[int]:
    return [1 << bit for bit in range(mask.bit_length()) if mask >> bit & 1]
