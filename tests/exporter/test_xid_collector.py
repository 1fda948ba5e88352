"""The XID collector: events injected into the fake NVML are counted, classified, never missed."""
from __future__ import annotations

import threading
import time
from typing import Any, Callable

import pynvml
import pytest
from pynvml import NVMLError

from exporter.collector import CollectorContext, NoDataError
from exporter.collectors.xid import XidCollector
from exporter.config import ExporterConfig
from exporter.nvml.fake import FakeNVML, FakeState
from exporter.nvml.session import NvmlSession
from tests.exporter.helpers import Samples, parse_exposition, render, sample, series

T0 = 1_700_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


class Node:
    """A fake node, its NVML session and the XID collector, driven the way the collection loop does."""

    def __init__(self, nvml: FakeNVML) -> None:
        self.state = nvml.state
        self.clock = Clock()
        self.session = NvmlSession(nvml, clock=self.clock)
        self.ctx = CollectorContext(config=ExporterConfig(), procfs=None, sysfs=None, nvml=self.session,
                                    clock=self.clock)
        self.collector = XidCollector(self.ctx)

    def scrape(self) -> Samples:
        self.session.refresh()
        return parse_exposition(render(self.collector.collect()))

    def wait_for(self, condition: Callable[[Samples], bool], timeout: float = 5.0) -> Samples:
        """Scrape until ``condition`` holds: the watcher thread delivers events asynchronously."""
        deadline = time.monotonic() + timeout
        while True:
            samples = self.scrape()
            if condition(samples) or time.monotonic() > deadline:
                return samples
            time.sleep(0.02)

    def watching(self, *indices: int) -> Callable[[Samples], bool]:
        return lambda s: all(self.watch_active(s, index) == 1 for index in indices)

    def watch_active(self, samples: Samples, index: int) -> float | None:
        return samples.get(("gpu_xid_watch_active", frozenset({("gpu", str(index)), ("uuid", self.uuid(index))})))

    def uuid(self, index: int) -> str:
        return self.state.gpu(index).uuid

    def errors(self) -> int:
        return self.ctx.errors.counts().get("xid", 0)


def xids(samples: Samples, node: Node, gpu: int, code: int) -> float:
    """The count of ``code`` on ``gpu`` (0 when the series does not exist yet)."""
    return sum(value for (name, labels), value in samples.items()
               if name == "gpu_xid_errors_total" and dict(labels)["gpu"] == str(gpu)
               and dict(labels)["uuid"] == node.uuid(gpu) and dict(labels)["xid"] == str(code))


@pytest.fixture
def node():
    node = Node(FakeNVML(FakeState.h100_node(gpus=8, seed=5)))
    yield node
    node.collector.close()


def test_repeats_of_one_code_are_each_counted_with_the_catalog_action(node):
    samples = node.wait_for(node.watching(*range(8)))
    assert sample(samples, "gpu_xid_last_code", gpu=2, uuid=node.uuid(2)) == 0  # 0 until the first XID
    assert sample(samples, "gpu_xid_last_timestamp_seconds", gpu=2, uuid=node.uuid(2)) == 0
    assert series(samples, "gpu_xid_errors_total") == []
    for _ in range(3):
        node.state.inject_xid(2, 13)
    node.clock.now = T0 + 42
    node.state.inject_xid(5, 79)
    samples = node.wait_for(lambda s: xids(s, node, 2, 13) == 3 and xids(s, node, 5, 79) == 1)
    assert sample(samples, "gpu_xid_errors_total", gpu=2, uuid=node.uuid(2), xid=13, action="restart_app") == 3
    assert sample(samples, "gpu_xid_errors_total", gpu=5, uuid=node.uuid(5), xid=79, action="reboot") == 1
    assert sample(samples, "gpu_xid_last_code", gpu=5, uuid=node.uuid(5)) == 79
    assert sample(samples, "gpu_xid_last_timestamp_seconds", gpu=5, uuid=node.uuid(5)) == T0 + 42
    assert sample(samples, "gpu_xid_catalog_info", xid=79, mnemonic="ROBUST_CHANNEL_GPU_HAS_FALLEN_OFF_THE_BUS",
                  action="reboot", immediate_action="RESTART_BM", investigatory_action="CONTACT_SUPPORT") == 1
    assert {s["xid"] for s in series(samples, "gpu_xid_catalog_info")} == {"13", "79"}
    assert sample(samples, "clusterwatch_exporter_xid_watcher_up") == 1
    assert node.errors() == 0


def test_an_alternating_sequence_keeps_every_code(node):
    node.wait_for(node.watching(0))
    for code in (48, 63, 48, 64, 48):
        node.state.inject_xid(0, code)
    samples = node.wait_for(lambda s: xids(s, node, 0, 48) == 3)
    assert (xids(samples, node, 0, 48), xids(samples, node, 0, 63), xids(samples, node, 0, 64)) == (3, 1, 1)
    assert sample(samples, "gpu_xid_last_code", gpu=0, uuid=node.uuid(0)) == 48


