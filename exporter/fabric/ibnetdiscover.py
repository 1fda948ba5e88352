"""Parser of ``ibnetdiscover``'s topology file (infiniband-diags), the fabric as the SM sees it.

The format, as ibnetdiscover.c prints it::

    vendid=0x2c9                                          (header lines of each node: skipped)
    switchguid=0xec0d9a0300ec8240(ec0d9a0300ec8240)
    Switch  36 "S-ec0d9a0300ec8240"  # "MF0;leaf-r01:MQM8700/U1" enhanced port 0 lid 48 lmc 0
    [1]     "H-506b4b03003fa9b6"[1](506b4b03003fa9b6)  # "gpu-001 mlx5_0" lid 67 4xHDR
    [13]    "S-ec0d9a0300ec81e0"[19]  # "MF0;spine-01:MQM8700/U1" lid 21 4xHDR

    Ca      1 "H-506b4b03003fa9b6"  # "gpu-001 mlx5_0"
    [1](506b4b03003fa9b7)  "S-ec0d9a0300ec8240"[1]  # lid 67 lmc 0 "MF0;leaf-r01:..." lid 48 4xHDR

Each cable is printed from both ends; it becomes one ``Link``. A line that fits none of these is
recorded as ``Malformed`` with its number and skipped: one bad line never loses the rest.
"""
from __future__ import annotations

import re

from exporter.fabric.topology import CA, LANE_RATES, ROUTER, SWITCH, End, Fabric, Link, Malformed, Node

_KINDS = {"Switch": SWITCH, "Ca": CA, "Rt": ROUTER}
_NODE = re.compile(r'^(Switch|Ca|Rt)\s+(\d+)\s+"[SHR]-([0-9a-fA-F]{1,16})"\s*#\s*"((?:[^"\\]|\\.)*)"(.*)$')
_PORT = re.compile(
    r'^\[(\d+)\](?:\[ext \d+\])?(?:\(([0-9a-fA-F]{1,16})\))?\s+'     # local port, (its port GUID on a CA)
    r'"[SHR]-([0-9a-fA-F]{1,16})"\[(\d+)\](?:\[ext \d+\])?(?:\(([0-9a-fA-F]{1,16})\))?'  # peer, its port
    r'\s*#\s*(.*)$')
_LID = re.compile(r"\blid (\d+)")
_WIDTH_SPEED = re.compile(r"\b(\d+)x([A-Z]+[0-9]*)\s*$")
_SKIPPED = ("vendid=", "devid=", "sysimgguid=", "switchguid=", "caguid=", "routerguid=", "#")
MAX_PORT = 255  # PortNum is 8 bits


def guid_of(raw: str) -> str:
    """A GUID as 16 lower-case hex digits, however ibnetdiscover or a user wrote it."""
    raw = raw.lower()
    return (raw[2:] if raw.startswith("0x") else raw).rjust(16, "0")


def parse(text: str) -> Fabric:
    fabric = Fabric()
    current: Node | None = None
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(_SKIPPED):
            if not line:
                current = None
            continue
        node = _NODE.match(line)
        if node:
            current = _node(fabric, node)
            continue
        port = _PORT.match(line)
        if port is None:
            fabric.malformed.append(Malformed(number, raw, "not a node, port or header line"))
            continue
        if current is None:
            fabric.malformed.append(Malformed(number, raw, "a port line outside any node"))
            continue
        problem = _port(fabric, current, port)
        if problem:
            fabric.malformed.append(Malformed(number, raw, problem))
    return fabric


def _node(fabric: Fabric, match: re.Match[str]) -> Node:
    kind, ports, guid, description, rest = match.groups()
    lid = _LID.search(rest)
    node = Node(guid_of(guid), _KINDS[kind], int(ports), description.replace('\\"', '"').strip(),
                int(lid.group(1)) if lid and kind == "Switch" else 0)
    fabric.nodes[node.guid] = node
    return node


def _port(fabric: Fabric, node: Node, match: re.Match[str]) -> str | None:
    local, local_port_guid, peer, peer_port, peer_port_guid, comment = match.groups()
    local_port, remote_port = int(local), int(peer_port)
    if not (0 < local_port <= MAX_PORT and 0 < remote_port <= MAX_PORT):
        return "port number out of range 1-255"
    here, there = End(node.guid, local_port), End(guid_of(peer), remote_port)
    width, lane_rate = 0, 0.0
    found = _WIDTH_SPEED.search(comment)
    if found:
        width, speed = int(found.group(1)), found.group(2)
        if speed not in LANE_RATES:
            return f"unknown link speed {speed!r}"
        lane_rate = LANE_RATES[speed]
    # On a CA's line the comment starts with its own port's LID, then the peer's description and LID.
    lids = [int(value) for value in _LID.findall(comment)]
    if node.kind != SWITCH and lids:
        fabric.port_lids[here] = lids[0]
    if local_port_guid:
        fabric.port_guids[here] = guid_of(local_port_guid)
    if peer_port_guid:
        fabric.port_guids[there] = guid_of(peer_port_guid)
        if lids:
            fabric.port_lids.setdefault(there, lids[-1])
    fabric.add_link(Link(here, there, width, lane_rate))
    return None
