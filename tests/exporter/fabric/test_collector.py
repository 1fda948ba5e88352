"""The fabric collector over the simulated fat-tree and over real processes that misbehave."""
from __future__ import annotations

import threading
from pathlib import Path

from exporter.build import create_exporter
from exporter.collector import available_collectors, default_collectors
from exporter.config import ExporterConfig
from exporter.fabric.plan import Plan, parse as parse_plan
from exporter.fabric.runner import SubprocessRunner, ToolError, ToolResult
from exporter.fabric.sweep import FabricTools, SweepSettings, Sweeper
from simulator.fabric import FatTree, SimFabricRunner
from simulator.topology import build_topology
from tests.exporter.fabric.support import FIXTURES, tool
from tests.exporter.helpers import parse_exposition

CONTRACT_PER_END = (
    "fabric_link_state", "fabric_link_physical_state", "fabric_link_width_lanes", "fabric_link_capable_width_lanes",
    "fabric_link_lane_rate_bits_per_second", "fabric_link_capable_lane_rate_bits_per_second",
    "fabric_link_symbol_errors_total", "fabric_link_error_recovery_total", "fabric_link_downed_total",
    "fabric_link_receive_errors_total", "fabric_link_receive_remote_physical_errors_total",
    "fabric_link_receive_switch_relay_errors_total", "fabric_link_transmit_discards_total",
    "fabric_link_transmit_constraint_errors_total", "fabric_link_receive_constraint_errors_total",
    "fabric_link_integrity_errors_total", "fabric_link_buffer_overrun_errors_total", "fabric_link_vl15_dropped_total",
    "fabric_link_transmit_wait_total", "fabric_link_transmit_bytes_total", "fabric_link_receive_bytes_total",
    "fabric_link_transmit_packets_total", "fabric_link_receive_packets_total")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def exporter_for(runner, **config):
    config = ExporterConfig(collectors=["fabric"], **config)
    exporter = create_exporter(config, fabric_tools=FabricTools(runner, Plan()))
    exporter.collectors[0].run_in_background = False  # each test drives its sweeps
    return exporter, exporter.collectors[0]


def samples(exporter):
    return parse_exposition(exporter.collect_once().text)


def by_name(parsed, name):
    return {labels: value for (metric, labels), value in parsed.items() if metric == name}


def sim_runner(nodes=16, clock=None):
    fabric = FatTree(build_topology(nodes))
    return fabric, SimFabricRunner(fabric, clock or Clock())


def test_registered_but_runs_only_when_named():
    assert "fabric" in available_collectors() and "fabric" not in default_collectors()


def test_every_cable_of_the_fat_tree_with_both_ends_and_the_contract_names():
    fabric, runner = sim_runner()
    exporter, collector = exporter_for(runner, fabric_hca_counters=True)
    collector.sweep_once()
    parsed = samples(exporter)
    info = by_name(parsed, "fabric_link_info")
    assert len(info) == len(fabric.cables) == 128
    host = {dict(labels)["peer"]: dict(labels) for labels in info if dict(labels)["link_type"] == "host"}
    assert host["gpu-001 mlx5_0"] == {"switch": "leaf-r01", "switch_port": "1", "peer": "gpu-001 mlx5_0",
                                      "peer_port": "1", "link_type": "host", "node": "gpu-001",
                                      "switch_guid": f"0x{fabric.switches[0].guid}", "peer_guid": host["gpu-001 mlx5_0"]["peer_guid"]}
    isl = [dict(labels) for labels in info if dict(labels)["link_type"] == "isl"]
    assert {labels["switch"] for labels in isl} == {"leaf-r01", "leaf-r02"} and all(
        labels["peer"].startswith("spine-") and labels["node"] == "" for labels in isl)
    for name in CONTRACT_PER_END:
        ends = {dict(labels)["end"] for labels in by_name(parsed, name)}
        assert ends == {"switch", "peer"}, name
    assert len(by_name(parsed, "fabric_link_state")) == 2 * 128
    tiers = {dict(labels)["switch"]: dict(labels)["tier"] for labels in by_name(parsed, "fabric_switch_info")}
    assert tiers["leaf-r01"] == "leaf" and tiers["spine-01"] == "spine"
    assert parsed[("fabric_sweep_ports", frozenset())] == 2 * 128
    assert parsed[("fabric_sweep_incomplete", frozenset())] == 0


