"""Parser of ``perfquery -x`` output: the extended PortCounters of one or more ports.

The format (infiniband-diags' perfquery, one block per port with ``-l`` or a port list)::

    # Port extended counters: Lid 1719 port 1 (CapMask: 0x5300 CapMask2: 0x0000002)
    PortSelect:......................1
    PortXmitData:....................36298026860928
    SymbolErrorCounter:..............0

With CapMask2's extended counters (every switch and HCA from ConnectX-4/Switch-IB on) the error
counters come in the same block as the 64-bit data counters, so one call reads a switch's ports.
Data counters count 4-byte words; the table says which to multiply.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from exporter.fabric.topology import Malformed

# perfquery field -> (the fabric_link_* counter it feeds, multiplier)
COUNTERS = {
    "SymbolErrorCounter": ("symbol_errors", 1),
    "LinkErrorRecoveryCounter": ("error_recovery", 1),
    "LinkDownedCounter": ("downed", 1),
    "PortRcvErrors": ("receive_errors", 1),
    "PortRcvRemotePhysicalErrors": ("receive_remote_physical_errors", 1),
    "PortRcvSwitchRelayErrors": ("receive_switch_relay_errors", 1),
    "PortXmitDiscards": ("transmit_discards", 1),
    "PortXmitConstraintErrors": ("transmit_constraint_errors", 1),
    "PortRcvConstraintErrors": ("receive_constraint_errors", 1),
    "LocalLinkIntegrityErrors": ("integrity_errors", 1),
    "ExcessiveBufferOverrunErrors": ("buffer_overrun_errors", 1),
    "VL15Dropped": ("vl15_dropped", 1),
    "PortXmitWait": ("transmit_wait", 1),
    "PortXmitData": ("transmit_bytes", 4),
    "PortRcvData": ("receive_bytes", 4),
    "PortXmitPkts": ("transmit_packets", 1),
    "PortRcvPkts": ("receive_packets", 1),
}
_HEADER = re.compile(r"^# Port (?:extended )?counters: Lid (\d+) port (\d+|ALL)\b")
_FIELD = re.compile(r"^(\w+):\.+\s*(\S+)$")


@dataclass
class PortCounters:
    ports: dict[int, dict[str, float]] = field(default_factory=dict)  # port -> counter -> value
    malformed: list[Malformed] = field(default_factory=list)


def parse(text: str) -> PortCounters:
    result = PortCounters()
    current: dict[str, float] | None = None
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        header = _HEADER.match(line)
        if header:
            port = header.group(2)
            current = None if port == "ALL" else result.ports.setdefault(int(port), {})
            continue
        if line.startswith(("#", "ibwarn:")):
            continue
        match = _FIELD.match(line)
        if match is None:
            result.malformed.append(Malformed(number, raw, "not a 'Name:....value' counter line"))
            continue
        name, value = match.groups()
        entry = COUNTERS.get(name)
        if entry is None or current is None:
            continue  # PortSelect, CounterSelect, multicast and unicast counts; or the ALL sum
        try:
            current[entry[0]] = int(value, 0) * entry[1]
        except ValueError:
            result.malformed.append(Malformed(number, raw, f"{name}: not an integer"))
    return result
