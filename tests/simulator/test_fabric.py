"""The simulated fat-tree: its shape and cable count, and what each fabric fault moves on both ends."""
from __future__ import annotations

from collections import Counter

import httpx
import pytest

from simulator.fabric import FatTree
from simulator.faults import FaultError
from simulator.fleet import FABRIC_JOB, Fleet
from simulator.server import SimulatorHTTPServer
from simulator.topology import build_topology
from tests.exporter.helpers import parse_exposition

T0 = 1_800_000_000.0


@pytest.fixture
def fleet():
    fleet = Fleet(nodes=16, seed=3, speed=0, start=T0, warm=False)
    yield fleet
    fleet.stop()


def test_reference_fleet_one_leaf_per_rack_and_a_non_blocking_spine_tier():
    fabric = FatTree(build_topology(140))
    tiers = Counter(switch.tier for switch in fabric.switches)
    assert tiers == {"leaf": 18, "spine": 32}  # 18 racks of 8 (the last of 4); 32 leaf uplinks each
    assert len(fabric.cables) == 140 * 4 * 2  # a host cable per HCA port and as many uplinks: 1,120
    leaf = next(switch for switch in fabric.switches if switch.name == "leaf-r01")
    assert (leaf.rack, len(leaf.ports)) == ("rack-01", 64)
    assert {fabric.leaf_of[f"gpu-00{i}"].name for i in range(1, 9)} == {"leaf-r01"}


def test_a_fleet_of_several_pods_gets_a_core_tier_and_the_right_cable_count():
    fabric = FatTree(build_topology(16_384, ib_ports=1))
    tiers = Counter(switch.tier for switch in fabric.switches)
    assert tiers == {"leaf": 2048, "spine": 512, "core": 256}
    assert len(fabric.cables) == 16_384 * 3 == 49_152  # host, leaf-spine and spine-core, each non-blocking


def sweep(fleet: Fleet) -> dict:
    exporter = fleet.fabric_exporter()
    exporter.collectors[0].run_in_background = False
    exporter.collectors[0].sweep_once()
    return parse_exposition(exporter.collect_once().text)


def end_values(parsed: dict, name: str, switch: str, port: int) -> dict[str, float]:
    return {dict(labels)["end"]: value for (metric, labels), value in parsed.items()
            if metric == name and ("switch", switch) in labels and ("switch_port", str(port)) in labels}


def host_counter(fleet: Fleet, node: str, device: str, name: str) -> float:
    parsed = parse_exposition(fleet.render_metrics(node))
    return parsed[(name, frozenset({("device", device), ("port", "1")}))]


def test_flapping_host_cable_moves_both_ends_and_the_hosts_own_counters(fleet):
    sweep(fleet)
    fleet.inject({"kind": "fabric_flapping", "node": "gpu-003", "port": 2, "period": 60})
    fleet.advance(630)  # in the up half of a period: the HCA end answers perfquery
    parsed = sweep(fleet)
    port = fleet.fabric.host_cable("gpu-003", 2).a.number  # the leaf's port
    downed = end_values(parsed, "fabric_link_downed_total", "leaf-r01", port)
    assert downed["switch"] >= 10 and downed["peer"] >= 10  # one per 60 s period over 600 s
    assert end_values(parsed, "fabric_link_error_recovery_total", "leaf-r01", port)["switch"] >= 10
    # The host side counts the transitions its node saw when updated (simulator/node.py): it moved too.
    assert host_counter(fleet, "gpu-003", "mlx5_1", "node_infiniband_link_downed_total") >= 1
    assert host_counter(fleet, "gpu-003", "mlx5_0", "node_infiniband_link_downed_total") == 0
    quiet = end_values(parsed, "fabric_link_downed_total", "leaf-r01", port + 1)
    assert quiet == {"switch": 0, "peer": 0}


def test_degraded_cable_shows_fewer_lanes_than_it_could_on_both_ends(fleet):
    fleet.inject({"kind": "fabric_degraded", "node": "gpu-002", "port": 1, "width": 2, "speed": "HDR"})
    parsed = sweep(fleet)
    port = fleet.fabric.host_cable("gpu-002", 1).a.number
    assert end_values(parsed, "fabric_link_width_lanes", "leaf-r01", port) == {"switch": 2, "peer": 2}
    assert end_values(parsed, "fabric_link_capable_width_lanes", "leaf-r01", port) == {"switch": 4, "peer": 4}
    assert end_values(parsed, "fabric_link_lane_rate_bits_per_second", "leaf-r01", port)["switch"] == 53.125e9
    assert end_values(parsed, "fabric_link_capable_lane_rate_bits_per_second", "leaf-r01", port)["peer"] == 106.25e9


