"""The GPM collector (profiling-grade GPU metrics) and the fake NVML's GPM calls."""
from __future__ import annotations

import inspect

import pynvml
import pytest

from exporter.build import create_exporter
from exporter.collector import default_collectors
from exporter.collectors.gpm import GPM_SERIES, MIG_SERIES, GpmCollector
from exporter.collectors.gpu import GpuCollector
from exporter.config import ExporterConfig
from exporter.nvml.fake import FakeMigInstance, FakeNVML, FakeState
from tests.exporter.helpers import Clock, FakeGpuNode, Samples, parse_exposition, sample, series

SM = pynvml.NVML_GPM_METRIC_SM_UTIL
TENSOR = pynvml.NVML_GPM_METRIC_ANY_TENSOR_UTIL
DRAM = pynvml.NVML_GPM_METRIC_DRAM_BW_UTIL
NVLINK_RX = pynvml.NVML_GPM_METRIC_NVLINK_TOTAL_RX_PER_SEC
RATIOS = [name for name, *_ in GPM_SERIES]


def Node(state: FakeState) -> FakeGpuNode:  # noqa: N802 - reads as the node it builds
    """A fake node with the gpu and gpm collectors."""
    return FakeGpuNode(state, GpuCollector, GpmCollector, errors_of="gpm")


@pytest.fixture
def node() -> FakeGpuNode:
    return Node(FakeState.h100_node(gpus=4, seed=3))


def labels(node: FakeGpuNode, index: int) -> dict[str, str]:
    return {"gpu": str(index), "uuid": node.state.gpu(index).uuid}


def gpus_with(samples: Samples, name: str) -> set[str]:
    return {s["gpu"] for s in series(samples, name)}


def test_first_cycle_reports_support_only_then_every_ratio(node: FakeGpuNode) -> None:
    first = node.scrape()
    assert gpus_with(first, "gpu_gpm_supported") == {"0", "1", "2", "3"}
    assert sample(first, "gpu_gpm_supported", **labels(node, 0)) == 1
    assert not any(series(first, name) for name in RATIOS)  # no pair yet: absent, not 0
    second = node.scrape()
    for name in RATIOS:
        assert gpus_with(second, name) == {"0", "1", "2", "3"}, name


def test_the_sample_pair_spans_the_collection_interval(node: FakeGpuNode) -> None:
    node.scrape()
    node.clock.now += 1.0  # 1 s into the 5 s interval a job starts: SM 80 %, tensor 50 %, DRAM 30 %
    node.state.set_gpm(1, {SM: 80.0, TENSOR: 50.0, DRAM: 30.0, NVLINK_RX: 1000.0})
    samples = node.scrape(advance=4.0)
    assert sample(samples, "gpu_sm_active_ratio", **labels(node, 1)) == pytest.approx(0.64)
    assert sample(samples, "gpu_tensor_active_ratio", **labels(node, 1)) == pytest.approx(0.40)
    assert sample(samples, "gpu_dram_active_ratio", **labels(node, 1)) == pytest.approx(0.24)
    assert sample(samples, "gpu_nvlink_receive_bytes_per_second", **labels(node, 1)) == pytest.approx(800 * 1024**2)
    assert sample(samples, "gpu_sm_active_ratio", **labels(node, 0)) == 0
    # The next interval held 80 % throughout.
    assert sample(node.scrape(), "gpu_sm_active_ratio", **labels(node, 1)) == pytest.approx(0.80)


@pytest.mark.parametrize("how", ["pre_hopper", "old_driver"])
def test_gpus_without_gpm_get_no_series_and_say_so(node: FakeGpuNode, how: str) -> None:
    gpu = node.state.gpu(2)
    if how == "pre_hopper":
        gpu.gpm_supported = False  # nvmlGpmQueryDeviceSupport: isSupportedDevice 0
    else:
        gpu.unsupported.add("nvmlGpmQueryDeviceSupport")  # NVML_ERROR_NOT_SUPPORTED
    node.scrape()
    samples = node.scrape()
    assert sample(samples, "gpu_gpm_supported", **labels(node, 2)) == 0
    assert sample(samples, "gpu_gpm_supported", **labels(node, 0)) == 1
    for name in RATIOS:
        assert gpus_with(samples, name) == {"0", "1", "3"}, name
    assert node.errors() == 0  # a model difference, not a fault


