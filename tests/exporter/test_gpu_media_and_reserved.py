"""Encoder/decoder utilisation and reserved framebuffer (issue 18 part 1), from the gpu collector."""
from __future__ import annotations


import pynvml
import pytest

from exporter.collectors.gpu import GpuCollector
from exporter.nvml.fake import GIB, FakeNVML, FakeState
from tests.exporter.helpers import FakeGpuNode, sample, series


@pytest.fixture
def node() -> FakeGpuNode:
    return FakeGpuNode(FakeState.h100_node(gpus=2, seed=7), GpuCollector, errors_of="gpu")


def labels(node: FakeGpuNode, index: int) -> dict[str, str]:
    return {"gpu": str(index), "uuid": node.state.gpu(index).uuid}


def test_encoder_and_decoder_utilization_are_ratios(node: FakeGpuNode) -> None:
    gpu = node.state.gpu(1)
    gpu.encoder_utilization, gpu.decoder_utilization = 35, 80
    samples = node.scrape()
    assert sample(samples, "gpu_encoder_utilization_ratio", **labels(node, 1)) == pytest.approx(0.35)
    assert sample(samples, "gpu_decoder_utilization_ratio", **labels(node, 1)) == pytest.approx(0.80)
    assert sample(samples, "gpu_encoder_utilization_ratio", **labels(node, 0)) == 0


def test_gpu_without_an_encoder_has_no_encoder_series(node: FakeGpuNode) -> None:
    node.state.gpu(0).unsupported.add("nvmlDeviceGetEncoderUtilization")
    samples = node.scrape()
    assert [s["gpu"] for s in series(samples, "gpu_encoder_utilization_ratio")] == ["1"]
    assert len(series(samples, "gpu_decoder_utilization_ratio")) == 2
    assert node.errors() == 0


def test_reserved_memory_is_reported_and_used_keeps_its_meaning(node: FakeGpuNode) -> None:
    gpu = node.state.gpu(0)
    gpu.memory_used, gpu.memory_reserved = 60 * GIB, GIB // 2
    samples = node.scrape()
    assert sample(samples, "gpu_memory_reserved_bytes", **labels(node, 0)) == GIB // 2
    assert sample(samples, "gpu_memory_used_bytes", **labels(node, 0)) == 60 * GIB  # reserved included, as v1
    assert sample(samples, "gpu_memory_free_bytes", **labels(node, 0)) == 20 * GIB


def test_a_driver_without_memory_info_v2_falls_back_to_v1_without_reserved(node: FakeGpuNode) -> None:
    for index in (0, 1):
        node.state.gpu(index).failing["nvmlDeviceGetMemoryInfo_v2"] = pynvml.NVML_ERROR_FUNCTION_NOT_FOUND
    node.state.gpu(0).memory_used = 10 * GIB
    for _ in range(2):
        samples = node.scrape()
        assert not series(samples, "gpu_memory_reserved_bytes")
        assert sample(samples, "gpu_memory_used_bytes", **labels(node, 0)) == 10 * GIB
    assert node.errors() == 0


def test_fake_memory_info_v2_answers_like_nvml() -> None:
    nvml = FakeNVML(FakeState.h100_node(gpus=1))
    nvml.nvmlInit()
    handle = nvml.nvmlDeviceGetHandleByIndex(0)
    v1 = nvml.nvmlDeviceGetMemoryInfo(handle)
    v2 = nvml.nvmlDeviceGetMemoryInfo(handle, pynvml.nvmlMemory_v2)
    assert isinstance(v2, pynvml.c_nvmlMemory_v2_t) and v2.reserved > 0
    assert v2.reserved + v2.used + v2.free == v2.total == v1.total and v2.free == v1.free
    with pytest.raises(pynvml.NVMLError_ArgumentVersionMismatch):
        nvml.nvmlDeviceGetMemoryInfo(handle, 0x01000028)
    util, period = nvml.nvmlDeviceGetEncoderUtilization(handle)
    assert (util, period > 0) == (0, True)