def test_host_ends_left_to_the_hosts_by_default():
    _, runner = sim_runner()
    exporter, collector = exporter_for(runner)
    collector.sweep_once()
    ends = {dict(labels)["end"] for labels in by_name(samples(exporter), "fabric_link_downed_total")
            if "mlx5" in dict(labels)["peer"]}
    assert ends == {"switch"}


def test_metrics_never_wait_for_a_sweep():
    release = threading.Event()

    class Slow:
        def run(self, argv, timeout, max_bytes):
            release.wait(30)
            raise ToolError(argv[0], "released")

    exporter, collector = exporter_for(Slow(), fabric_interval=3600)
    collector.run_in_background = True
    try:
        parsed = samples(exporter)  # starts the sweep thread, which blocks in the tool
        assert parsed[("fabric_sweep_errors_total", frozenset({("tool", "ibnetdiscover")}))] == 0
        assert not any(name == "fabric_link_info" for name, _ in parsed)
    finally:
        release.set()
        exporter.close()


class Misbehaving:
    """The simulated fabric, except that one tool (or one switch's perfquery) misbehaves."""

    def __init__(self, inner, tool, guid=None, error="exit status 1: ibwarn: mad_rpc failed", output=None):
        self.inner, self.tool, self.guid, self.error, self.output = inner, tool, guid, error, output

    def run(self, argv, timeout, max_bytes):
        if argv[0] == self.tool and (self.guid is None or f"0x{self.guid}" in argv):
            if self.output is not None:
                return ToolResult(self.output)
            raise ToolError(argv[0], self.error)
        return self.inner.run(argv, timeout, max_bytes)


def test_one_switch_failing_costs_only_its_ports():
    fabric, runner = sim_runner()
    leaf = fabric.switches[0]
    exporter, collector = exporter_for(Misbehaving(runner, "perfquery", leaf.guid))
    collector.sweep_once()
    parsed = samples(exporter)
    counted = {dict(labels)["switch"] for labels in by_name(parsed, "fabric_link_symbol_errors_total")
               if dict(labels)["end"] == "switch"}
    assert "leaf-r02" in counted and "leaf-r01" not in counted
    assert len(by_name(parsed, "fabric_link_info")) == 128  # the cables are still all there
    assert parsed[("fabric_sweep_errors_total", frozenset({("tool", "perfquery")}))] == 1


def test_garbage_from_a_tool_is_counted_as_malformed_lines_and_the_rest_exposed():
    _, runner = sim_runner()
    exporter, collector = exporter_for(Misbehaving(runner, "iblinkinfo", output="\x00\x01 garbage\nmore garbage\n"))
    collector.sweep_once()
    parsed = samples(exporter)
    assert parsed[("fabric_topology_malformed_lines", frozenset())] == 2
    assert not by_name(parsed, "fabric_link_width_lanes")  # no link states this sweep
    assert len(by_name(parsed, "fabric_link_info")) == 128 and by_name(parsed, "fabric_link_transmit_bytes_total")


def test_topology_failure_keeps_the_last_topology():
    _, runner = sim_runner()
    flaky = Misbehaving(runner, "none")
    exporter, collector = exporter_for(flaky)
    collector.sweep_once()
    flaky.tool = "ibnetdiscover"
    result = collector.sweep_once()
    assert len(result.links) == 128 and not result.complete_topology
    parsed = samples(exporter)
    assert parsed[("fabric_sweep_errors_total", frozenset({("tool", "ibnetdiscover")}))] == 1


def real_tools(directory: Path, perfquery_body: str) -> SubprocessRunner:
    for name, fixture in (("ibnetdiscover", "ibnetdiscover-hdr-hosts.txt"), ("iblinkinfo", "iblinkinfo-hdr.txt")):
        tool(directory, name, f"sys.stdout.write(open({str(FIXTURES / fixture)!r}).read())")
    tool(directory, "perfquery", perfquery_body)
    return SubprocessRunner(str(directory))


