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

MIG: on a GPU in MIG mode the work runs in its GPU instances, so GPM is sampled per GPU instance
(``nvmlGpmMigSampleGet(device, gpuInstanceId, sample)`` on the GPU's own handle), not for the whole
GPU: whole-GPU SM activity would average instances that serve different jobs. GPM counts per GPU
instance, which the compute instances inside it share, so the label set is ``MIG_GPU_INSTANCE``
(gpu, uuid of the GPU, gpu_instance_id) without compute_instance_id, and the families are
``gpu_mig_*`` beside the gpu collector's ``gpu_mig_*`` (never the whole-GPU names: the rules join
those on (instance, gpu), which a series per instance would break). NVLink bandwidth belongs to
the GPU, not to an instance: not sampled per instance. ``gpu_mig_gpm_supported`` says which
instances have GPM (0 where the driver says NOT_SUPPORTED: no series for them, not zeros); a
failure on one instance drops that instance's series this cycle only, as on a whole GPU.
"""
from __future__ import annotations

import ctypes
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import pynvml
from pynvml import NVMLError
from prometheus_client.core import Metric

from cwkernel.metrics import FamilySet, gauge, metric_table
from exporter.collector import Collector, register_collector
from exporter.nvml.session import GpuDevice, NvmlSession, handle_key

GPU = ("gpu", "uuid")
MIG_GPU_INSTANCE = ("gpu", "uuid", "gpu_instance_id")  # GPM counts per GPU instance, not per compute instance
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
# Per MIG GPU instance: the activity ratios under gpu_mig_* names (NVLink belongs to the whole GPU).
MIG_SERIES: tuple[tuple[str, int, float, str], ...] = tuple(
    ("gpu_mig_" + name.removeprefix("gpu_"), metric_id, scale, help_text)
    for name, metric_id, scale, help_text in GPM_SERIES if scale != MIB)

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
    gauge("gpu_mig_gpm_supported", "1 if the MIG GPU instance is sampled through GPM (its gpu_mig_* GPM series "
          "are exported); 0 if the driver says not supported (they are then absent, not 0).", MIG_GPU_INSTANCE, "",
          "nvmlGpmMigSampleGet (NVML_ERROR_NOT_SUPPORTED: 0)"),
    *(gauge(name, f"{help_text.replace('the SMs', 'the GPU instance SMs')} Of one MIG GPU instance, averaged over "
            "the collection interval; absent where the instance has no GPM.", MIG_GPU_INSTANCE, "ratio",
            f"nvmlGpmMigSampleGet + nvmlGpmMetricsGet {_GPM_NAMES[metric_id]} between consecutive cycles (% / 100)")
      for name, metric_id, scale, help_text in MIG_SERIES),
)


@dataclass(eq=False)
class _GpuSampler:
    """One GPU's (or MIG GPU instance's) two GPM samples and the request reused every cycle."""

    uuid: str
    previous: Any  # the last cycle's sample, or the spare one while ``filled`` is False
    current: Any
    request: Any  # c_nvmlGpmMetricsGet_t with the metric ids filled in
    filled: bool = False


# A sampler's key: the GPU's handle key, and its GPU instance id (None: the whole GPU).
_SamplerKey = tuple[int, "int | None"]


@register_collector("gpm")
class GpmCollector(Collector):
    """Profiling-grade GPU metrics (SM, tensor, FP pipes, DRAM, NVLink) through NVML's GPM API."""

    def __init__(self, ctx: Any) -> None:
        super().__init__(ctx)
        self._supported: dict[int, bool] = {}  # handle key -> whether the GPU has GPM
        self._mig_supported: dict[_SamplerKey, bool] = {}  # (handle key, GPU instance) -> known support
        self._samplers: dict[_SamplerKey, _GpuSampler] = {}
        self._nvml: Any = None

    def collect(self) -> Iterable[Metric]:
        out = FamilySet(GPM_METRICS)
        session: NvmlSession | None = self.ctx.nvml
        devices = list(session.devices) if session is not None and session.up else []
        if session is not None and session.nvml is not self._nvml or not devices:
            self._release_all()  # NVML down or re-initialised: its samples and handles are gone
            self._nvml = session.nvml if session is not None else None
        seen: set[int] = set()
        sampled: set[_SamplerKey] = set()
        for device in devices:
            key = handle_key(device.handle)
            seen.add(key)
            self._collect_gpu(out, session.nvml, device, key, sampled)
        # A GPU gone, switched into or out of MIG mode, or an instance destroyed: its samples freed.
        for skey in [skey for skey in self._samplers if skey not in sampled]:
            self._release(skey)
        for key in [key for key in self._supported if key not in seen]:
            del self._supported[key]
        for skey in [skey for skey in self._mig_supported if skey[0] not in seen]:
            del self._mig_supported[skey]
        return out

    def close(self) -> None:
        self._release_all()

    # -- per GPU --------------------------------------------------------------------------------

    def _collect_gpu(self, out: FamilySet, nvml: Any, device: GpuDevice, key: int, sampled: set[_SamplerKey]) -> None:
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
        if device.mig_enabled:
            for instance in sorted({mig.gpu_instance_id for mig in device.mig_instances}):
                self._collect_instance(out, nvml, device, key, instance, sampled)
            return
        values = self._sampled(nvml, device, (key, None), GPM_SERIES, sampled,
                               lambda sample: nvml.nvmlGpmSampleGet(device.handle, sample))
        if values is _NOT_SUPPORTED:
            self._supported[key] = False  # the driver said yes, the GPU says no: stop asking
        out.add_all(values, **labels)

    def _collect_instance(self, out: FamilySet, nvml: Any, device: GpuDevice, key: int, instance: int,
                          sampled: set[_SamplerKey]) -> None:
        labels = {"gpu": device.index, "uuid": device.uuid, "gpu_instance_id": instance}
        if self._mig_supported.get((key, instance)) is False:
            out.add("gpu_mig_gpm_supported", 0, **labels)
            return
        values = self._sampled(nvml, device, (key, instance), MIG_SERIES, sampled,
                               lambda sample: nvml.nvmlGpmMigSampleGet(device.handle, instance, sample))
        if values is _NOT_SUPPORTED:
            self._mig_supported[(key, instance)] = False
            out.add("gpu_mig_gpm_supported", 0, **labels)
            return
        self._mig_supported[(key, instance)] = True
        out.add("gpu_mig_gpm_supported", 1, **labels)
        out.add_all(values, **labels)

    def _sampled(self, nvml: Any, device: GpuDevice, skey: _SamplerKey, table: tuple[tuple[str, int, float, str], ...],
                 sampled: set[_SamplerKey], sample_get: Callable[[Any], Any]) -> list[tuple[str, float]]:
        """One cycle of one sampler: a new sample, and the metrics since the previous one (none on
        the first cycle or after a failure); ``_NOT_SUPPORTED`` where the driver says so."""
        where = f"GPU {device.index}" + (f" GPU instance {skey[1]}" if skey[1] is not None else "")
        try:
            sampler = self._samplers.get(skey)
            if sampler is None or sampler.uuid != device.uuid:
                self._release(skey)
                sampler = self._samplers[skey] = self._allocate(nvml, device.uuid, table)
            sampled.add(skey)
            return self._sample(nvml, where, sampler, table, sample_get)
        except NVMLError as exc:
            self._release(skey)  # a pair across a failure would span more than one interval
            sampled.discard(skey)
            if isinstance(exc, pynvml.NVMLError_NotSupported):
                return _NOT_SUPPORTED
            if not isinstance(exc, pynvml.NVMLError_GpuIsLost):  # the gpu collector reports it down
                self.skip(f"{where} GPM sample", exc)
            return []

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
    def _allocate(nvml: Any, uuid: str, table: tuple[tuple[str, int, float, str], ...]) -> _GpuSampler:
        first = nvml.nvmlGpmSampleAlloc()
        try:
            second = nvml.nvmlGpmSampleAlloc()
        except NVMLError:
            nvml.nvmlGpmSampleFree(first)
            raise
        request = pynvml.c_nvmlGpmMetricsGet_t()
        request.version = pynvml.NVML_GPM_METRICS_GET_VERSION
        request.numMetrics = len(table)
        for slot, (_, metric_id, _, _) in enumerate(table):
            request.metrics[slot].metricId = metric_id
        return _GpuSampler(uuid, first, second, request)

    def _sample(self, nvml: Any, where: str, sampler: _GpuSampler, table: tuple[tuple[str, int, float, str], ...],
                sample_get: Callable[[Any], Any]) -> list[tuple[str, float]]:
        sample_get(sampler.current)
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
        for slot, (name, metric_id, scale, _) in enumerate(table):
            metric = metrics[slot]
            ret = _field(metric, "nvmlReturn")
            if ret == pynvml.NVML_SUCCESS:
                values.append((name, _field(metric, "value") * scale))
            elif ret != pynvml.NVML_ERROR_NOT_SUPPORTED:
                self.skip(f"{where} GPM metric {_GPM_NAMES[metric_id]}", NVMLError(ret))
        return values

    # -- samples --------------------------------------------------------------------------------

    def _release(self, skey: _SamplerKey) -> None:
        sampler = self._samplers.pop(skey, None)
        if sampler is None or self._nvml is None:
            return
        for sample in (sampler.previous, sampler.current):
            try:
                self._nvml.nvmlGpmSampleFree(sample)
            except NVMLError:
                pass  # NVML already shut down or re-initialised: nothing left to free

    def _release_all(self) -> None:
        for skey in list(self._samplers):
            self._release(skey)
        self._supported.clear()
        self._mig_supported.clear()


_NOT_SUPPORTED: list[tuple[str, float]] = []  # a sentinel: the driver answered NOT_SUPPORTED
# ctypes' own attribute read: pynvml's structures override it only to decode bytes, and these
# fields are numbers; read ~10 times per GPU (or MIG instance) per cycle, the override cost more
# than the rest of the collector's Python (bench/bench_exporter.py, MIG case).
_field = ctypes.Structure.__getattribute__