def test_a_code_missing_from_the_catalog_is_counted_as_unknown(node):
    node.wait_for(node.watching(1))
    node.state.inject_xid(1, 4242)
    samples = node.wait_for(lambda s: xids(s, node, 1, 4242) == 1)
    assert sample(samples, "gpu_xid_errors_total", gpu=1, uuid=node.uuid(1), xid=4242, action="unknown") == 1
    assert sample(samples, "gpu_xid_catalog_info", xid=4242, mnemonic="", action="unknown", immediate_action="",
                  investigatory_action="") == 1


def test_concurrent_injections_are_counted_exactly(node):
    node.wait_for(node.watching(*range(8)))

    def burst(gpu: int) -> None:
        for _ in range(50):
            node.state.inject_xid(gpu, 31)

    threads = [threading.Thread(target=burst, args=(gpu,)) for gpu in range(8)]
    for thread in threads:
        thread.start()
    node.scrape()  # scraping while the watcher counts must not disturb either
    for thread in threads:
        thread.join()
    samples = node.wait_for(lambda s: all(xids(s, node, gpu, 31) == 50 for gpu in range(8)))
    assert [xids(samples, node, gpu, 31) for gpu in range(8)] == [50] * 8


def test_a_gpu_without_xid_events_is_skipped_counted_and_the_others_watched(node):
    node.state.gpu(3).unsupported.add("nvmlDeviceRegisterEvents")
    samples = node.wait_for(lambda s: node.watching(0, 1, 2, 4, 5, 6, 7)(s) and node.watch_active(s, 3) == 0)
    assert node.watch_active(samples, 3) == 0
    assert node.errors() == 1
    node.state.inject_xid(4, 13)
    assert xids(node.wait_for(lambda s: xids(s, node, 4, 13) == 1), node, 4, 13) == 1
    assert node.errors() == 1  # counted once, not at every turn of the watcher


def test_a_lost_gpu_keeps_its_counts_and_the_others_keep_counting(node):
    node.wait_for(node.watching(*range(8)))
    node.state.inject_xid(6, 79)
    node.wait_for(lambda s: xids(s, node, 6, 79) == 1)
    node.state.gpu(6).lost = True
    samples = node.wait_for(lambda s: node.watch_active(s, 6) == 0)
    assert node.watch_active(samples, 6) == 0
    assert xids(samples, node, 6, 79) == 1  # the fault that took the GPU down stays visible
    node.state.inject_xid(7, 13)
    node.state.inject_xid(7, 13)
    samples = node.wait_for(lambda s: xids(s, node, 7, 13) == 2)
    assert xids(samples, node, 7, 13) == 2
    assert node.watching(0, 1, 2, 3, 4, 5, 7)(samples)


class LosesAGpuDuringTheWait(FakeNVML):
    """The fake plus what a real driver does when a registered GPU falls off the bus mid-wait.

    The fake's nvmlEventSetWait never raises GpuIsLost; this makes its next wait do so once.
    """

    def __init__(self, state: FakeState) -> None:
        super().__init__(state)
        self.lose_next_wait = threading.Event()
        self.sets_created = 0

    def nvmlEventSetCreate(self) -> Any:
        self.sets_created += 1
        return super().nvmlEventSetCreate()

    def nvmlEventSetWait(self, event_set: Any, timeoutms: int) -> Any:
        if self.lose_next_wait.is_set():
            self.lose_next_wait.clear()
            raise NVMLError(pynvml.NVML_ERROR_GPU_IS_LOST)
        return super().nvmlEventSetWait(event_set, timeoutms)


def test_gpu_lost_during_the_wait_re_registers_the_others():
    nvml = LosesAGpuDuringTheWait(FakeState.h100_node(gpus=8, seed=5))
    node = Node(nvml)
    try:
        node.wait_for(node.watching(*range(8)))
        assert nvml.sets_created == 1
        node.state.gpu(1).lost = True
        nvml.lose_next_wait.set()
        deadline = time.monotonic() + 5
        while nvml.lose_next_wait.is_set() and time.monotonic() < deadline:
            time.sleep(0.01)
        # The watcher re-created its set: GPU 1 refuses registration, the others are back on it.
        samples = node.wait_for(lambda s: node.watch_active(s, 1) == 0 and node.watching(0, 2, 3, 4, 5, 6, 7)(s))
        assert node.watch_active(samples, 1) == 0
        assert nvml.sets_created == 2 and len(node.state._event_sets) == 1  # the old set freed, a new one made
        node.state.inject_xid(0, 94)
        samples = node.wait_for(lambda s: xids(s, node, 0, 94) == 1)
        assert xids(samples, node, 0, 94) == 1
        assert node.errors() == 0
    finally:
        node.collector.close()