def test_a_gpu_failing_mid_run_loses_only_its_own_gpm_series(node: FakeGpuNode) -> None:
    node.scrape()
    node.scrape()
    node.state.gpu(1).failing["nvmlGpmSampleGet"] = pynvml.NVML_ERROR_UNKNOWN
    samples = node.scrape()
    for name in RATIOS:
        assert gpus_with(samples, name) == {"0", "2", "3"}, name
    assert sample(samples, "gpu_gpm_supported", **labels(node, 1)) == 1
    assert sample(samples, "gpu_up", **labels(node, 1)) == 1  # the gpu collector is untouched
    assert node.errors() == 1
    del node.state.gpu(1).failing["nvmlGpmSampleGet"]
    assert "1" not in gpus_with(node.scrape(), "gpu_sm_active_ratio")  # the pair starts again
    assert "1" in gpus_with(node.scrape(), "gpu_sm_active_ratio")


def test_metrics_get_failing_is_counted_and_the_other_gpus_still_report(node: FakeGpuNode) -> None:
    node.scrape()
    node.state.gpu(3).failing["nvmlGpmMetricsGet"] = pynvml.NVML_ERROR_UNKNOWN
    node.state.gpu(3).failing["nvmlGpmSampleGet"] = pynvml.NVML_ERROR_UNKNOWN
    samples = node.scrape()
    assert gpus_with(samples, "gpu_sm_active_ratio") == {"0", "1", "2"}
    assert node.errors() == 1


def test_one_metric_the_driver_cannot_compute_is_absent_alone(node: FakeGpuNode) -> None:
    gpu = node.state.gpu(0)
    gpu.unsupported.add("NVML_GPM_METRIC_FP64_UTIL")
    gpu.failing["NVML_GPM_METRIC_FP16_UTIL"] = pynvml.NVML_ERROR_UNKNOWN
    node.scrape()
    samples = node.scrape()
    assert "0" not in gpus_with(samples, "gpu_fp64_active_ratio")
    assert "0" not in gpus_with(samples, "gpu_fp16_active_ratio")
    assert "0" in gpus_with(samples, "gpu_fp32_active_ratio")
    assert node.errors() == 1  # FP16's error; FP64's NOT_SUPPORTED is a model difference


def test_lost_gpu_is_left_to_the_gpu_collector_and_its_samples_freed(node: FakeGpuNode) -> None:
    node.scrape()
    node.scrape()
    allocated = len(node.state._gpm_samples)
    assert allocated == 8  # two per GPU, reused every cycle
    node.state.gpu(2).lost = True
    samples = node.scrape()
    assert sample(samples, "gpu_up", gpu="2", uuid=node.state.gpu(2).uuid) == 0
    assert "2" not in gpus_with(samples, "gpu_gpm_supported")
    assert "2" not in gpus_with(samples, "gpu_sm_active_ratio")
    assert node.errors() == 0
    assert len(node.state._gpm_samples) == 6
    node.collectors[1].close()  # the gpm collector
    assert node.state._gpm_samples == {}


def test_nvml_down_reports_no_gpm_series(node: FakeGpuNode) -> None:
    node.scrape()
    node.scrape()
    node.state.init_error = pynvml.NVML_ERROR_DRIVER_NOT_LOADED
    node.session.close()
    node.session._next_attempt = float("inf")
    samples = node.scrape()
    assert not series(samples, "gpu_gpm_supported")


def test_collection_with_gpm_keeps_every_collector_up_when_one_gpu_fails() -> None:
    state = FakeState.h100_node(gpus=8)
    exporter = create_exporter(ExporterConfig(backend="fake", collectors=default_collectors()),
                               nvml_module=FakeNVML(state))
    try:
        exporter.collect_once()
        state.gpu(5).failing["nvmlGpmSampleGet"] = pynvml.NVML_ERROR_UNKNOWN
        samples = parse_exposition(exporter.collect_once().text)
        success = {dict(labels)["collector"]: value for (name, labels), value in samples.items()
                   if name == "clusterwatch_exporter_collector_success"}
        assert "gpm" in success and set(success.values()) == {1}
        assert sample(samples, "clusterwatch_exporter_collector_errors_total", collector="gpm") == 1
        assert len(series(samples, "gpu_sm_active_ratio")) == 7
        assert len(series(samples, "gpu_up")) == 8
    finally:
        exporter.close()
    assert state._gpm_samples == {}


