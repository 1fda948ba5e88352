"""The NVIDIA driver's (NVRM) lines in the kernel log that name XIDs and GPUs, by PCI bus id.

The driver reports every XID in the kernel log, whatever listens on NVML, e.g. (driver 535)::

    NVRM: GPU at PCI:0000:a1:00: GPU-979426f2-893a-7cbb-c4cf-81472f89a462
    NVRM: Xid (PCI:0000:a1:00): 79, pid='<unknown>', name=<unknown>, GPU has fallen off the bus.

What follows the code varies with the driver version and the error (``pid=1234, name=python,``;
``pid=11461, Ch 00000053``; no pid at all in older drivers; free text that may itself say
"caused by previous Xid 149"), so only the bus id and the number right after ``): `` are read.
The "GPU at PCI" line comes with a GPU's first XID since the driver loaded and names its uuid:
it is how an XID is attributed to a GPU that NVML no longer enumerates (fallen off the bus).

Bus ids are ``domain:bus:device``; the kernel log prints ``0000:3b:00`` (lower case, the
domain as 4 hex digits or more), NVML ``00000000:3B:00.0``. ``pci_key`` reads both into numbers.
The fixtures in ``tests/fixtures/kmsg`` are lines from real drivers, with their sources.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

PciKey = tuple[int, int, int]  # (domain, bus, device)

MAX_XID = 2**32 - 1  # the driver's XID is an unsigned 32-bit number

_PCI = r"(?:PCI:)?[0-9A-Fa-f]{1,8}:[0-9A-Fa-f]{1,2}:[0-9A-Fa-f]{1,2}(?:\.[0-7])?"
_PCI_PARTS = re.compile(r"(?:PCI:)?([0-9A-Fa-f]{1,8}):([0-9A-Fa-f]{1,2}):([0-9A-Fa-f]{1,2})(?:\.[0-7])?")
XID_PREFIX = "NVRM: Xid "
_XID = re.compile(rf"NVRM: Xid \(({_PCI})\): ([0-9]{{1,12}})(?=[,.;:\s]|$)")
_GPU = re.compile(rf"NVRM: GPU at ({_PCI}): (GPU-[0-9A-Fa-f]{{8}}-[0-9A-Fa-f]{{4}}-[0-9A-Fa-f]{{4}}-[0-9A-Fa-f]{{4}}-[0-9A-Fa-f]{{12}})\s*$")


@dataclass(frozen=True)
class XidLine:
    pci: PciKey
    xid: int


@dataclass(frozen=True)
class GpuLine:
    pci: PciKey
    uuid: str


class MalformedLine(ValueError):
    """A line that starts like an XID report but cannot be read as one."""


def pci_key(text: str) -> PciKey | None:
    """(domain, bus, device) of a PCI bus id as NVML or the kernel log writes it; None if it is not one."""
    match = _PCI_PARTS.fullmatch(text.strip())
    if match is None:
        return None
    domain, bus, device = (int(part, 16) for part in match.groups())
    return domain, bus, device


def pci_name(key: PciKey) -> str:
    """The driver's spelling, ``PCI:0000:3b:00``."""
    domain, bus, device = key
    return f"PCI:{domain:04x}:{bus:02x}:{device:02x}"


def parse_driver_line(message: str) -> XidLine | GpuLine | None:
    """The XID report or GPU identity in a kernel-log message; None for any other message.

    Raises ``MalformedLine`` for a message that starts as an XID report but is not a readable one
    (an unknown bus id format, a code out of the driver's range).
    """
    if not message.startswith("NVRM: "):
        return None
    if message.startswith(XID_PREFIX):
        match = _XID.match(message)
        if match is None:
            raise MalformedLine(f"not an XID report: {message[:120]!r}")
        code = int(match.group(2))
        if not 1 <= code <= MAX_XID:
            raise MalformedLine(f"XID {code} out of range: {message[:120]!r}")
        return XidLine(pci_key(match.group(1)), code)  # type: ignore[arg-type]  (the pattern made it one)
    match = _GPU.match(message)
    if match is not None:
        uuid = "GPU-" + match.group(2)[4:].lower()  # NVML's spelling
        return GpuLine(pci_key(match.group(1)), uuid)  # type: ignore[arg-type]
    return None


def xid_line(pci_bus_id: str, xid: int, detail: str, pid: int | None = None, process: str = "") -> str:
    """The line a current driver logs for ``xid`` on the GPU at ``pci_bus_id`` (NVML's spelling)."""
    key = pci_key(pci_bus_id)
    if key is None:
        raise ValueError(f"not a PCI bus id: {pci_bus_id!r}")
    owner = f"pid={pid}, name={process}" if pid else "pid='<unknown>', name=<unknown>"
    return f"NVRM: Xid ({pci_name(key)}): {xid}, {owner}, {detail}"


def gpu_line(pci_bus_id: str, uuid: str) -> str:
    """The line naming a GPU that the driver logs before its first XID."""
    key = pci_key(pci_bus_id)
    if key is None:
        raise ValueError(f"not a PCI bus id: {pci_bus_id!r}")
    return f"NVRM: GPU at {pci_name(key)}: {uuid}"