def test_symbol_errors_on_an_uplink_move_both_switches_and_no_host(fleet):
    sweep(fleet)
    fleet.inject({"kind": "fabric_symbol_errors", "node": "gpu-001", "port": 1, "uplink": 3, "rate": 600})
    fleet.advance(120)
    parsed = sweep(fleet)
    errors = end_values(parsed, "fabric_link_symbol_errors_total", "leaf-r01", 32 + 4)
    assert errors["switch"] == pytest.approx(1200, abs=2) and errors["peer"] == pytest.approx(1200, abs=2)
    assert host_counter(fleet, "gpu-001", "mlx5_0", "node_infiniband_symbol_error_total") == 0
    info = {dict(labels)["peer"] for (metric, labels) in parsed if metric == "fabric_link_info"
            and ("switch", "leaf-r01") in labels and ("switch_port", "36") in labels}
    assert info == {"spine-04"}


def test_leaf_fault_makes_several_of_its_links_bad(fleet):
    sweep(fleet)
    fleet.inject({"kind": "fabric_leaf_fault", "node": "gpu-010", "links": 5, "rate": 300})
    fleet.advance(600)
    parsed = sweep(fleet)
    bad = {dict(labels)["switch_port"] for (metric, labels), value in parsed.items()
           if metric == "fabric_link_symbol_errors_total" and value > 0 and ("end", "switch") in labels}
    assert bad == {"1", "2", "3", "4", "5"}  # gpu-010 is in rack-02: leaf-r02's first five cables
    assert all(("switch", "leaf-r02") in labels for (metric, labels), value in parsed.items()
               if metric == "fabric_link_symbol_errors_total" and value > 0)


def test_clearing_a_fault_stops_the_counters(fleet):
    sweep(fleet)
    fault = fleet.inject({"kind": "fabric_symbol_errors", "node": "gpu-001", "port": 1, "rate": 60})
    fleet.advance(60)
    fleet.clear(fault.id)
    first = end_values(sweep(fleet), "fabric_link_symbol_errors_total", "leaf-r01", 1)
    fleet.advance(600)
    assert end_values(sweep(fleet), "fabric_link_symbol_errors_total", "leaf-r01", 1) == first


@pytest.mark.parametrize("request_body, field", [
    ({"kind": "fabric_flapping", "node": "gpu-001", "port": 1, "uplink": 32}, "uplink"),
    ({"kind": "fabric_degraded", "node": "gpu-001", "port": 1, "width": 3}, "width"),
    ({"kind": "fabric_degraded", "node": "gpu-001", "port": 1, "speed": "QDR"}, "speed"),
    ({"kind": "fabric_symbol_errors", "node": "gpu-001", "port": 5}, "port"),
    ({"kind": "fabric_leaf_fault", "node": "gpu-001", "links": 0}, "links"),
])
def test_fabric_faults_are_validated_like_the_others(fleet, request_body, field):
    with pytest.raises(FaultError, match=f"^{field}:"):
        fleet.inject(request_body)


def test_the_fabric_target_is_served_over_http_with_its_file_sd(fleet):
    server = SimulatorHTTPServer(("127.0.0.1", 0), fleet)
    server.start_in_thread()
    try:
        sweep(fleet)
        response = httpx.get(f"{server.base_url}/fabric/metrics", timeout=30)
        assert response.status_code == 200
        assert 'fabric_link_info{switch="leaf-r01",switch_port="1",peer="gpu-001 mlx5_0"' in response.text
        [group] = fleet.fabric_file_sd(server.base_url)
        assert group["labels"] == {"__metrics_path__": "/fabric/metrics", "job": FABRIC_JOB, "instance": "ib-mgmt-01"}
    finally:
        server.shutdown()


def test_a_host_port_fault_is_seen_from_the_leaf_too():
    """ib_link_down, ib_flapping and ib_symbol_errors are the cable's faults: the leaf's end of
    that host cable goes down, flaps or counts errors as the node's own port does."""
    fleet = Fleet(nodes=16, seed=1, speed=0, warm=False)
    try:
        fabric = fleet.fabric
        down, flapping, noisy = (fabric.host_cable(node, 1) for node in ("gpu-001", "gpu-002", "gpu-003"))
        fleet.inject({"kind": "ib_link_down", "node": "gpu-001", "port": 1})
        fleet.inject({"kind": "ib_flapping", "node": "gpu-002", "port": 1, "period": "2m"})
        fleet.inject({"kind": "ib_symbol_errors", "node": "gpu-003", "port": 1, "rate": 600})
        fleet.advance(600)
        now = fleet.clock.now()
        for cable in (down, flapping, noisy):
            for port in (cable.a, cable.b):
                fabric.advance(port, now)
        assert not down.up(now) and fabric.host_cable("gpu-004", 1).up(now)
        assert down.a.counters["LinkDownedCounter"] == down.b.counters["LinkDownedCounter"] == 1
        assert flapping.a.counters["LinkDownedCounter"] >= 4
        assert noisy.a.counters["SymbolErrorCounter"] == pytest.approx(6000, rel=0.05)
    finally:
        fleet.stop()