# -- MIG GPU instances --------------------------------------------------------------------------------

GIB = 1024**3
MIG_RATIOS = [name for name, *_ in MIG_SERIES]


def mig_node(gpm_supported: bool = True) -> FakeGpuNode:
    """Four GPUs; GPU 1 in MIG mode: GPU instance 1 holding two compute instances, GPU instance 2 one."""
    state = FakeState.h100_node(gpus=4, seed=3)
    gpu = state.gpu(1)
    gpu.mig_mode, gpu.gpm_supported = True, gpm_supported
    gpu.mig_instances = [FakeMigInstance(1, 0, "MIG-1-0", "3g.40gb", 40 * GIB), FakeMigInstance(1, 1, "MIG-1-1", "3g.40gb", 40 * GIB),
                         FakeMigInstance(2, 0, "MIG-2-0", "3g.40gb", 40 * GIB)]
    return Node(state)


def instances(samples: Samples, name: str) -> set[tuple[str, str]]:
    return {(s["gpu"], s["gpu_instance_id"]) for s in series(samples, name)}


def test_a_mig_gpu_is_sampled_per_gpu_instance() -> None:
    node = mig_node()
    node.scrape()
    node.state.set_gpm(1, {SM: 60.0, TENSOR: 30.0}, gpu_instance_id=1)
    node.state.set_gpm(1, {SM: 10.0}, gpu_instance_id=2)
    node.state.set_gpm(1, {SM: 99.0})  # the whole GPU's counters: not what a MIG GPU is read by
    samples = node.scrape()
    uuid = node.state.gpu(1).uuid
    # One series per GPU instance (not per compute instance), named by the GPU and the instance.
    for name in MIG_RATIOS:
        assert instances(samples, name) == {("1", "1"), ("1", "2")}, name
    assert sample(samples, "gpu_mig_sm_active_ratio", gpu="1", uuid=uuid, gpu_instance_id="1") == pytest.approx(0.6)
    assert sample(samples, "gpu_mig_tensor_active_ratio", gpu="1", uuid=uuid, gpu_instance_id="1") == pytest.approx(0.3)
    assert sample(samples, "gpu_mig_sm_active_ratio", gpu="1", uuid=uuid, gpu_instance_id="2") == pytest.approx(0.1)
    assert sample(samples, "gpu_mig_gpm_supported", gpu="1", uuid=uuid, gpu_instance_id="2") == 1
    assert sample(samples, "gpu_gpm_supported", **labels(node, 1)) == 1
    # No whole-GPU series for the MIG GPU (its instances serve different jobs); the others keep theirs.
    assert gpus_with(samples, "gpu_sm_active_ratio") == {"0", "2", "3"}
    assert not series(samples, "gpu_mig_nvlink_receive_bytes_per_second")
    assert node.errors() == 0


@pytest.mark.parametrize("how", ["gpu_without_gpm", "instance_not_supported"])
def test_mig_instances_without_gpm_get_no_series_and_say_so(how: str) -> None:
    node = mig_node(gpm_supported=how != "gpu_without_gpm")
    if how == "instance_not_supported":
        node.state.gpu(1).unsupported.add("nvmlGpmMigSampleGet")  # NVML_ERROR_NOT_SUPPORTED
    node.scrape()
    samples = node.scrape()
    assert not any(series(samples, name) for name in MIG_RATIOS)  # absent, not 0
    if how == "gpu_without_gpm":
        assert sample(samples, "gpu_gpm_supported", **labels(node, 1)) == 0
        assert not series(samples, "gpu_mig_gpm_supported")
    else:
        assert instances(samples, "gpu_mig_gpm_supported") == {("1", "1"), ("1", "2")}
        assert {v for (n, _), v in samples.items() if n == "gpu_mig_gpm_supported"} == {0}
    assert gpus_with(samples, "gpu_sm_active_ratio") == {"0", "2", "3"}
    assert node.errors() == 0  # a model difference, not a fault


