"""NvmlSession: init with backoff and one log line, enumeration, GPUs that go away stay reported."""
from __future__ import annotations

import logging

import pynvml
import pytest

from exporter.nvml.fake import FakeMigInstance, FakeNVML, FakeState, GIB
from exporter.nvml.session import NvmlSession


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class CountingNVML(FakeNVML):
    """The fake, counting calls by name, to check what the session reads once and what per cycle."""

    def __init__(self, state: FakeState) -> None:
        super().__init__(state)
        self.calls: dict[str, int] = {}

    def __getattribute__(self, name: str):
        if name.startswith("nvml"):
            calls = object.__getattribute__(self, "calls")
            calls[name] = calls.get(name, 0) + 1
        return object.__getattribute__(self, name)


@pytest.fixture
def state() -> FakeState:
    return FakeState.h100_node(gpus=4, seed=3)


def test_enumerates_gpus_with_identity(state: FakeState) -> None:
    session = NvmlSession(FakeNVML(state))
    session.refresh()
    assert session.up and session.last_error is None
    assert [d.uuid for d in session.devices] == [g.uuid for g in state.gpus]
    first = session.devices[0]
    assert (first.index, first.name, first.pci_bus_id) == (0, "NVIDIA H100 80GB HBM3", "00000000:18:00.0")
    assert first.serial == state.gpus[0].serial and first.nvlink_count == 18
    assert session.driver_version == "550.90.07" and session.cuda_driver_version == "12.4"
    assert session.missing == []


def test_identity_is_read_once_not_every_cycle(state: FakeState) -> None:
    nvml = CountingNVML(state)
    session = NvmlSession(nvml)
    for _ in range(5):
        session.refresh()
    assert nvml.calls["nvmlDeviceGetUUID"] == 4
    assert nvml.calls["nvmlDeviceGetSerial"] == 4
    assert nvml.calls["nvmlDeviceGetHandleByIndex"] == 20


def test_missing_library_retries_with_backoff_and_logs_once(state: FakeState, caplog: pytest.LogCaptureFixture) -> None:
    state.library_missing = True
    nvml, clock = CountingNVML(state), Clock()
    session = NvmlSession(nvml, clock=clock, backoff_initial=1.0, backoff_max=8.0)
    caplog.set_level(logging.DEBUG, logger="exporter.nvml.session")
    attempts = []
    for _ in range(40):  # 20 s of cycles, one every 0.5 s
        session.refresh()
        attempts.append(nvml.calls.get("nvmlInit", 0))
        clock.now += 0.5
    assert not session.up and session.devices == []
    assert "Library Not Found" in session.last_error
    # tries at t=0, 1, 3, 7, 15 (delays 1, 2, 4, 8): backoff, not every cycle
    assert attempts[-1] == 5
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1

    state.library_missing = False
    clock.now += 8
    session.refresh()
    assert session.up and len(session.devices) == 4


def test_absent_gpu_is_reported_missing_with_its_last_identity(state: FakeState) -> None:
    session = NvmlSession(FakeNVML(state))
    session.refresh()
    gone = state.gpu(1)
    gone.absent = True
    session.refresh()
    assert [d.uuid for d in session.devices] == [state.gpus[i].uuid for i in (0, 2, 3)]
    assert [(d.index, d.uuid) for d in session.missing] == [(1, gone.uuid)]
    gone.absent = False
    session.refresh()
    assert session.missing == [] and len(session.devices) == 4


def test_lost_gpu_is_missing_and_mark_lost_takes_it_out_at_once(state: FakeState) -> None:
    session = NvmlSession(FakeNVML(state))
    session.refresh()
    lost = session.devices[2]
    state.gpu(2).lost = True
    session.mark_lost(lost, pynvml.NVMLError(pynvml.NVML_ERROR_GPU_IS_LOST))
    assert lost not in session.devices and session.missing == [lost]
    session.refresh()
    assert [d.uuid for d in session.missing] == [lost.uuid]
    assert len(session.devices) == 3


def test_gpu_lost_before_first_sight_is_missing_by_index(state: FakeState) -> None:
    state.gpu(3).lost = True
    session = NvmlSession(FakeNVML(state))
    session.refresh()
    assert [(d.index, d.uuid) for d in session.missing] == [(3, "")]


