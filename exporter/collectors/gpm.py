"""Profiling-grade GPU metrics through NVML's GPU Performance Monitoring (GPM) API, per GPU.

NVML's ``gpu_utilization_ratio`` is the coarse kernel-busy ratio: a GPU at 100 % may be running
one warp. GPM (Hopper and later) reads the SM, tensor-pipe, FP pipes and DRAM activity that
training clusters judge efficiency by (dcgm-exporter's ``PROF_*`` fields), as the average over
the time between two samples.

The sample pair spans the collection interval: the collection loop (the exporter's one
background sampler, the only thread that calls NVML) runs this collector once a cycle, and each
cycle takes one new sample per GPU (``nvmlGpmSampleGet``) and computes the metrics between it and
the previous cycle's sample (``nvmlGpmMetricsGet``); the new sample becomes the next cycle's
first. Two samples are allocated per GPU (``nvmlGpmSampleAlloc``), reused every cycle, and freed
(``nvmlGpmSampleFree``) when the GPU goes or the exporter stops. The first cycle after start (or
after a failure) has no pair yet, so it reports ``gpu_gpm_supported`` only.

Failures, as an operator should see them:
- a GPU without GPM (``nvmlGpmQueryDeviceSupport`` says not supported, or answers
  ``NotSupported``/``FunctionNotFound`` on an older driver): ``gpu_gpm_supported 0`` and no
  GPM series at all, never zeros;
- a GPM call failing on one GPU mid-run: that GPU's GPM series are absent this cycle, the error
  is counted (``clusterwatch_exporter_collector_errors_total{collector="gpm"}``), the pair starts
  again next cycle; the other GPUs and the other collectors are unaffected;
- one metric NVML cannot compute (its own ``nvmlReturn``): that series alone is absent;
- a lost GPU is left to the ``gpu`` collector (``gpu_up 0``); its samples are freed.
MIG instances are not sampled yet (``nvmlGpmMigSampleGet``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

import pynvml
from pynvml import NVMLError
from prometheus_client.core import Metric

from cwkernel.metrics import FamilySet, gauge, metric_table
from exporter.collector import Collector, register_collector
from exporter.nvml.session import GpuDevice, NvmlSession, handle_key

GPU = ("gpu", "uuid")
MIB = 1024**2

# (metric, GPM metric id, scale to base units, help). Percentages become ratios (0-1).
GPM_SERIES: tuple[tuple[str, int, float, str], ...] = (
    ("gpu_graphics_engine_active_ratio", pynvml.NVML_GPM_METRIC_GRAPHICS_UTIL, 0.01,
     "Fraction of the interval any graphics or compute engine was active (dcgm PROF_GR_ENGINE_ACTIVE)."),
    ("gpu_sm_active_ratio", pynvml.NVML_GPM_METRIC_SM_UTIL, 0.01,
     "Fraction of the interval the SMs were busy, averaged over all SMs (dcgm PROF_SM_ACTIVE)."),
    ("gpu_sm_occupancy_ratio", pynvml.NVML_GPM_METRIC_SM_OCCUPANCY, 0.01,
     "Warps resident on the SMs as a fraction of the theoretical maximum (dcgm PROF_SM_OCCUPANCY)."),
    ("gpu_tensor_active_ratio", pynvml.NVML_GPM_METRIC_ANY_TENSOR_UTIL, 0.01,
     "Fraction of the interval the SMs' tensor pipes were active, any precision (dcgm PROF_PIPE_TENSOR_ACTIVE)."),
    ("gpu_dram_active_ratio", pynvml.NVML_GPM_METRIC_DRAM_BW_UTIL, 0.01,
     "Device memory bandwidth used as a fraction of the theoretical maximum (dcgm PROF_DRAM_ACTIVE)."),
    ("gpu_fp64_active_ratio", pynvml.NVML_GPM_METRIC_FP64_UTIL, 0.01,
     "Fraction of the interval the SMs did non-tensor FP64 math (dcgm PROF_PIPE_FP64_ACTIVE)."),
    ("gpu_fp32_active_ratio", pynvml.NVML_GPM_METRIC_FP32_UTIL, 0.01,
     "Fraction of the interval the SMs did non-tensor FP32 math (dcgm PROF_PIPE_FP32_ACTIVE)."),
    ("gpu_fp16_active_ratio", pynvml.NVML_GPM_METRIC_FP16_UTIL, 0.01,
     "Fraction of the interval the SMs did non-tensor FP16 math (dcgm PROF_PIPE_FP16_ACTIVE)."),
    ("gpu_nvlink_receive_bytes_per_second", pynvml.NVML_GPM_METRIC_NVLINK_TOTAL_RX_PER_SEC, MIB,
     "NVLink receive throughput of all links, averaged over the interval (dcgm PROF_NVLINK_RX_BYTES as a rate)."),
    ("gpu_nvlink_transmit_bytes_per_second", pynvml.NVML_GPM_METRIC_NVLINK_TOTAL_TX_PER_SEC, MIB,
     "NVLink transmit throughput of all links, averaged over the interval (dcgm PROF_NVLINK_TX_BYTES as a rate)."),
)
_GPM_NAMES = {value: name for name, value in vars(pynvml).items()
              if name.startswith("NVML_GPM_METRIC_") and isinstance(value, int)}

GPM_METRICS = metric_table(
    gauge("gpu_gpm_supported", "1 if the GPU has GPU Performance Monitoring (Hopper and later), so its "
          "GPM series (those whose source is nvmlGpmMetricsGet) are exported; 0 if not (they are then absent, "
          "not 0).", GPU, "",
          "nvmlGpmQueryDeviceSupport (.isSupportedDevice)"),
    *(gauge(name, f"{help_text} Averaged over the collection interval; absent on GPUs without GPM.", GPU,
            "bytes/second" if scale == MIB else "ratio",
            f"nvmlGpmMetricsGet {_GPM_NAMES[metric_id]} between the samples of consecutive cycles"
            + (" (MiB/s)" if scale == MIB else " (% / 100)"))
      for name, metric_id, scale, help_text in GPM_SERIES),
)


@dataclass(eq=False)
class _GpuSampler:
    """One GPU's two GPM samples and the request reused every cycle."""

    uuid: str
    previous: Any  # the last cycle's sample, or the spare one while ``filled`` is False
    current: Any
    request: Any  # c_nvmlGpmMetricsGet_t with the metric ids filled in
    filled: bool = False