def test_a_mig_instance_failing_mid_run_loses_only_its_gpu_instances_series() -> None:
    node = mig_node()
    node.scrape()
    node.scrape()
    node.state.gpu(1).failing["nvmlGpmMigSampleGet"] = pynvml.NVML_ERROR_UNKNOWN
    samples = node.scrape()
    assert not series(samples, "gpu_mig_sm_active_ratio")
    assert instances(samples, "gpu_mig_gpm_supported") == {("1", "1"), ("1", "2")}  # still supported
    assert gpus_with(samples, "gpu_sm_active_ratio") == {"0", "2", "3"}
    assert sample(samples, "gpu_up", **labels(node, 1)) == 1
    assert node.errors() == 2  # one per GPU instance
    del node.state.gpu(1).failing["nvmlGpmMigSampleGet"]
    assert not series(node.scrape(), "gpu_mig_sm_active_ratio")  # the pairs start again
    assert instances(node.scrape(), "gpu_mig_sm_active_ratio") == {("1", "1"), ("1", "2")}


def test_a_destroyed_gpu_instance_has_its_samples_freed() -> None:
    node = mig_node()
    node.scrape()
    node.scrape()
    assert len(node.state._gpm_samples) == 2 * 5  # three whole GPUs and two GPU instances
    node.state.gpu(1).mig_instances = node.state.gpu(1).mig_instances[:2]  # GPU instance 2 destroyed
    samples = node.scrape()
    assert instances(samples, "gpu_mig_sm_active_ratio") == {("1", "1")}
    assert len(node.state._gpm_samples) == 2 * 4
    node.collectors[1].close()
    assert node.state._gpm_samples == {}


def test_fake_mig_sample_get_answers_as_nvml() -> None:
    state = mig_node().state
    nvml = FakeNVML(state)
    nvml.nvmlInit()
    whole, mig_gpu = nvml.nvmlDeviceGetHandleByIndex(0), nvml.nvmlDeviceGetHandleByIndex(1)
    a, b = nvml.nvmlGpmSampleAlloc(), nvml.nvmlGpmSampleAlloc()
    assert nvml.nvmlGpmMigSampleGet(mig_gpu, 1, a) is a
    with pytest.raises(pynvml.NVMLError_InvalidArgument):
        nvml.nvmlGpmMigSampleGet(mig_gpu, 7, b)  # no such GPU instance
    with pytest.raises(pynvml.NVMLError_NotSupported):
        nvml.nvmlGpmMigSampleGet(whole, 1, b)  # MIG mode off
    with pytest.raises(pynvml.NVMLError_NotSupported):
        nvml.nvmlGpmMigSampleGet(nvml.nvmlDeviceGetMigDeviceHandleByIndex(mig_gpu, 0), 1, b)  # a MIG handle
    nvml.nvmlGpmMigSampleGet(mig_gpu, 2, b)
    request = pynvml.c_nvmlGpmMetricsGet_t()
    request.version, request.numMetrics, request.sample1, request.sample2 = pynvml.NVML_GPM_METRICS_GET_VERSION, 1, a, b
    request.metrics[0].metricId = SM
    with pytest.raises(pynvml.NVMLError_InvalidArgument):  # samples of two GPU instances
        nvml.nvmlGpmMetricsGet(request)


# -- the fake's GPM calls ---------------------------------------------------------------------------

GPM_CALLS = ("nvmlGpmQueryDeviceSupport", "nvmlGpmSampleAlloc", "nvmlGpmSampleGet", "nvmlGpmMigSampleGet",
             "nvmlGpmMetricsGet", "nvmlGpmSampleFree")