class OddWaits(FakeNVML):
    """The fake plus waits the fake cannot produce: an event without a device, and a crash."""

    def __init__(self, state: FakeState) -> None:
        super().__init__(state)
        self.orphan_xid: int | None = None
        self.crash_next_wait = False

    def nvmlEventSetWait(self, event_set: Any, timeoutms: int) -> Any:
        if self.crash_next_wait:
            self.crash_next_wait = False
            raise RuntimeError("a bug in the watcher's path")
        if self.orphan_xid is not None:
            code, self.orphan_xid = self.orphan_xid, None
            return pynvml.c_nvmlEventData_t(eventType=pynvml.nvmlEventTypeXidCriticalError, eventData=code)
        return super().nvmlEventSetWait(event_set, timeoutms)


@pytest.fixture
def odd():
    node = Node(OddWaits(FakeState.h100_node(gpus=8, seed=5)))
    yield node
    node.collector.close()


def test_an_xid_no_gpu_can_be_found_for_is_still_counted(odd):
    odd.wait_for(odd.watching(*range(8)))
    odd.session.nvml.orphan_xid = 79
    samples = odd.wait_for(lambda s: ("gpu_xid_last_code", frozenset({("gpu", ""), ("uuid", "")})) in s)
    assert sample(samples, "gpu_xid_errors_total", gpu="", uuid="", xid=79, action="reboot") == 1
    assert odd.errors() == 1


def test_a_watcher_that_crashed_is_restarted_by_the_next_collection(odd):
    odd.wait_for(odd.watching(*range(8)))
    odd.session.nvml.crash_next_wait = True
    odd.wait_for(lambda s: odd.errors() == 1)
    samples = odd.wait_for(odd.watching(*range(8)))
    assert odd.watching(*range(8))(samples) and odd.errors() == 1
    odd.state.inject_xid(2, 13)
    assert xids(odd.wait_for(lambda s: xids(s, odd, 2, 13) == 1), odd, 2, 13) == 1


def test_nvml_down_at_start_is_waited_for_then_watched(node):
    node.state.library_missing = True
    samples = node.scrape()
    time.sleep(0.1)
    samples = node.scrape()
    assert sample(samples, "clusterwatch_exporter_xid_watcher_up") == 0
    assert series(samples, "gpu_xid_watch_active") == []
    node.state.library_missing = False
    node.clock.now += 10  # past the session's init backoff
    node.wait_for(node.watching(*range(8)))
    node.state.inject_xid(3, 13)
    assert xids(node.wait_for(lambda s: xids(s, node, 3, 13) == 1), node, 3, 13) == 1
    assert node.errors() == 0


def test_nvml_reinit_recreates_the_event_set_and_counting_continues(node):
    node.wait_for(node.watching(*range(8)))
    node.state.inject_xid(4, 13)
    node.wait_for(lambda s: xids(s, node, 4, 13) == 1)
    node.session.close()  # NVML down, as after the loop saw nvmlDeviceGetCount fail
    node.state.init_error = pynvml.NVML_ERROR_DRIVER_NOT_LOADED
    samples = node.wait_for(lambda s: s[("clusterwatch_exporter_xid_watcher_up", frozenset())] == 0)
    assert sample(samples, "clusterwatch_exporter_xid_watcher_up") == 0
    assert node.watch_active(samples, 4) == 0
    assert node.state._event_sets == {}  # the old set was freed, not leaked
    node.state.init_error = None
    node.clock.now += 10
    samples = node.wait_for(node.watching(*range(8)))
    assert sample(samples, "clusterwatch_exporter_xid_watcher_up") == 1
    node.state.inject_xid(4, 13)
    samples = node.wait_for(lambda s: xids(s, node, 4, 13) == 2)
    assert xids(samples, node, 4, 13) == 2  # the count carries on across the re-init


def test_close_stops_the_watcher_promptly_and_frees_its_set(node):
    node.wait_for(node.watching(*range(8)))
    thread = node.collector._thread
    start = time.monotonic()
    node.collector.close()
    assert time.monotonic() - start < 1.0
    assert thread is not None and not thread.is_alive()
    assert node.state._event_sets == {}


def test_close_before_any_collection_does_nothing(node):
    node.collector.close()
    assert node.collector._thread is None


def test_without_an_nvml_session_there_is_no_data():
    ctx = CollectorContext(config=ExporterConfig(), procfs=None, sysfs=None, nvml=None)
    with pytest.raises(NoDataError):
        XidCollector(ctx).collect()


def test_registered_as_the_xid_collector():
    from exporter.collector import available_collectors

    assert available_collectors()["xid"].factory is XidCollector
