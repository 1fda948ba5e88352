"""XIDs raised while the exporter was not watching are recovered from the kernel log, once each.

Finding 13 of issue 14: every XID raised while the exporter is down or restarting was lost. The
XID collector now reads the driver's ``NVRM: Xid`` lines from the kernel log when it first
registers its GPUs. These tests run the real collector over the fake NVML and real kernel-log
fixtures (``tests/fixtures/kmsg``: lines of real drivers, sources in its README).
"""
from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Callable

import pytest

from exporter.collector import CollectorContext
from exporter.collectors.xid import XidCollector
from exporter.config import ExporterConfig
from exporter.kmsg import KernelLog, KmsgDevice, MemoryKmsg, ReadLimits
from exporter.nvml.fake import FakeNVML, FakeState
from exporter.nvml.session import NvmlSession
from exporter.nvrm import xid_line
from exporter.xid_recovery import XidRecovery
from tests.exporter.helpers import Samples, parse_exposition, render

FIXTURES = Path(__file__).parents[1] / "fixtures" / "kmsg"
T0 = 1_700_000_000.0
UPTIME_US = 10_000_000_000  # the fixture node has been up 10,000 s when the exporter starts
# The buses of the fixture node's GPUs (tests/fixtures/kmsg/README.md), in NVML's order.
DGX_BUSES = ("07", "97", "a1", "ba", "cb", "dc", "ed", "18")
LOGGED_UUID_A1 = "GPU-979426f2-893a-7cbb-c4cf-81472f89a462"  # the driver's "GPU at PCI:0000:a1:00" line


def dgx_state() -> FakeState:
    state = FakeState.h100_node(gpus=8, seed=4)
    for gpu, bus in zip(state.gpus, DGX_BUSES):
        gpu.pci_bus_id = f"00000000:{bus.upper()}:00.0"
    return state


class Node:
    """The XID collector of one fake node, reading ``kernel_log``, driven as the collection loop does."""

    def __init__(self, state: FakeState, kernel_log: KernelLog | None) -> None:
        self.state = state
        self.session = NvmlSession(FakeNVML(state), clock=lambda: T0)
        self.ctx = CollectorContext(config=ExporterConfig(), procfs=None, sysfs=None, nvml=self.session,
                                    clock=lambda: T0, kernel_log=kernel_log)
        self.collector = XidCollector(self.ctx)

    def scrape(self) -> Samples:
        self.session.refresh()
        return parse_exposition(render(self.collector.collect()))

    def wait_for(self, condition: Callable[[Samples], bool], timeout: float = 20.0) -> Samples:
        deadline = time.monotonic() + timeout
        while True:
            samples = self.scrape()
            if condition(samples) or time.monotonic() > deadline:
                return samples
            time.sleep(0.02)

    def uuid(self, index: int) -> str:
        return self.state.gpu(index).uuid

    def close(self) -> None:
        self.collector.close()


@pytest.fixture
def nodes():
    made: list[Node] = []

    def make(state: FakeState, kernel_log: KernelLog | None) -> Node:
        made.append(Node(state, kernel_log))
        return made[-1]

    yield make
    for node in made:
        node.close()


def fixture_log(name: str) -> KmsgDevice:
    return KmsgDevice(str(FIXTURES / name), clock_us=lambda: UPTIME_US)


def xids(samples: Samples) -> dict[tuple[str, str, str, str], float]:
    """{(gpu, uuid, xid, action): count} of gpu_xid_errors_total."""
    return {(labels["gpu"], labels["uuid"], labels["xid"], labels["action"]): value
            for (name, frozen), value in samples.items() if name == "gpu_xid_errors_total"
            for labels in [dict(frozen)]}


def recovery(samples: Samples) -> dict[str, float]:
    out = {dict(labels)["result"]: value for (name, labels), value in samples.items()
           if name == "clusterwatch_exporter_xid_recovery_records_total"}
    out["complete"] = samples[("clusterwatch_exporter_xid_recovery_complete", frozenset())]
    return out


def test_the_first_scrape_counts_every_xid_the_node_logged_since_boot(nodes):
    state = dgx_state()
    state.gpu(2).lost = True  # the GPU at a1 fell off the bus: NVML cannot say who it is
    node = nodes(state, fixture_log("dgx-node.kmsg"))
    samples = node.scrape()
    u = node.uuid
    assert xids(samples) == {
        ("0", u(0), "48", "workflow"): 1, ("0", u(0), "64", "reset_gpu"): 1,
        ("0", u(0), "38", "ignore"): 1, ("0", u(0), "109", "reset_gpu"): 1,
        ("4", u(4), "13", "restart_app"): 3, ("4", u(4), "109", "reset_gpu"): 1,
        ("5", u(5), "45", "workflow"): 2, ("6", u(6), "45", "workflow"): 2,
        ("3", u(3), "45", "workflow"): 2, ("1", u(1), "45", "workflow"): 2,
        ("", LOGGED_UUID_A1, "79", "reboot"): 1,  # named by the driver's own "GPU at PCI" line
    }
    assert recovery(samples) == {"counted": 17, "seen_by_nvml": 0, "other": 9, "malformed": 0, "complete": 1}
    # When it happened, from the log's stamp: 8001.200104 s after boot, the exporter starting at 10,000 s.
    assert samples[("gpu_xid_last_timestamp_seconds", frozenset({("gpu", ""), ("uuid", LOGGED_UUID_A1)}))] == \
        pytest.approx(T0 - (10_000 - 8001.200104), abs=1e-3)
    assert samples[("gpu_xid_last_code", frozenset({("gpu", "4"), ("uuid", u(4))}))] == 109
    assert node.ctx.errors.counts().get("xid", 0) == 0


