"""The fake NVML answers like pynvml: same types, same NVMLError subclasses, events that block."""
from __future__ import annotations

import threading
import time

import pynvml
import pytest

from exporter.nvml.fake import FakeNVML, FakeProcess, FakeState


@pytest.fixture
def state() -> FakeState:
    return FakeState.h100_node(gpus=4, seed=1)


@pytest.fixture
def nvml(state: FakeState) -> FakeNVML:
    fake = FakeNVML(state)
    fake.nvmlInit()
    return fake


def test_calls_before_init_raise_uninitialized(state: FakeState) -> None:
    with pytest.raises(pynvml.NVMLError_Uninitialized):
        FakeNVML(state).nvmlDeviceGetCount()


def test_missing_library_raises_library_not_found(state: FakeState) -> None:
    state.library_missing = True
    with pytest.raises(pynvml.NVMLError_LibraryNotFound):
        FakeNVML(state).nvmlInit()


def test_init_error_code_is_raised_as_its_subclass(state: FakeState) -> None:
    state.init_error = pynvml.NVML_ERROR_DRIVER_NOT_LOADED
    with pytest.raises(pynvml.NVMLError_DriverNotLoaded):
        FakeNVML(state).nvmlInit()


def test_constants_and_error_classes_come_from_pynvml(nvml: FakeNVML) -> None:
    assert nvml.NVML_TEMPERATURE_GPU == pynvml.NVML_TEMPERATURE_GPU
    assert nvml.NVMLError_GpuIsLost is pynvml.NVMLError_GpuIsLost
    assert nvml.c_nvmlMemory_t is pynvml.c_nvmlMemory_t


def test_functions_the_fake_lacks_raise_function_not_found(nvml: FakeNVML) -> None:
    handle = nvml.nvmlDeviceGetHandleByIndex(0)
    with pytest.raises(pynvml.NVMLError_FunctionNotFound):
        nvml.nvmlDeviceGetBoardPartNumber(handle)


def test_handles_are_real_ctypes_device_handles(nvml: FakeNVML, state: FakeState) -> None:
    handle = nvml.nvmlDeviceGetHandleByIndex(2)
    assert isinstance(handle, pynvml.c_nvmlDevice_t)
    assert nvml.nvmlDeviceGetUUID(handle) == state.gpu(2).uuid
    assert nvml.nvmlDeviceGetIndex(handle) == 2
    assert nvml.nvmlDeviceGetIndex(nvml.nvmlDeviceGetHandleByUUID(state.gpu(2).uuid)) == 2


def test_index_out_of_range_is_invalid_argument(nvml: FakeNVML) -> None:
    with pytest.raises(pynvml.NVMLError_InvalidArgument):
        nvml.nvmlDeviceGetHandleByIndex(4)


def test_lost_gpu_raises_gpu_is_lost_on_every_call(nvml: FakeNVML, state: FakeState) -> None:
    handle = nvml.nvmlDeviceGetHandleByIndex(1)
    state.gpu(1).lost = True
    with pytest.raises(pynvml.NVMLError_GpuIsLost):
        nvml.nvmlDeviceGetUUID(handle)
    with pytest.raises(pynvml.NVMLError_GpuIsLost):
        nvml.nvmlDeviceGetHandleByIndex(1)
    assert nvml.nvmlDeviceGetCount() == 4


def test_absent_gpu_is_not_enumerated_and_later_indices_shift(nvml: FakeNVML, state: FakeState) -> None:
    stale = nvml.nvmlDeviceGetHandleByIndex(1)
    state.gpu(1).absent = True
    assert nvml.nvmlDeviceGetCount() == 3
    assert nvml.nvmlDeviceGetUUID(nvml.nvmlDeviceGetHandleByIndex(1)) == state.gpu(2).uuid
    with pytest.raises(pynvml.NVMLError_InvalidArgument):
        nvml.nvmlDeviceGetHandleByIndex(3)
    with pytest.raises(pynvml.NVMLError_GpuIsLost):
        nvml.nvmlDeviceGetUUID(stale)


def test_unsupported_and_failing_calls(nvml: FakeNVML, state: FakeState) -> None:
    handle = nvml.nvmlDeviceGetHandleByIndex(0)
    state.gpu(0).unsupported.add("nvmlDeviceGetSerial")
    state.gpu(0).failing["nvmlDeviceGetVbiosVersion"] = pynvml.NVML_ERROR_NO_PERMISSION
    with pytest.raises(pynvml.NVMLError_NotSupported):
        nvml.nvmlDeviceGetSerial(handle)
    with pytest.raises(pynvml.NVMLError_NoPermission):
        nvml.nvmlDeviceGetVbiosVersion(handle)
    assert nvml.nvmlDeviceGetName(handle) == "NVIDIA H100 80GB HBM3"


