"""The simulated InfiniBand fabric: a fat-tree of NDR switches and the tools that read it.

Shape (docs/operations.md, "The simulated fabric"): one leaf switch per rack (more when a rack's
HCA ports exceed half a leaf's radix), each leaf with as many uplinks as cabled hosts (non-blocking),
leaves grouped in pods of up to ``RADIX/2`` with one spine per leaf uplink in each pod, and a core
tier only when there is more than one pod, as a real fat-tree is built. Every host port
(``ib_ports`` per node, ``mlx5_0``...) is one host cable. 140 nodes x 4 HCA ports: 18 leaves,
32 spines, 1,120 cables; 16,384 nodes x 1: 2,048 leaves, 512 spines, 256 cores, 49,152 cables.

``SimFabricRunner`` answers ``ibnetdiscover``, ``iblinkinfo`` and ``perfquery -x -l -G`` with text
in the real tools' formats, generated from each port's live counters, so the collector's parsers
are the ones that read a real fabric. Counters move lazily, when a port is read.
"""
from __future__ import annotations

import math
import threading
import zlib
from dataclasses import dataclass, field
from typing import Any, Callable

from exporter.fabric.runner import ToolError, ToolResult, check_argv
from exporter.fabric.topology import LANE_RATES, speed_name
from simulator.topology import NodeSpec

RADIX = 64
WIDTH = 4
LANE_RATE = LANE_RATES["NDR"]
COUNTER_NAMES = ("SymbolErrorCounter", "LinkErrorRecoveryCounter", "LinkDownedCounter", "PortRcvErrors",
                 "PortRcvRemotePhysicalErrors", "PortRcvSwitchRelayErrors", "PortXmitDiscards",
                 "PortXmitConstraintErrors", "PortRcvConstraintErrors", "LocalLinkIntegrityErrors",
                 "ExcessiveBufferOverrunErrors", "VL15Dropped", "PortXmitWait")
FLAP_DOWN_FRACTION = 0.5  # as the host side's ib_flapping: down the first half of each period


@dataclass
class CableFaults:
    """What active faults do to one cable (rebuilt from the fault book whenever it changes)."""

    flapping: tuple[float, float] | None = None  # (start, period)
    down: bool = False  # the cable does not train at all
    symbol_errors_per_minute: float = 0.0
    width: int = WIDTH
    lane_rate: float = LANE_RATE


@dataclass
class SimPort:
    guid: str  # the node's GUID
    number: int
    lid: int
    cable: "Cable | None" = None
    counters: dict[str, float] = field(default_factory=lambda: dict.fromkeys(COUNTER_NAMES, 0.0))
    data_words: float = 0.0
    packets: float = 0.0
    updated_at: float = 0.0
    was_up: bool = True


@dataclass
class Cable:
    a: SimPort
    b: SimPort
    traffic: float  # share of the line rate in use, fixed per cable
    faults: CableFaults = field(default_factory=CableFaults)

    def other(self, port: SimPort) -> SimPort:
        return self.b if port is self.a else self.a

    def up(self, now: float) -> bool:
        if self.faults.down:
            return False
        if self.faults.flapping is None:
            return True
        start, period = self.faults.flapping
        return (now - start) % period >= period * FLAP_DOWN_FRACTION


@dataclass
class SimSwitch:
    name: str
    guid: str
    tier: str
    rack: str
    lid: int
    ports: dict[int, SimPort] = field(default_factory=dict)

    @property
    def description(self) -> str:
        return f"MF0;{self.name}:MQM9700/U1"


@dataclass
class SimHca:
    node: str
    device: str
    index: int  # the node's port number, 1-based, as faults name it
    guid: str
    port_guid: str
    port: SimPort

    @property
    def description(self) -> str:
        return f"{self.node} {self.device}"


def leaf_groups(topology: list[NodeSpec], hcas_per_node: int | None = None
                ) -> list[tuple[str, str, list[tuple[NodeSpec, int]]]]:
    """(leaf name, rack, the host ports it cables) for each leaf: a rack's ports, half a radix a leaf."""
    half = RADIX // 2
    racks: dict[str, list[NodeSpec]] = {}
    for spec in topology:
        racks.setdefault(spec.rack, []).append(spec)
    groups = []
    for rack, specs in racks.items():
        ports = [(spec, index) for spec in specs for index in range(1, (hcas_per_node or spec.ib_ports) + 1)]
        chunks = [ports[i:i + half] for i in range(0, len(ports), half)]
        for number, chunk in enumerate(chunks, 1):
            suffix = f"-{number}" if len(chunks) > 1 else ""
            groups.append((f"leaf-r{rack.rsplit('-', 1)[-1]}{suffix}", rack, chunk))
    return groups