def test_an_xid_nvml_delivers_after_the_start_is_not_counted_again_and_a_restart_counts_each_once(nodes):
    state = FakeState.h100_node(gpus=8, seed=9)  # the fake driver logs its XIDs in state.kernel_log
    state.inject_xid(1, 13)
    state.inject_xid(1, 13)
    first = nodes(state, state.kernel_log)
    uuid = first.uuid(1)
    assert xids(first.scrape()) == {("1", uuid, "13", "restart_app"): 2}
    state.inject_xid(1, 13)  # watched: NVML delivers it, the log has it too
    state.inject_xid(6, 48)
    samples = first.wait_for(lambda s: len(xids(s)) == 2 and xids(s).get(("1", uuid, "13", "restart_app")) == 3)
    assert xids(samples) == {("1", uuid, "13", "restart_app"): 3, ("6", first.uuid(6), "48", "workflow"): 1}
    for _ in range(3):  # later collections never read the log again
        assert xids(first.scrape()) == xids(samples)

    first.close()
    state.inject_xid(6, 48)  # raised while the exporter is down
    second = nodes(state, state.kernel_log)
    # A restarted exporter's counters start again: counting the log since boot continues each series.
    assert xids(second.scrape()) == {("1", uuid, "13", "restart_app"): 3, ("6", first.uuid(6), "48", "workflow"): 2}
    assert recovery(second.scrape())["counted"] == 5


def test_only_xids_logged_before_their_gpu_was_registered_are_counted_from_the_log():
    state = FakeState.h100_node(gpus=2, seed=1)
    session = NvmlSession(FakeNVML(state))
    session.refresh()
    bus = [gpu.pci_bus_id for gpu in state.gpus]
    log = MemoryKmsg(uptime=lambda: 50.0)  # a clock standing still: order comes from the stamps alone
    log.log(xid_line(bus[0], 13, "Graphics Exception"))  # before the exporter started
    recovered = XidRecovery(log)
    recovered.read_backlog()
    log.log(xid_line(bus[0], 31, "MMU Fault"))  # while it registered, before GPU 0 was registered
    registered = log.now_us()  # GPU 0 registered: NVML delivers what follows
    log.log(xid_line(bus[0], 43, "Reset Channel Verif Error"))
    log.log(xid_line(bus[1], 45, "Preemptive Cleanup"))  # GPU 1 could not be registered: only the log has it
    result = {entry.uuid: (entry.index, entry.counts) for entry in recovered.finish(session.devices, {state.gpus[0].uuid: registered})}
    assert result == {state.gpus[0].uuid: (0, {13: 1, 31: 1}), state.gpus[1].uuid: (1, {45: 1})}
    assert (recovered.stats.counted, recovered.stats.seen_by_nvml) == (3, 1)


def test_xids_of_a_bus_no_gpu_or_driver_line_names_are_counted_under_the_bus_id(nodes, caplog):
    node = nodes(FakeState.h100_node(gpus=2, seed=2), fixture_log("driver-variants.kmsg"))
    with caplog.at_level(logging.WARNING, logger="exporter.xid_recovery"):
        samples = node.scrape()
    assert xids(samples) == {
        ("", "GPU-8a47641b-dff6-f09f-618c-c3eb58fb430d", "32", "restart_app"): 1,  # bus 01 has a "GPU at PCI" line
        ("", "GPU-8a47641b-dff6-f09f-618c-c3eb58fb430d", "31", "restart_app"): 2,
        ("", "GPU-8a47641b-dff6-f09f-618c-c3eb58fb430d", "13", "restart_app"): 1,
        ("", "PCI:0000:0c:00", "31", "restart_app"): 1,
        ("", "PCI:0019:01:00", "149", "workflow"): 1,
        ("", "PCI:0018:01:00", "145", "workflow"): 1,
        ("", "PCI:0000:00:00", "149", "workflow"): 1,
    }
    warned = " ".join(record.getMessage() for record in caplog.records)
    assert all(bus in warned for bus in ("PCI:0000:0c:00", "PCI:0019:01:00", "PCI:0018:01:00", "PCI:0000:00:00"))


def test_a_gpu_with_a_32_bit_pci_domain_is_found_by_its_16_bit_spelling(nodes):
    state = FakeState.h100_node(gpus=1, seed=3)
    state.gpu(0).pci_bus_id = "03F8CFDD:00:00.0"  # a Hyper-V VM's domain
    log = MemoryKmsg()
    log.log("NVRM: Xid (PCI:cfdd:00:00): 79, pid='<unknown>', name=<unknown>, GPU has fallen off the bus.")
    node = nodes(state, log)
    assert xids(node.scrape()) == {("0", node.uuid(0), "79", "reboot"): 1}