@register_collector("gpm")
class GpmCollector(Collector):
    """Profiling-grade GPU metrics (SM, tensor, FP pipes, DRAM, NVLink) through NVML's GPM API."""

    def __init__(self, ctx: Any) -> None:
        super().__init__(ctx)
        self._supported: dict[int, bool] = {}  # handle key -> whether the GPU has GPM
        self._samplers: dict[int, _GpuSampler] = {}  # handle key -> its samples
        self._nvml: Any = None

    def collect(self) -> Iterable[Metric]:
        out = FamilySet(GPM_METRICS)
        session: NvmlSession | None = self.ctx.nvml
        devices = list(session.devices) if session is not None and session.up else []
        if session is not None and session.nvml is not self._nvml or not devices:
            self._release_all()  # NVML down or re-initialised: its samples and handles are gone
            self._nvml = session.nvml if session is not None else None
        seen: set[int] = set()
        for device in devices:
            key = handle_key(device.handle)
            seen.add(key)
            self._collect_gpu(out, session.nvml, device, key)
        for key in [key for key in self._samplers if key not in seen]:
            self._release(key)
        for key in [key for key in self._supported if key not in seen]:
            del self._supported[key]
        return out

    def close(self) -> None:
        self._release_all()

    # -- per GPU --------------------------------------------------------------------------------

    def _collect_gpu(self, out: FamilySet, nvml: Any, device: GpuDevice, key: int) -> None:
        labels = {"gpu": device.index, "uuid": device.uuid}
        supported = self._supported.get(key)
        if supported is None:
            supported = self._query_support(nvml, device)
            if supported is None:
                return  # unknown this cycle (error counted); asked again next cycle
            self._supported[key] = supported
        out.add("gpu_gpm_supported", 1 if supported else 0, **labels)
        if not supported:
            return
        try:
            sampler = self._samplers.get(key)
            if sampler is None or sampler.uuid != device.uuid:
                self._release(key)
                sampler = self._samplers[key] = self._allocate(nvml, device.uuid)
            values = self._sample(nvml, device, sampler)
        except NVMLError as exc:
            self._release(key)  # a pair across a failure would span more than one interval
            if isinstance(exc, pynvml.NVMLError_NotSupported):
                self._supported[key] = False  # the driver said yes, the GPU says no: stop asking
            elif not isinstance(exc, pynvml.NVMLError_GpuIsLost):  # the gpu collector reports it down
                self.skip(f"GPU {device.index} GPM sample", exc)
            return
        for name, value in values:
            out.add(name, value, **labels)

    def _query_support(self, nvml: Any, device: GpuDevice) -> bool | None:
        try:
            return bool(nvml.nvmlGpmQueryDeviceSupport(device.handle).isSupportedDevice)
        except NVMLError as exc:
            if isinstance(exc, (pynvml.NVMLError_NotSupported, pynvml.NVMLError_FunctionNotFound)):
                return False  # pre-Hopper GPU, or a driver older than GPM
            if not isinstance(exc, pynvml.NVMLError_GpuIsLost):
                self.skip(f"GPU {device.index} nvmlGpmQueryDeviceSupport", exc)
            return None

    @staticmethod
    def _allocate(nvml: Any, uuid: str) -> _GpuSampler:
        first = nvml.nvmlGpmSampleAlloc()
        try:
            second = nvml.nvmlGpmSampleAlloc()
        except NVMLError:
            nvml.nvmlGpmSampleFree(first)
            raise
        request = pynvml.c_nvmlGpmMetricsGet_t()
        request.version = pynvml.NVML_GPM_METRICS_GET_VERSION
        request.numMetrics = len(GPM_SERIES)
        for slot, (_, metric_id, _, _) in enumerate(GPM_SERIES):
            request.metrics[slot].metricId = metric_id
        return _GpuSampler(uuid, first, second, request)

    def _sample(self, nvml: Any, device: GpuDevice, sampler: _GpuSampler) -> list[tuple[str, float]]:
        nvml.nvmlGpmSampleGet(device.handle, sampler.current)
        if not sampler.filled:
            sampler.previous, sampler.current = sampler.current, sampler.previous
            sampler.filled = True
            return []
        request = sampler.request
        request.sample1, request.sample2 = sampler.previous, sampler.current
        nvml.nvmlGpmMetricsGet(request)
        sampler.previous, sampler.current = sampler.current, sampler.previous
        values = []
        metrics = request.metrics
        for slot, (name, metric_id, scale, _) in enumerate(GPM_SERIES):
            metric = metrics[slot]
            ret = metric.nvmlReturn
            if ret == pynvml.NVML_SUCCESS:
                values.append((name, metric.value * scale))
            elif ret != pynvml.NVML_ERROR_NOT_SUPPORTED:
                self.skip(f"GPU {device.index} GPM metric {_GPM_NAMES[metric_id]}", NVMLError(ret))
        return values

    # -- samples --------------------------------------------------------------------------------

    def _release(self, key: int) -> None:
        sampler = self._samplers.pop(key, None)
        if sampler is None or self._nvml is None:
            return
        for sample in (sampler.previous, sampler.current):
            try:
                self._nvml.nvmlGpmSampleFree(sample)
            except NVMLError:
                pass  # NVML already shut down or re-initialised: nothing left to free

    def _release_all(self) -> None:
        for key in list(self._samplers):
            self._release(key)
        self._supported.clear()
