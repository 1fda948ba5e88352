"""Scenario files: what they set, and errors that name the field and the file."""
from __future__ import annotations

from pathlib import Path

import pynvml
import pytest

from cwkernel.errors import ConfigError
from exporter.nvml import load_backend
from exporter.nvml.fake import GIB, FakeNVML
from exporter.nvml.scenario import load_scenario

EXAMPLE = Path(__file__).resolve().parents[2] / "exporter" / "nvml" / "scenarios" / "example.yml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "node.yml"
    path.write_text(text)
    return path


def test_example_scenario_loads_and_drives_the_fake() -> None:
    state = load_scenario(EXAMPLE)
    nvml = FakeNVML(state)
    nvml.nvmlInit()
    assert nvml.nvmlDeviceGetCount() == 8
    busy = nvml.nvmlDeviceGetHandleByIndex(0)
    assert nvml.nvmlDeviceGetUtilizationRates(busy).gpu == 97
    assert nvml.nvmlDeviceGetMemoryInfo(busy).used == 71 * GIB
    assert [p.pid for p in nvml.nvmlDeviceGetComputeRunningProcesses(busy)] == [41234]
    assert nvml.nvmlDeviceGetNvLinkState(nvml.nvmlDeviceGetHandleByIndex(3), 7) == 0
    with pytest.raises(pynvml.NVMLError_GpuIsLost):
        nvml.nvmlDeviceGetHandleByIndex(7)
    with pytest.raises(pynvml.NVMLError_NoPermission):
        nvml.nvmlDeviceGetPowerUsage(nvml.nvmlDeviceGetHandleByIndex(6))


def test_load_backend_reads_the_scenario() -> None:
    nvml = load_backend("fake", str(EXAMPLE))
    assert isinstance(nvml, FakeNVML) and nvml.state.gpu(5).mig_mode
    assert load_backend("nvml") is pynvml


def test_library_missing_and_init_error(tmp_path: Path) -> None:
    with pytest.raises(pynvml.NVMLError_LibraryNotFound):
        FakeNVML(load_scenario(write(tmp_path, "library_missing: true\n"))).nvmlInit()
    with pytest.raises(pynvml.NVMLError_DriverNotLoaded):
        FakeNVML(load_scenario(write(tmp_path, "init_error: DRIVER_NOT_LOADED\n"))).nvmlInit()


def test_gpu_count_absent_and_unsupported(tmp_path: Path) -> None:
    state = load_scenario(write(tmp_path, """
gpus: 4
overrides:
  1: {absent: true}
  2: {unsupported: [nvmlDeviceGetFanSpeed]}
"""))
    nvml = FakeNVML(state)
    nvml.nvmlInit()
    assert nvml.nvmlDeviceGetCount() == 3
    with pytest.raises(pynvml.NVMLError_NotSupported):
        nvml.nvmlDeviceGetFanSpeed(nvml.nvmlDeviceGetHandleByUUID(state.gpu(2).uuid))


def test_scheduled_xid_is_delivered_when_due(tmp_path: Path) -> None:
    state = load_scenario(write(tmp_path, "gpus: 2\nxid_events:\n  - {at: 0.05, gpu: 1, xid: 94}\n"))
    nvml = FakeNVML(state)
    nvml.nvmlInit()
    events = nvml.nvmlEventSetCreate()
    nvml.nvmlDeviceRegisterEvents(nvml.nvmlDeviceGetHandleByIndex(1), pynvml.nvmlEventTypeXidCriticalError, events)
    with pytest.raises(pynvml.NVMLError_Timeout):
        nvml.nvmlEventSetWait(events, 0)
    assert nvml.nvmlEventSetWait(events, 2000).eventData == 94


def test_same_seed_same_node(tmp_path: Path) -> None:
    first = load_scenario(write(tmp_path, "seed: 5\n"))
    second = load_scenario(write(tmp_path, "seed: 5\n"))
    assert [g.uuid for g in first.gpus] == [g.uuid for g in second.gpus]


@pytest.mark.parametrize(
    ("text", "field", "message"),
    [
        ("gpuz: 8\n", "gpuz", "unknown field"),
        ("gpus: many\n", "gpus", "expected int"),
        ("model: b200\n", "model", "unknown model"),
        ("overrides:\n  9: {lost: true}\n", "overrides.9", "no GPU 9"),
        ("overrides:\n  3: {utilization_gpu: high}\n", "overrides.3.utilization_gpu", "expected int"),
        ("overrides:\n  3: {utilisation: 5}\n", "overrides.3.utilisation", "unknown field"),
        ("overrides:\n  3: {memory_used: lots}\n", "overrides.3.memory_used", "size like 60GiB"),
        ("overrides:\n  3: {failing: {nvmlDeviceGetName: BROKEN}}\n", "overrides.3.failing.nvmlDeviceGetName", "NVML error name"),
        ("overrides:\n  3: {clock_event_reasons: [Sleepy]}\n", "overrides.3.clock_event_reasons.0", "unknown clock event reason"),
        ("overrides:\n  3: {processes: [{used_gpu_memory: 5}]}\n", "overrides.3.processes.0.pid", "required"),
        ("overrides:\n  3: {nvlinks: {40: {up: false}}}\n", "overrides.3.nvlinks.40", "no NVLink 40"),
        ("xid_events:\n  - {at: 5, gpu: 1}\n", "xid_events.0.xid", "required"),
        ("xid_events:\n  - {at: -1, gpu: 1, xid: 79}\n", "xid_events.0.at", "seconds after start"),
        ("init_error: [1]\n", "init_error", "NVML error name"),
        ("- 1\n", "", "expected a mapping"),
    ],
)
def test_mistakes_name_the_field_and_the_file(tmp_path: Path, text: str, field: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_scenario(path)
    assert caught.value.field == field
    assert caught.value.source == str(path)
    assert message in str(caught.value)


def test_unreadable_and_invalid_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_scenario(tmp_path / "missing.yml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_scenario(write(tmp_path, "gpus: [\n"))