def leaf_uplinks(topology: list[NodeSpec]) -> dict[str, int]:
    """Each node's leaf's uplink count (as many as it cables hosts: non-blocking); cheap, no fabric built."""
    counts: dict[str, int] = {}
    for _, _, chunk in leaf_groups(topology):
        for spec, _ in chunk:
            counts.setdefault(spec.name, len(chunk))
    return counts


class FatTree:
    """The fabric of a fleet; ``lock`` guards counters (the fleet's lock is held around it too)."""

    def __init__(self, topology: list[NodeSpec], hcas_per_node: int | None = None, seed: int = 0) -> None:
        self.seed = seed
        self.lock = threading.RLock()
        self.switches: list[SimSwitch] = []
        self.hcas: dict[tuple[str, int], SimHca] = {}
        self.cables: list[Cable] = []
        self.leaf_of: dict[str, SimSwitch] = {}
        self.uplinks: dict[str, list[Cable]] = {}  # leaf name -> its uplink cables, in port order
        self._next_lid = 1
        self._build(topology, hcas_per_node)

    # ---- building ------------------------------------------------------------------------------

    def _lid(self) -> int:
        lid, self._next_lid = self._next_lid, self._next_lid + 1
        return lid

    def _switch(self, name: str, tier: str, rack: str) -> SimSwitch:
        switch = SimSwitch(name, f"{0xfc6a1c0300000000 + len(self.switches) * 2:016x}", tier, rack, self._lid())
        self.switches.append(switch)
        return switch

    def _cable(self, a: SimPort, b: SimPort) -> Cable:
        share = 0.2 + (zlib.crc32(f"{self.seed}:{a.guid}:{a.number}".encode()) % 1000) / 2000
        cable = Cable(a, b, share)
        a.cable = b.cable = cable
        self.cables.append(cable)
        return cable

    def _build(self, topology: list[NodeSpec], hcas_per_node: int | None) -> None:
        half = RADIX // 2
        leaves: list[SimSwitch] = []
        for name, rack, chunk in leaf_groups(topology, hcas_per_node):
            leaf = self._switch(name, "leaf", rack)
            leaves.append(leaf)
            for port_number, (spec, index) in enumerate(chunk, 1):
                self._host_cable(leaf, port_number, spec, index)
        pods = [leaves[i:i + half] for i in range(0, len(leaves), half)]
        spines: list[tuple[SimSwitch, int]] = []  # (spine, ports used downward)
        for pod in pods:
            uplinks = max(len(leaf.ports) for leaf in pod)
            pod_spines = [self._switch(f"spine-{len(self.switches) - len(leaves) + 1:02d}", "spine", "")
                          for _ in range(uplinks)]
            for leaf_index, leaf in enumerate(pod):
                self.uplinks[leaf.name] = []
                for j in range(len(leaf.ports)):
                    spine = pod_spines[j]
                    down = self._port(spine, leaf_index + 1)
                    up = self._port(leaf, half + j + 1)
                    self.uplinks[leaf.name].append(self._cable(up, down))
            spines.extend((spine, len(pod)) for spine in pod_spines)
        if len(pods) > 1:
            cores: list[SimSwitch] = []
            slot = 0
            for spine, used in spines:
                for k in range(used):
                    if slot // RADIX >= len(cores):
                        cores.append(self._switch(f"core-{len(cores) + 1:02d}", "core", ""))
                    core = cores[slot // RADIX]
                    self._cable(self._port(spine, half + k + 1), self._port(core, slot % RADIX + 1))
                    slot += 1

    def _port(self, switch: SimSwitch, number: int) -> SimPort:
        port = switch.ports[number] = SimPort(switch.guid, number, switch.lid)
        return port

    def _host_cable(self, leaf: SimSwitch, port_number: int, spec: NodeSpec, index: int) -> None:
        guid = f"{0x9c63c00300000000 + (spec.index * 16 + index) * 2:016x}"
        port_guid = f"{int(guid, 16) + 1:016x}"
        hca_port = SimPort(guid, 1, self._lid())
        self.hcas[(spec.name, index)] = SimHca(spec.name, f"mlx5_{index - 1}", index, guid, port_guid, hca_port)
        self.leaf_of.setdefault(spec.name, leaf)
        self._cable(self._port(leaf, port_number), hca_port)

    # ---- faults and counters -------------------------------------------------------------------

    def host_cable(self, node: str, port: int) -> Cable:
        return self.hcas[(node, port)].port.cable  # type: ignore[return-value]

    def leaf_cables(self, node: str) -> list[Cable]:
        leaf = self.leaf_of[node]
        return [leaf.ports[number].cable for number in sorted(leaf.ports)]  # type: ignore[misc]

    def set_faults(self, conditions: dict[int, CableFaults], now: float) -> None:
        """Replace every cable's fault conditions (keyed by ``id(cable)``), bringing counters to now first."""
        with self.lock:
            for cable in self.cables:
                new = conditions.get(id(cable), CableFaults())
                if new != cable.faults:
                    self.advance(cable.a, now)
                    self.advance(cable.b, now)
                    cable.faults = new

    def advance(self, port: SimPort, now: float) -> None:
        """Move one port's counters to ``now`` (data with its cable's traffic, errors with its faults)."""
        cable = port.cable
        dt = now - port.updated_at if port.updated_at else 0.0
        port.updated_at = now
        if cable is None or dt <= 0:
            return
        faults = cable.faults
        up = cable.up(now)
        if faults.flapping is not None:
            start, period = faults.flapping
            cycles = math.floor((now - start) / period) - math.floor((now - dt - start) / period)
            if now - dt <= start:
                cycles = math.floor((now - start) / period) + 1
            port.counters["LinkDownedCounter"] += max(0, cycles)
            port.counters["LinkErrorRecoveryCounter"] += max(0, cycles)
        if faults.down and port.was_up:
            port.counters["LinkDownedCounter"] += 1  # it went down once and stays down
        if faults.symbol_errors_per_minute:
            port.counters["SymbolErrorCounter"] += faults.symbol_errors_per_minute * dt / 60
            port.counters["PortRcvErrors"] += faults.symbol_errors_per_minute * dt / 600
        if up:
            words = dt * faults.width * faults.lane_rate * cable.traffic / 8 / 4
            port.data_words += words
            port.packets += words / 1024
        port.was_up = up

    # ---- the tools' output ---------------------------------------------------------------------

    def ibnetdiscover(self, now: float) -> str:
        lines = ["#", "# Topology file: generated by the ClusterWatch simulator", "#", ""]
        for switch in self.switches:
            lines += ["vendid=0x2c9", "devid=0xd2f0", f"sysimgguid=0x{switch.guid}",
                      f"switchguid=0x{switch.guid}({switch.guid})",
                      f'Switch\t{RADIX} "S-{switch.guid}"\t\t# "{switch.description}" enhanced port 0 lid {switch.lid} lmc 0']
            for number in sorted(switch.ports):
                port = switch.ports[number]
                cable = port.cable
                if cable is None or not cable.up(now):
                    continue
                peer = cable.other(port)
                speed = f"{cable.faults.width}x{speed_name(cable.faults.lane_rate)}"
                peer_switch = self._switch_of(peer)
                if peer_switch is not None:
                    lines.append(f'[{number}]\t"S-{peer.guid}"[{peer.number}]\t\t# "{peer_switch.description}" '
                                 f"lid {peer_switch.lid} {speed}")
                else:
                    hca = self._hca_of(peer)
                    lines.append(f'[{number}]\t"H-{peer.guid}"[1]({hca.port_guid}) \t\t# "{hca.description}" '
                                 f"lid {peer.lid} {speed}")
            lines.append("")
        for hca in self.hcas.values():
            cable = hca.port.cable
            lines += ["vendid=0x2c9", "devid=0x1021", f"sysimgguid=0x{hca.guid}", f"caguid=0x{hca.guid}",
                      f'Ca\t1 "H-{hca.guid}"\t\t# "{hca.description}"']
            if cable is not None and cable.up(now):
                leaf_port = cable.other(hca.port)
                leaf = self._switch_of(leaf_port)
                speed = f"{cable.faults.width}x{speed_name(cable.faults.lane_rate)}"
                lines.append(f'[1]({hca.port_guid}) \t"S-{leaf_port.guid}"[{leaf_port.number}]\t\t# lid {hca.port.lid} '
                             f'lmc 0 "{leaf.description}" lid {leaf.lid} {speed}')  # type: ignore[union-attr]
            lines.append("")
        return "\n".join(lines) + "\n"

    def iblinkinfo(self, now: float) -> str:
        lines = []
        for switch in self.switches:
            lines.append(f"Switch: 0x{switch.guid} {switch.description}:")
            for number in sorted(switch.ports):
                lines.append(f"          {self._link_line(switch.ports[number], switch.lid, now)}")
        for hca in self.hcas.values():
            lines.append(f"CA: {hca.description}:")
            lines.append(f"      0x{hca.port_guid} {self._link_line(hca.port, hca.port.lid, now)}")
        return "\n".join(lines) + "\n"

    def _link_line(self, port: SimPort, lid: int, now: float) -> str:
        cable = port.cable
        if cable is None or not cable.up(now):
            return f'{lid:6d} {port.number:4d}[  ] ==(                Down/ Polling)==>             [  ] "" ( )'
        peer = cable.other(port)
        peer_switch = self._switch_of(peer)
        description = peer_switch.description if peer_switch else self._hca_of(peer).description
        faults = cable.faults
        could_width = f"Could be {WIDTH}X" if faults.width < WIDTH else ""
        could_speed = f"Could be {LANE_RATE / 1e9:g} Gbps" if faults.lane_rate < LANE_RATE else ""
        speed = f"{faults.lane_rate / 1e9:g} Gbps"
        return (f"{lid:6d} {port.number:4d}[  ] ==({str(faults.width) + 'X':>3} {speed:>18} Active/  LinkUp)==>  "
                f"{peer.lid:6d} {peer.number:4d}[  ] \"{description}\" ({could_width} {could_speed})")

    def perfquery(self, guid: str, ports: list[int], now: float) -> str:
        switch = self._by_guid().get(guid)
        if switch is None:
            raise ToolError("perfquery", f"ibwarn: [1] mad_rpc: _do_madrpc failed; dport (Guid 0x{guid})")
        lines = []
        with self.lock:
            for number in ports:
                port = switch.ports.get(number) if isinstance(switch, SimSwitch) else switch.port
                if port is None:
                    continue
                self.advance(port, now)
                lines.append(f"# Port extended counters: Lid {port.lid} port {number} (CapMask: 0x5A00 CapMask2: 0x0000002)")
                lines += _field("PortSelect", number), _field("CounterSelect", "0x0000")
                lines += (_field("PortXmitData", int(port.data_words)), _field("PortRcvData", int(port.data_words)),
                          _field("PortXmitPkts", int(port.packets)), _field("PortRcvPkts", int(port.packets)),
                          _field("PortUnicastXmitPkts", int(port.packets)), _field("PortUnicastRcvPkts", int(port.packets)),
                          _field("PortMulticastXmitPkts", 0), _field("PortMulticastRcvPkts", 0),
                          _field("CounterSelect2", "0x00000000"))
                lines += [_field(name, int(port.counters[name])) for name in COUNTER_NAMES]
                lines.append(_field("QP1Dropped", 0))
        return "\n".join(lines) + "\n"

    def _by_guid(self) -> dict[str, Any]:
        index = getattr(self, "_guid_index", None)
        if index is None:
            index = {switch.guid: switch for switch in self.switches}
            index.update({hca.port_guid: hca for hca in self.hcas.values()})
            self._guid_index = index
        return index

    def _switch_of(self, port: SimPort) -> SimSwitch | None:
        found = self._by_guid().get(port.guid)
        return found if isinstance(found, SimSwitch) else None

    def _hca_of(self, port: SimPort) -> SimHca:
        return self._by_guid()[f"{int(port.guid, 16) + 1:016x}"]

    def port_counters(self, cable: Cable, now: float) -> tuple[dict[str, float], dict[str, float]]:
        """Both ends' counters of a cable at ``now`` (tests compare the collector against these)."""
        with self.lock:
            self.advance(cable.a, now)
            self.advance(cable.b, now)
            return dict(cable.a.counters), dict(cable.b.counters)


def _field(name: str, value: object) -> str:
    return f"{name}:{'.' * max(1, 33 - len(name) - 1)}{value}"


class SimFabricRunner:
    """The tool runner over a fat-tree: the argv the collector builds, answered in the tools' text."""

    def __init__(self, fabric: FatTree, now: Callable[[], float], lock: Any = None) -> None:
        self.fabric, self.now = fabric, now
        self.lock = lock if lock is not None else threading.RLock()

    def run(self, argv: list[str], timeout: float, max_bytes: int) -> ToolResult:
        check_argv(argv)
        args = [arg for arg in argv[1:]]
        if "-C" in args:
            position = args.index("-C")
            del args[position:position + 2]
        with self.lock:
            now = self.now()
            if argv[0] == "ibnetdiscover" and not args:
                text = self.fabric.ibnetdiscover(now)
            elif argv[0] == "iblinkinfo" and not args:
                text = self.fabric.iblinkinfo(now)
            elif argv[0] == "perfquery" and len(args) == 5 and args[:3] == ["-x", "-l", "-G"]:
                text = self.fabric.perfquery(args[3][2:].lower().rjust(16, "0"),
                                             [int(port) for port in args[4].split(",")], now)
            else:
                raise ToolError(argv[0], f"the simulator does not answer {' '.join(argv)!r}")
        if len(text) > max_bytes:
            raise ToolError(argv[0], f"output over {max_bytes} bytes")
        return ToolResult(text)