def test_running_processes_look_like_pynvml_objects(nvml: FakeNVML, state: FakeState) -> None:
    state.gpu(3).processes = [FakeProcess(4242, 30 * 1024**3), FakeProcess(4243, None)]
    handle = nvml.nvmlDeviceGetHandleByIndex(3)
    processes = nvml.nvmlDeviceGetComputeRunningProcesses(handle)
    assert [(p.pid, p.usedGpuMemory) for p in processes] == [(4242, 30 * 1024**3), (4243, None)]
    assert processes[0].gpuInstanceId == 0xFFFFFFFF
    assert [p.pid for p in nvml.nvmlDeviceGetComputeRunningProcesses_v3(handle)] == [4242, 4243]
    assert nvml.nvmlDeviceGetComputeRunningProcesses(nvml.nvmlDeviceGetHandleByIndex(0)) == []


def _xid_set(nvml: FakeNVML, *indices: int):
    event_set = nvml.nvmlEventSetCreate()
    for index in indices:
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
        nvml.nvmlDeviceRegisterEvents(handle, pynvml.nvmlEventTypeXidCriticalError, event_set)
    return event_set


def test_xid_is_delivered_to_every_set_that_registered_the_gpu(nvml: FakeNVML, state: FakeState) -> None:
    first, second, other = _xid_set(nvml, 0, 2), _xid_set(nvml, 2), _xid_set(nvml, 1)
    state.inject_xid(2, 79)
    for event_set in (first, second):
        data = nvml.nvmlEventSetWait(event_set, 100)
        assert isinstance(data, pynvml.c_nvmlEventData_t)
        assert data.eventType == pynvml.nvmlEventTypeXidCriticalError
        assert data.eventData == 79
        assert nvml.nvmlDeviceGetUUID(data.device) == state.gpu(2).uuid
    with pytest.raises(pynvml.NVMLError_Timeout):
        nvml.nvmlEventSetWait(other, 10)
    assert [(x.gpu_index, x.xid) for x in state.xid_history] == [(2, 79)]


def test_repeated_xids_are_all_delivered_in_order(nvml: FakeNVML, state: FakeState) -> None:
    event_set = _xid_set(nvml, 0)
    for xid in (48, 48, 63):
        state.inject_xid(0, xid)
    assert [nvml.nvmlEventSetWait(event_set, 100).eventData for _ in range(3)] == [48, 48, 63]


def test_wait_blocks_until_another_thread_injects(nvml: FakeNVML, state: FakeState) -> None:
    event_set = _xid_set(nvml, 1)
    timer = threading.Timer(0.05, state.inject_xid, args=(1, 94))
    start = time.monotonic()
    timer.start()
    data = nvml.nvmlEventSetWait(event_set, 5000)
    assert data.eventData == 94
    assert 0.04 <= time.monotonic() - start < 2


def test_wait_times_out_after_timeoutms(nvml: FakeNVML) -> None:
    event_set = _xid_set(nvml, 0)
    start = time.monotonic()
    with pytest.raises(pynvml.NVMLError_Timeout):
        nvml.nvmlEventSetWait(event_set, 50)
    assert 0.04 <= time.monotonic() - start < 1


def test_freeing_a_set_wakes_its_waiter(nvml: FakeNVML) -> None:
    event_set = _xid_set(nvml, 0)
    errors: list[BaseException] = []

    def wait() -> None:
        try:
            nvml.nvmlEventSetWait(event_set, 10_000)
        except pynvml.NVMLError as exc:
            errors.append(exc)

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(0.02)
    nvml.nvmlEventSetFree(event_set)
    waiter.join(timeout=2)
    assert not waiter.is_alive()
    assert isinstance(errors[0], pynvml.NVMLError_InvalidArgument)


def test_a_simulation_can_wait_until_a_slow_watcher_has_handled_the_queued_events(nvml: FakeNVML,
                                                                                   state: FakeState) -> None:
    """A simulation on its own clock collects right after it injects an XID: it waits until the
    watcher thread has taken the event and come back to wait, however late the machine's load
    makes that thread, so the XID is in that collection and the run does not depend on the machine."""
    event_set = _xid_set(nvml, 2)
    handled: list[int] = []
    stop = threading.Event()

    def slow_watcher() -> None:
        while not stop.is_set():
            try:
                data = nvml.nvmlEventSetWait(event_set, 100)
            except pynvml.NVMLError_Timeout:
                continue
            time.sleep(0.3)  # a busy machine
            handled.append(data.eventData)

    watcher = threading.Thread(target=slow_watcher)
    watcher.start()
    try:
        while not any(s.waiting for s in state._event_sets.values()):
            time.sleep(0.01)
        state.inject_xid(2, 79)
        assert state.wait_events_handled(timeout=10)
        assert handled == [79]
    finally:
        stop.set()
        watcher.join(timeout=5)
    # Nobody waits on the set any more: a queued event is not waited for.
    state.inject_xid(2, 13)
    assert state.wait_events_handled(timeout=10)


def test_registering_on_a_lost_gpu_raises_gpu_is_lost(nvml: FakeNVML, state: FakeState) -> None:
    handle = nvml.nvmlDeviceGetHandleByIndex(0)
    state.gpu(0).lost = True
    with pytest.raises(pynvml.NVMLError_GpuIsLost):
        nvml.nvmlDeviceRegisterEvents(handle, pynvml.nvmlEventTypeXidCriticalError, nvml.nvmlEventSetCreate())
