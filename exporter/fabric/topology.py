"""The fabric model: switches and HCAs by GUID, their ports, and the links (cables) between them.

One model for every source: ``ibnetdiscover`` output, a site's YAML cabling plan, or the
simulator's fat-tree all become a ``Fabric``, so naming, tiering and the collector see one shape.
A line a parser could not read becomes a ``Malformed`` with its line number, never an exception.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

SWITCH = "switch"
CA = "ca"
ROUTER = "router"

# Per-lane signalling rate of each IBA speed name, bits per second (IBA 1.5 / 1.7 tables).
LANE_RATES = {
    "SDR": 2.5e9, "DDR": 5e9, "QDR": 10e9, "FDR10": 10.3125e9, "FDR": 14.0625e9,
    "EDR": 25.78125e9, "HDR": 53.125e9, "NDR": 106.25e9, "XDR": 212.5e9,
}
WIDTHS = (1, 2, 4, 8, 12)


def speed_name(lane_rate: float) -> str:
    """The IBA speed name of a per-lane rate (``53.125e9`` -> ``HDR``); "" when none matches."""
    for name, rate in LANE_RATES.items():
        if abs(rate - lane_rate) < 1e6:
            return name
    return ""


@dataclass
class Node:
    """A switch, HCA or router: ``guid`` is its node GUID as 16 hex digits, no ``0x``."""

    guid: str
    kind: str
    ports: int
    description: str
    lid: int = 0  # a switch's LID (port 0); HCAs have one per port


@dataclass(frozen=True)
class End:
    guid: str  # node GUID
    port: int


@dataclass
class Link:
    """One cable: two ends, with the active width and lane rate its discovery reported."""

    a: End
    b: End
    width: int = 0
    lane_rate: float = 0.0

    def key(self) -> frozenset[End]:
        return frozenset((self.a, self.b))


@dataclass(frozen=True)
class Malformed:
    line: int
    text: str
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}: {self.text[:120]!r}"


@dataclass
class Fabric:
    nodes: dict[str, Node] = field(default_factory=dict)
    links: dict[frozenset[End], Link] = field(default_factory=dict)
    port_lids: dict[End, int] = field(default_factory=dict)  # an HCA port's LID
    port_guids: dict[End, str] = field(default_factory=dict)  # an HCA port's port GUID
    malformed: list[Malformed] = field(default_factory=list)

    def add_link(self, link: Link) -> None:
        """Add a cable once; seen again from its other end, fill what the first sighting lacked."""
        known = self.links.get(link.key())
        if known is None:
            self.links[link.key()] = link
        else:
            known.width = known.width or link.width
            known.lane_rate = known.lane_rate or link.lane_rate

    def switches(self) -> list[Node]:
        return [node for node in self.nodes.values() if node.kind == SWITCH]

    def tiers(self) -> dict[str, int]:
        """Each switch's distance in switch hops from the nearest HCA: 1 leaf, 2 spine, 3+ core.

        A switch with no HCA anywhere below it (an isolated one) counts as core.
        """
        neighbours: dict[str, set[str]] = {guid: set() for guid in self.nodes}
        for link in self.links.values():
            if link.a.guid in neighbours and link.b.guid in neighbours:
                neighbours[link.a.guid].add(link.b.guid)
                neighbours[link.b.guid].add(link.a.guid)
        distance = {guid: 0 for guid, node in self.nodes.items() if node.kind != SWITCH}
        queue = deque(distance)
        while queue:
            guid = queue.popleft()
            for other in neighbours[guid]:
                if other not in distance and self.nodes[other].kind == SWITCH:
                    distance[other] = distance[guid] + 1
                    queue.append(other)
        return {node.guid: distance.get(node.guid, 3) for node in self.switches()}


def tier_name(level: int) -> str:
    return "leaf" if level <= 1 else "spine" if level == 2 else "core"