def test_driver_failure_after_start_takes_nvml_down_and_reports_all_gpus_missing(state: FakeState) -> None:
    clock = Clock()
    nvml = FakeNVML(state)
    session = NvmlSession(nvml, clock=clock)
    session.refresh()
    nvml.nvmlShutdown()  # the library stops answering (as after a driver unload)
    session.refresh()
    assert not session.up and session.devices == []
    assert len(session.missing) == 4
    clock.now += 2
    session.refresh()
    assert session.up and len(session.devices) == 4


def test_mig_instances_are_enumerated_every_cycle(state: FakeState) -> None:
    gpu = state.gpu(0)
    gpu.mig_mode = True
    gpu.mig_instances = [FakeMigInstance(1, 0, "MIG-aaaa", "3g.40gb", 40 * GIB)]
    session = NvmlSession(FakeNVML(state))
    session.refresh()
    assert [(m.uuid, m.profile, m.gpu_instance_id) for m in session.devices[0].mig_instances] == [("MIG-aaaa", "3g.40gb", 1)]
    gpu.mig_instances.append(FakeMigInstance(2, 0, "MIG-bbbb", "3g.40gb", 40 * GIB))
    session.refresh()
    assert [m.uuid for m in session.devices[0].mig_instances] == ["MIG-aaaa", "MIG-bbbb"]


def test_a_known_mig_instance_is_not_identified_again_each_cycle(state: FakeState) -> None:
    """Each cycle reads every slot's handle and UUID (a reconfigured GPU has new instances with new
    UUIDs), but the ids and profile of an instance already known come from the last cycle: with
    eight GPUs of seven instances, three calls fewer per instance and cycle."""
    gpu = state.gpu(0)
    gpu.mig_mode = True
    gpu.mig_instances = [FakeMigInstance(1, 0, "MIG-aaaa", "3g.40gb", 40 * GIB)]
    nvml = CountingNVML(state)
    session = NvmlSession(nvml)
    session.refresh()
    gpu.mig_instances = [FakeMigInstance(1, 0, "MIG-aaaa", "3g.40gb", 40 * GIB),
                         FakeMigInstance(2, 0, "MIG-cccc", "2g.20gb", 20 * GIB)]
    nvml.calls.clear()
    session.refresh()
    instances = session.devices[0].mig_instances
    assert [(m.uuid, m.profile, m.gpu_instance_id) for m in instances] == [("MIG-aaaa", "3g.40gb", 1),
                                                                           ("MIG-cccc", "2g.20gb", 2)]
    assert instances[0].handle is gpu.mig_instances[0].handle  # this cycle's handle, for the collectors
    assert nvml.calls["nvmlDeviceGetGpuInstanceId"] == nvml.calls["nvmlDeviceGetName"] == 1  # the new one only
    assert nvml.calls["nvmlDeviceGetUUID"] == 2
    # An old driver's name says only where the instance is, not which: read again.
    gpu.mig_instances[1] = FakeMigInstance(2, 0, "MIG-GPU-0000/2/0", "2g.20gb", 20 * GIB)
    session.refresh()
    gpu.mig_instances[1] = FakeMigInstance(2, 0, "MIG-GPU-0000/2/0", "1g.10gb", 10 * GIB)
    session.refresh()
    assert [m.profile for m in session.devices[0].mig_instances] == ["3g.40gb", "1g.10gb"]


def test_device_for_handle_maps_event_handles_back(state: FakeState) -> None:
    nvml = FakeNVML(state)
    session = NvmlSession(nvml)
    session.refresh()
    handle = nvml.nvmlDeviceGetHandleByUUID(state.gpu(2).uuid)
    assert session.device_for_handle(handle) is session.devices[2]


def test_close_shuts_nvml_down(state: FakeState) -> None:
    nvml = FakeNVML(state)
    session = NvmlSession(nvml)
    session.refresh()
    session.close()
    assert not session.up
    with pytest.raises(pynvml.NVMLError_Uninitialized):
        nvml.nvmlDeviceGetCount()
