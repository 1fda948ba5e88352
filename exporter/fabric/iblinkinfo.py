"""Parser of ``iblinkinfo``'s default output: every port's state, active and possible width and speed.

The format, as iblinkinfo.c's print_port/print_node_header write it (rdma-core)::

    Switch: 0x0002c902004827b0 MF0;leaf-r01:MQM8700/U1:
               13    1[  ] ==( 4X      53.125 Gbps Active/  LinkUp)==>      75    1[  ] "gpu-001 mlx5_0" ( )
               13    2[  ] ==( 2X      53.125 Gbps Active/  LinkUp)==>      76    1[  ] "gpu-002 mlx5_0" (Could be 4X )
               13    5[  ] ==(                Down/ Polling)==>             [  ] "" ( )
    CA: gpu-001 mlx5_0:
          0x0002c90300048289     75    1[  ] ==( 4X      53.125 Gbps Active/  LinkUp)==>      13    1[  ] "..." ( )

A switch's ports are keyed by the switch's GUID (the header's port-0 GUID, the node GUID on every
switch seen), a CA's by the port GUID its line starts with. ``Could be`` names what both ends
support beyond what is active: width and speed the link should have come up at.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from exporter.fabric.ibnetdiscover import guid_of
from exporter.fabric.topology import Malformed

PORT_STATES = {"Down": 1, "Initialize": 2, "Init": 2, "Armed": 3, "Active": 4, "ActDefer": 5}
PHYS_STATES = {"Sleep": 1, "Polling": 2, "Disabled": 3, "PortConfigurationTraining": 4, "LinkUp": 5,
               "LinkErrorRecovery": 6, "PhyTest": 7}

_SWITCH = re.compile(r"^Switch: 0x([0-9a-fA-F]{1,16}) (.*):$")
_CA = re.compile(r"^(?:CA|Router): (.*):$")
_PORT = re.compile(
    r"^(?:0x([0-9a-fA-F]{1,16})\s+)?(\d+)\s+(\d+)\[[^\]]*\]\s+==\(\s*"
    r"(?:(\d+)X\s+([0-9.]+) Gbps(?: \((FDR10)\))?\s+)?(\w+)/\s*(\w+)\)(?:\s*\([^)]*\))?==>(.*)$")
_COULD_WIDTH = re.compile(r"Could be (\d+)X")
_COULD_SPEED = re.compile(r"Could be ([0-9.]+) Gbps")
FDR10_RATE = 10.3125e9


@dataclass
class PortLink:
    state: int
    physical_state: int
    width: int = 0
    lane_rate: float = 0.0
    capable_width: int = 0
    capable_lane_rate: float = 0.0


@dataclass
class LinkInfo:
    switch_ports: dict[tuple[str, int], PortLink] = field(default_factory=dict)  # (switch GUID, port)
    ca_ports: dict[tuple[str, int], PortLink] = field(default_factory=dict)  # (port GUID, port)
    malformed: list[Malformed] = field(default_factory=list)


def parse(text: str) -> LinkInfo:
    info = LinkInfo()
    switch: str | None = None
    in_ca = False
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        header = _SWITCH.match(line)
        if header:
            switch, in_ca = guid_of(header.group(1)), False
            continue
        if _CA.match(line):
            switch, in_ca = None, True
            continue
        match = _PORT.match(line)
        if match is None:
            info.malformed.append(Malformed(number, raw, "not a node header or port line"))
            continue
        port_guid, _lid, port, width, speed, fdr10, state, phys, rest = match.groups()
        if state not in PORT_STATES or phys not in PHYS_STATES:
            info.malformed.append(Malformed(number, raw, f"unknown port state {state}/{phys}"))
            continue
        link = PortLink(PORT_STATES[state], PHYS_STATES[phys])
        if width:
            link.width = int(width)
            link.lane_rate = FDR10_RATE if fdr10 else float(speed) * 1e9
        could_width, could_speed = _COULD_WIDTH.search(rest), _COULD_SPEED.search(rest)
        link.capable_width = int(could_width.group(1)) if could_width else link.width
        link.capable_lane_rate = float(could_speed.group(1)) * 1e9 if could_speed else link.lane_rate
        if switch is not None and not port_guid:
            info.switch_ports[(switch, int(port))] = link
        elif in_ca and port_guid:
            info.ca_ports[(guid_of(port_guid), int(port))] = link
        else:
            info.malformed.append(Malformed(number, raw, "a port line outside any node"))
    return info
