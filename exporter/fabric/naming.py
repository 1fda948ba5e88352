"""Names of switches and HCAs as the fabric series label them (the fabric contract, issue 19).

A switch is named by, in order: the plan (by GUID, then by node description); the name inside a
Mellanox/NVIDIA default description (``MF0;leaf-r01:MQM8700/U1`` -> ``leaf-r01``); its description
when no other switch shares it; else ``sw-<guid>``. An HCA is ``<host> <hca>`` from the plan's
override map or from its description (``gpu-001 mlx5_0``, the form the mlx5 driver writes from
the host name), and ``ca-<guid>`` when its description is not ``<host> <device>`` or is shared by
several HCAs (a vendor default such as "MT25408 ConnectX Mellanox Technologies" names no host).
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from exporter.fabric.plan import Plan
from exporter.fabric.topology import CA, SWITCH, Fabric, tier_name

_MELLANOX_DEFAULT = re.compile(r"^MF0;([^:]+):")
# "<host> <device>": what the mlx5/mlx4/hfi1 drivers write (``gpu-001 mlx5_0``, older ``node018 HCA-1``).
_HOST_DEVICE = re.compile(r"^(\S+) ([a-z][a-z0-9]*_[0-9]+|HCA-[0-9]+)$")


@dataclass(frozen=True)
class SwitchName:
    name: str
    tier: str
    rack: str


@dataclass(frozen=True)
class HcaName:
    peer: str  # "<host> <hca>" or "ca-<guid>"
    node: str  # the host, "" when the HCA names none


def name_switches(fabric: Fabric, plan: Plan) -> dict[str, SwitchName]:
    shared = Counter(node.description for node in fabric.nodes.values() if node.kind == SWITCH)
    tiers = fabric.tiers()
    names = {}
    for node in fabric.switches():
        entry = plan.switches_by_guid.get(node.guid) or plan.switches_by_description.get(node.description)
        default = _MELLANOX_DEFAULT.match(node.description)
        if entry is not None:
            name = entry.name
        elif default:
            name = default.group(1).strip()
        elif node.description and shared[node.description] == 1:
            name = node.description
        else:
            name = f"sw-{node.guid}"
        tier = (entry.tier if entry and entry.tier else "") or tier_name(tiers[node.guid])
        names[node.guid] = SwitchName(name, tier, entry.rack if entry else "")
    return names


def name_hcas(fabric: Fabric, plan: Plan) -> dict[str, HcaName]:
    shared = Counter(node.description for node in fabric.nodes.values() if node.kind == CA)
    names = {}
    for node in fabric.nodes.values():
        if node.kind != CA:
            continue
        override = plan.hcas_by_guid.get(node.guid)
        host_device = _HOST_DEVICE.match(node.description)
        if override is not None:
            host, hca = override
        elif host_device and shared[node.description] == 1:
            host, hca = host_device.groups()
        else:
            names[node.guid] = HcaName(f"ca-{node.guid}", "")
            continue
        names[node.guid] = HcaName(f"{host} {hca}", host)
    return names
