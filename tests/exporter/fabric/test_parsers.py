"""The tools' parsers against real samples (tests/fixtures/infiniband-diags/README.md) and bad lines."""
from __future__ import annotations

from exporter.fabric import iblinkinfo, ibnetdiscover, perfquery
from exporter.fabric.topology import CA, SWITCH, End, LANE_RATES
from tests.exporter.fabric.support import read


def test_real_qdr_fabric_every_node_and_cable():
    fabric = ibnetdiscover.parse(read("ibnetdiscover-x5-qdr.txt"))
    assert fabric.malformed == []
    kinds = [node.kind for node in fabric.nodes.values()]
    assert kinds.count(SWITCH) == 11 and kinds.count(CA) == 89
    # Every HCA has one cable; every cable printed from both ends is one link.
    hca_links = [link for link in fabric.links.values()
                 if CA in (fabric.nodes[link.a.guid].kind, fabric.nodes[link.b.guid].kind)]
    assert len(hca_links) == 89
    switch = fabric.nodes["0008f10500200b50"]
    assert (switch.description, switch.ports, switch.lid) == ("Voltaire 4036 - 36 QDR ports switch", 36, 9)
    # [4] "H-003048c749cd0000"[1](3048c749cd0001) # "MT25408 ..." lid 72 4xDDR
    link = fabric.links[frozenset((End("0008f10500200b50", 4), End("003048c749cd0000", 1)))]
    assert (link.width, link.lane_rate) == (4, LANE_RATES["DDR"])
    assert fabric.port_guids[End("003048c749cd0000", 1)] == "003048c749cd0001"
    assert fabric.port_lids[End("003048c749cd0000", 1)] == 72
    # Two tiers of switches and one that sees no HCA: leaves, spines, and the core.
    assert sorted(fabric.tiers().values()).count(1) == 6


def test_host_names_and_speeds_of_an_hdr_leaf():
    fabric = ibnetdiscover.parse(read("ibnetdiscover-hdr-hosts.txt"))
    assert fabric.malformed == []
    assert fabric.nodes["b8599f0300e95b44"].description == "gpu-001 mlx5_0"
    degraded = fabric.links[frozenset((End("b8599f0300a1c210", 2), End("b8599f0300e963f4", 1)))]
    assert (degraded.width, degraded.lane_rate) == (2, 53.125e9)
    assert len(fabric.links) == 5  # 3 host cables, 2 leaf-spine cables seen from both switches


def test_malformed_lines_are_reported_with_their_number_and_skipped():
    text = read("ibnetdiscover-hdr-hosts.txt").splitlines()
    text.insert(10, "[7]\tgarbage that is not a port line")
    text.insert(11, '[300]\t"H-b8599f0300e95b99"[1](b8599f0300e95b99) \t\t# "gpu-009 mlx5_0" lid 99 4xHDR')
    text.insert(12, '[8]\t"H-b8599f0300e95b98"[1](b8599f0300e95b98) \t\t# "gpu-008 mlx5_0" lid 98 4xWARP')
    fabric = ibnetdiscover.parse("\n".join(text))
    assert [(bad.line, bad.reason) for bad in fabric.malformed] == [
        (11, "not a node, port or header line"), (12, "port number out of range 1-255"),
        (13, "unknown link speed 'WARP'")]
    assert len(fabric.links) == 5  # the good lines still make the whole fabric
    assert "line 11" in str(fabric.malformed[0])


def test_port_line_before_any_node_is_malformed():
    fabric = ibnetdiscover.parse('[1]\t"H-0000000000000001"[1]\t# "x y" lid 1 4xHDR\n')
    assert fabric.malformed[0].reason == "a port line outside any node" and not fabric.links


def test_iblinkinfo_states_widths_and_what_a_link_could_be():
    info = iblinkinfo.parse(read("iblinkinfo-hdr.txt"))
    assert info.malformed == []
    leaf = "b8599f0300a1c210"
    healthy, narrow, slow, down = (info.switch_ports[(leaf, port)] for port in (1, 2, 3, 4))
    assert (healthy.state, healthy.physical_state, healthy.width, healthy.lane_rate) == (4, 5, 4, 53.125e9)
    assert (narrow.width, narrow.capable_width) == (2, 4)
    assert (slow.lane_rate, slow.capable_lane_rate) == (25.78125e9, 53.125e9)
    assert (down.state, down.physical_state, down.width) == (1, 2, 0)
    assert info.ca_ports[("b8599f0300e963f4", 1)].capable_width == 4


def test_iblinkinfo_garbage_and_unknown_states_are_skipped():
    text = read("iblinkinfo-hdr.txt") + "\n%%% not iblinkinfo\n" + \
        "           3    9[  ] ==( 4X        53.125 Gbps Exploded/  LinkUp)==>  1 1[  ] \"x\" ( )\n"
    info = iblinkinfo.parse(text)
    assert [bad.reason for bad in info.malformed] == ["not a node header or port line", "unknown port state Exploded/LinkUp"]
    assert len(info.switch_ports) == 6


def test_perfquery_extended_counters_of_a_real_switch():
    counters = perfquery.parse(read("perfquery-x-switch-edr.txt"))
    assert counters.malformed == []
    assert sorted(counters.ports) == [1, 2]
    port = counters.ports[1]
    assert port["transmit_bytes"] == 36298026860928 * 4  # PortXmitData counts 4-byte words
    assert port["receive_packets"] == 32262508468
    assert port["transmit_wait"] == 22730501
    assert port["symbol_errors"] == 0 and port["buffer_overrun_errors"] == 0
    assert len(port) == len(perfquery.COUNTERS)


def test_perfquery_bad_values_are_reported_and_the_rest_kept():
    text = read("perfquery-x-switch-edr.txt").replace("SymbolErrorCounter:..............0",
                                                       "SymbolErrorCounter:..............lots", 1)
    text += "this line is noise\n"
    counters = perfquery.parse(text)
    assert [bad.reason for bad in counters.malformed] == ["SymbolErrorCounter: not an integer",
                                                          "not a 'Name:....value' counter line"]
    assert "symbol_errors" not in counters.ports[1] and counters.ports[1]["downed"] == 0
    assert counters.ports[2]["symbol_errors"] == 0