def test_real_processes_a_perfquery_that_hangs_is_cut_at_the_tool_timeout(tmp_path):
    runner = real_tools(tmp_path, "time.sleep(600)")
    exporter, collector = exporter_for(runner, fabric_tool_timeout=0.5)
    result = collector.sweep_once()
    assert result.complete_topology and not result.counters
    parsed = samples(exporter)
    assert parsed[("fabric_sweep_errors_total", frozenset({("tool", "perfquery")}))] == 2  # leaf and spine
    states = by_name(parsed, "fabric_link_state")
    assert states[frozenset({("switch", "leaf-r01"), ("switch_port", "2"), ("peer", "gpu-002 mlx5_0"),
                             ("peer_port", "1"), ("end", "switch")})] == 4
    widths = by_name(parsed, "fabric_link_width_lanes")
    assert widths[frozenset({("switch", "leaf-r01"), ("switch_port", "2"), ("peer", "gpu-002 mlx5_0"),
                             ("peer_port", "1"), ("end", "peer")})] == 2


def test_real_processes_a_perfquery_printing_100_mb_is_cut_at_the_cap(tmp_path):
    runner = real_tools(tmp_path, "chunk = b'x' * (1 << 20)\nfor _ in range(100):\n    sys.stdout.buffer.write(chunk)")
    exporter, collector = exporter_for(runner, fabric_max_output_bytes=1 << 20)
    result = collector.sweep_once()
    assert result.complete_topology and len(result.links) == 5 and not result.counters
    assert samples(exporter)[("fabric_sweep_errors_total", frozenset({("tool", "perfquery")}))] == 2


def test_real_processes_the_real_perfquery_sample_feeds_the_switch_end(tmp_path):
    runner = real_tools(tmp_path, f"sys.stdout.write(open({str(FIXTURES / 'perfquery-x-switch-edr.txt')!r}).read())")
    exporter, collector = exporter_for(runner)
    collector.sweep_once()
    sent = by_name(samples(exporter), "fabric_link_transmit_bytes_total")
    assert sent[frozenset({("switch", "leaf-r01"), ("switch_port", "1"), ("peer", "gpu-001 mlx5_0"), ("peer_port", "1"),
                           ("end", "switch")})] == 36298026860928 * 4


def test_the_sweep_stops_at_its_time_bound_and_says_so():
    clock = Clock()
    fabric, runner = sim_runner(nodes=64, clock=clock)

    class Slow:
        def run(self, argv, timeout, max_bytes):
            clock.now += 2.0  # every tool run takes 2 s of the sweep's budget
            return runner.run(argv, timeout, max_bytes)

    sweeper = Sweeper(Slow(), SweepSettings(max_seconds=15.0, ports_per_second=1e6), clock=clock, wait=lambda s: None)
    result = sweeper.sweep()
    assert result.incomplete and 0 < result.ports_read < 2 * len(fabric.cables)
    assert result.duration <= 15.0 + 2.0


def test_ports_are_read_no_faster_than_the_rate_bound():
    clock = Clock()
    fabric, runner = sim_runner(nodes=16, clock=clock)
    waits = []

    def wait(seconds):
        waits.append(seconds)
        clock.now += seconds

    sweeper = Sweeper(runner, SweepSettings(max_seconds=600, ports_per_second=50), clock=clock, wait=wait)
    result = sweeper.sweep()
    switch_ports = sum(len(switch.ports) for switch in fabric.switches)  # 64 host, 2 x 64 leaf-spine
    assert not result.incomplete and result.ports_read == switch_ports == 192
    # At 50 ports a second the last switch's call may start no earlier than (all - its ports) / 50 s.
    last = max(len(switch.ports) for switch in fabric.switches)
    assert result.duration >= (switch_ports - last) / 50 - 1e-6
    assert sum(waits) >= (switch_ports - last) / 50 - 1e-6


def test_planned_cable_missing_from_the_fabric_is_exposed_down():
    _, runner = sim_runner()
    plan = parse_plan({"links": [{"switch": "leaf-r09", "switch_port": 1, "peer": "storage-01 mlx5_0", "peer_port": 1}]})
    exporter = create_exporter(ExporterConfig(collectors=["fabric"]), fabric_tools=FabricTools(runner, plan))
    exporter.collectors[0].run_in_background = False
    exporter.collectors[0].sweep_once()
    parsed = samples(exporter)
    labels = {("switch", "leaf-r09"), ("switch_port", "1"), ("peer", "storage-01 mlx5_0"), ("peer_port", "1")}
    assert parsed[("fabric_link_state", frozenset(labels | {("end", "switch")}))] == 1
    assert parsed[("fabric_link_info", frozenset(labels | {("link_type", "host"), ("node", "storage-01"),
                                                           ("switch_guid", ""), ("peer_guid", "")}))] == 1