def test_garbage_in_the_log_is_skipped_and_counted_and_a_forged_xid_is_not_counted(nodes):
    state = dgx_state()
    node = nodes(state, fixture_log("garbage.kmsg"))
    samples = node.scrape()
    u0 = node.uuid(0)
    assert xids(samples) == {("0", u0, "48", "workflow"): 1, ("0", u0, "64", "reset_gpu"): 1,
                             ("0", u0, "63", "ignore"): 1}
    assert recovery(samples) == {"counted": 3, "seen_by_nvml": 0, "other": 3, "malformed": 10, "complete": 1}


@pytest.mark.parametrize("path", ["/nonexistent/kmsg", "/"])
def test_an_unreadable_log_is_reported_and_xids_are_still_counted_from_nvml(nodes, path, caplog):
    state = FakeState.h100_node(gpus=2, seed=6)
    node = nodes(state, KmsgDevice(path))
    with caplog.at_level(logging.WARNING):
        samples = node.scrape()
    assert recovery(samples) == {"counted": 0, "seen_by_nvml": 0, "other": 0, "malformed": 0, "complete": 0}
    assert path in caplog.text
    assert node.ctx.errors.counts()["xid"] >= 1
    state.inject_xid(0, 31)
    samples = node.wait_for(lambda s: xids(s) != {})
    assert xids(samples) == {("0", node.uuid(0), "31", "restart_app"): 1}


def test_a_huge_log_is_read_within_its_bounds_and_says_it_is_incomplete(nodes, tmp_path, monkeypatch, caplog):
    path = tmp_path / "kmsg"
    lines = [b"4,%d,%d,-;NVRM: Xid (PCI:0000:07:00): 13, pid=1, name=python, Graphics Exception\n" % (i, i) for i in range(20_000)]
    path.write_bytes(b"".join(lines))
    monkeypatch.setattr(XidCollector, "recovery_limits", ReadLimits(max_records=1_000))
    node = nodes(dgx_state(), KmsgDevice(str(path)))
    with caplog.at_level(logging.WARNING):
        samples = node.scrape()
    counted = xids(samples)[("0", node.uuid(0), "13", "restart_app")]
    assert 1_000 <= counted < 20_000
    assert recovery(samples)["complete"] == 0
    assert "stopped after 1000 records" in caplog.text


def test_the_log_is_read_once_at_start_not_every_collection(nodes, tmp_path):
    path = tmp_path / "kmsg"
    shutil.copy(FIXTURES / "dgx-node.kmsg", path)
    node = nodes(dgx_state(), KmsgDevice(str(path), clock_us=lambda: UPTIME_US))
    before = node.scrape()
    with path.open("ab") as log:
        log.write(b"4,999,9999000000,-;NVRM: Xid (PCI:0000:07:00): 48, pid='<unknown>', name=<unknown>, An uncorrectable\n")
    for _ in range(3):
        assert node.scrape() == before


def test_with_nvml_down_at_start_the_log_is_recovered_once_nvml_comes_up(nodes):
    state = FakeState.h100_node(gpus=2, seed=8)
    state.inject_xid(1, 79)
    state.library_missing = True
    node = nodes(state, state.kernel_log)
    node.session._backoff_initial = node.session._delay = 0.0  # retry NVML at once
    node.scrape()
    state.library_missing = False
    samples = node.wait_for(lambda s: xids(s) != {})
    assert xids(samples) == {("1", node.uuid(1), "79", "reboot"): 1}


def test_without_a_kernel_log_nothing_is_recovered_and_no_recovery_metric_is_exposed(nodes):
    state = FakeState.h100_node(gpus=1, seed=8)
    state.inject_xid(0, 79)
    node = nodes(state, None)
    samples = node.scrape()
    assert xids(samples) == {}
    assert not any(name.startswith("clusterwatch_exporter_xid_recovery") for name, _ in samples)


def test_the_kmsg_setting_reaches_the_xid_collector_and_the_fake_backend_brings_its_own_log():
    import pynvml

    from clusterwatch.cli import build_parser
    from clusterwatch.commands.exporter import load_config
    from exporter.build import create_exporter

    def kernel_log(argv: list[str], module) -> object:
        config = load_config(build_parser().parse_args(["exporter", "--collectors", "xid", *argv]), environ={})
        exporter = create_exporter(config, nvml_module=module)
        try:
            return exporter.ctx.kernel_log
        finally:
            exporter.close()

    assert kernel_log([], pynvml).path == "/dev/kmsg"
    assert kernel_log(["--kmsg", str(FIXTURES / "dgx-node.kmsg")], pynvml).path == str(FIXTURES / "dgx-node.kmsg")
    assert kernel_log(["--kmsg", ""], pynvml) is None
    state = FakeState.h100_node(gpus=1)
    assert kernel_log(["--backend", "fake"], FakeNVML(state)) is state.kernel_log