@pytest.mark.parametrize("name", GPM_CALLS)
def test_fake_gpm_calls_take_pynvmls_arguments(name: str) -> None:
    real = list(inspect.signature(getattr(pynvml, name)).parameters)
    fake = FakeNVML(FakeState.h100_node(gpus=1))
    fake_params = list(inspect.signature(getattr(fake, name)).parameters)
    if name in ("nvmlGpmQueryDeviceSupport", "nvmlGpmSampleGet", "nvmlGpmMigSampleGet"):
        # The device wrapper turns pynvml's ``device`` handle into the fake's (gpu, mig).
        assert real[0] == "device"
        assert [p for p in fake_params if p not in ("gpu", "mig")] == real[1:]
    else:
        assert fake_params == real


@pytest.fixture
def nvml() -> FakeNVML:
    fake = FakeNVML(FakeState.h100_node(gpus=2))
    fake.nvmlInit()
    return fake


def test_fake_gpm_support_and_errors_match_nvml(nvml: FakeNVML) -> None:
    first, second = (nvml.nvmlDeviceGetHandleByIndex(i) for i in range(2))
    support = nvml.nvmlGpmQueryDeviceSupport(first)
    assert isinstance(support, pynvml.c_nvmlGpmSupport_t) and support.isSupportedDevice == 1
    a, b = nvml.nvmlGpmSampleAlloc(), nvml.nvmlGpmSampleAlloc()
    assert isinstance(a, pynvml.c_nvmlGpmSample_t)
    nvml.nvmlGpmSampleGet(first, a)
    nvml.nvmlGpmSampleGet(second, b)
    request = pynvml.c_nvmlGpmMetricsGet_t()
    request.version, request.numMetrics, request.sample1, request.sample2 = 1, 1, a, b
    with pytest.raises(pynvml.NVMLError_InvalidArgument):  # samples of two GPUs
        nvml.nvmlGpmMetricsGet(request)
    request.version = 2
    with pytest.raises(pynvml.NVMLError_ArgumentVersionMismatch):
        nvml.nvmlGpmMetricsGet(request)
    nvml.state.gpu(1).gpm_supported = False
    assert nvml.nvmlGpmQueryDeviceSupport(second).isSupportedDevice == 0
    with pytest.raises(pynvml.NVMLError_NotSupported):
        nvml.nvmlGpmSampleGet(second, b)
    nvml.state.gpu(0).lost = True
    with pytest.raises(pynvml.NVMLError_GpuIsLost):
        nvml.nvmlGpmSampleGet(first, a)
    nvml.nvmlGpmSampleFree(a)
    with pytest.raises(pynvml.NVMLError_InvalidArgument):
        nvml.nvmlGpmSampleFree(a)  # freed twice


def test_fake_metrics_get_fills_each_metric_with_its_own_return(nvml: FakeNVML) -> None:
    clock = Clock()
    nvml.state.clock = clock
    handle = nvml.nvmlDeviceGetHandleByIndex(0)
    a, b = nvml.nvmlGpmSampleAlloc(), nvml.nvmlGpmSampleAlloc()
    nvml.state.set_gpm(0, {SM: 40.0})
    nvml.nvmlGpmSampleGet(handle, a)
    clock.now += 2
    nvml.nvmlGpmSampleGet(handle, b)
    request = pynvml.c_nvmlGpmMetricsGet_t()
    request.version = pynvml.NVML_GPM_METRICS_GET_VERSION
    request.numMetrics, request.sample1, request.sample2 = 2, a, b
    request.metrics[0].metricId = SM
    request.metrics[1].metricId = pynvml.NVML_GPM_METRIC_NVDEC_7_UTIL
    assert nvml.nvmlGpmMetricsGet(request) is request
    assert (request.metrics[0].nvmlReturn, request.metrics[0].value) == (pynvml.NVML_SUCCESS, 40.0)
    assert request.metrics[1].nvmlReturn == pynvml.NVML_ERROR_NOT_SUPPORTED
    nvml.nvmlGpmSampleGet(handle, a)  # the same instant as b: the levels at that instant
    assert nvml.nvmlGpmMetricsGet(request).metrics[0].value == 40.0
    clock.now += 1
    nvml.nvmlGpmSampleGet(handle, a)
    request.sample1, request.sample2 = a, b  # reversed: not a forward span
    with pytest.raises(pynvml.NVMLError_InvalidArgument):
        nvml.nvmlGpmMetricsGet(request)
