"""Switch and HCA names (the fabric contract), the override map and the YAML cabling plan."""
from __future__ import annotations

import pytest

from exporter.fabric import ibnetdiscover, plan
from exporter.fabric.naming import name_hcas, name_switches
from tests.exporter.fabric.support import read


def hdr():
    return ibnetdiscover.parse(read("ibnetdiscover-hdr-hosts.txt"))


def test_switches_named_from_the_vendor_default_description_and_tiered():
    names = name_switches(hdr(), plan.Plan())
    assert {(n.name, n.tier) for n in names.values()} == {("leaf-r01", "leaf"), ("spine-01", "spine")}


def test_shared_descriptions_name_no_switch_and_no_host():
    fabric = ibnetdiscover.parse(read("ibnetdiscover-x5-qdr.txt"))
    switches = {n.name for n in name_switches(fabric, plan.Plan()).values()}
    # "Voltaire 4036 - 36 QDR ports switch" is shared by three switches: each is sw-<guid>.
    assert {"sw-0008f10500200b50", "sw-0008f10500108098", "Voltaire 4036 # hoibp0013"} <= switches
    hcas = name_hcas(fabric, plan.Plan())
    assert all(name.node == "" and name.peer.startswith("ca-") for name in hcas.values())


def test_hcas_matched_to_hosts_by_description_and_by_the_override_map():
    fabric = hdr()
    overrides = plan.parse({"hcas": [{"guid": "0xb8599f0300e95dd8", "host": "gpu-003", "hca": "mlx5_0"}]})
    names = name_hcas(fabric, overrides)
    assert (names["b8599f0300e95b44"].peer, names["b8599f0300e95b44"].node) == ("gpu-001 mlx5_0", "gpu-001")
    # The vendor-default description names no host; the override map does.
    assert (names["b8599f0300e95dd8"].peer, names["b8599f0300e95dd8"].node) == ("gpu-003 mlx5_0", "gpu-003")
    assert name_hcas(fabric, plan.Plan())["b8599f0300e95dd8"].node == ""


def test_plan_renames_switches_by_guid_or_description_with_tier_and_rack():
    overrides = plan.parse({"switches": [
        {"guid": "b8599f0300a1c210", "name": "leaf-a1", "rack": "rack-07"},
        {"description": "MF0;spine-01:MQM8700/U1", "name": "core-1", "tier": "core"}]})
    names = {n.name: n for n in name_switches(hdr(), overrides).values()}
    assert (names["leaf-a1"].rack, names["leaf-a1"].tier) == ("rack-07", "leaf")
    assert names["core-1"].tier == "core"


def test_plan_file_shape_and_wrong_entries(tmp_path):
    path = tmp_path / "plan.yml"
    path.write_text(
        "switches:\n  - {guid: '0x1', name: leaf-1, tier: leaf, rack: r1}\n  - {name: nothing-to-match}\n"
        "  - {guid: '0x2', name: 'bad;name'}\n"
        "hcas:\n  - {guid: zz, host: gpu-1, hca: mlx5_0}\n"
        "links:\n  - {switch: leaf-1, switch_port: 1, peer: gpu-001 mlx5_0, peer_port: 1}\n"
        "  - {switch: leaf-1, switch_port: 999, peer: x, peer_port: 1}\n")
    loaded = plan.load(str(path))
    assert loaded.switches_by_guid == {"0000000000000001": plan.SwitchEntry("leaf-1", "leaf", "r1")}
    assert loaded.links == [plan.PlannedLink("leaf-1", 1, "gpu-001 mlx5_0", 1)]
    assert loaded.problems == [
        "switches[1]: needs a guid or a description to match the switch by",
        "switches[2]: name: must be a name of letters, digits and ._:/- (at most 128)",
        "hcas[0]: guid: must be up to 16 hex digits, 0x optional",
        "links[1]: switch_port: must be a port number from 1 to 255"]


@pytest.mark.parametrize("text, message", [
    ("- just a list\n", "a fabric plan is a mapping"),
    ("cables: []\n", "unknown section 'cables'"),
    ("switches: {a: 1}\n", "switches: must be a list"),
    ("switches: [\n", "not valid YAML"),
])
def test_unusable_plans_are_refused_with_why(tmp_path, text, message):
    path = tmp_path / "plan.yml"
    path.write_text(text)
    with pytest.raises(plan.PlanError, match=message):
        plan.load(str(path))


def test_oversized_plan_is_refused(tmp_path, monkeypatch):
    path = tmp_path / "plan.yml"
    path.write_text("switches: []\n")
    monkeypatch.setattr(plan, "MAX_PLAN_BYTES", 4)
    with pytest.raises(plan.PlanError, match="larger than"):
        plan.load(str(path))
