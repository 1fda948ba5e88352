"""At start, the XIDs NVML could not deliver, recovered from the driver's lines in the kernel log.

NVML delivers an XID event only to an event set that was registered on the GPU when the XID
happened. Whatever was raised before the exporter registered (while it was down, restarting, or
not yet started) is lost to NVML, but the driver also logs every XID in the kernel log, which
keeps them since boot (as far as its ring buffer reaches). So, once, when the XID watcher first
registers its GPUs:

1. ``read_backlog()``, before any registration: every XID line in the log so far happened before
   NVML watched anything, and is counted.
2. the watcher registers the GPUs, noting for each the kernel-log time right after it was
   registered (``KernelLog.now_us()``).
3. ``finish()`` reads the records logged since step 1 (sequence numbers continue where step 1
   ended): an XID stamped before its GPU's registration is counted; one stamped at or after it
   was delivered by NVML, which the watcher counts, and is not counted twice. A GPU that could not
   be registered (no XID events, lost) has all its XIDs counted from the log.

Only the few records logged while the GPUs were being registered depend on time stamps; the
kernel stamps records on a clock that follows CLOCK_MONOTONIC up to a small drift, so an XID in
that instant may be counted twice, never lost.

Counter semantics across restarts: a restarted exporter counts again every XID the kernel log
holds since boot. That is what ``gpu_xid_errors_total`` must do: Prometheus sees the same count as
before the restart (no increase) plus the XIDs raised while the exporter was down (an increase
of exactly those), under the same labels. The log has no record of what an earlier exporter
process counted, and needs none. Its limit: a ring buffer that has wrapped since boot no longer
holds the oldest XIDs; the restarted count is then lower, which Prometheus reads as a counter
reset (``increase()`` counts the still-logged XIDs once more).

Attribution: by PCI bus id to the GPU NVML enumerates there (``gpu`` and ``uuid`` as for NVML
events); else to the uuid the driver's "GPU at PCI" line gave that bus id (``gpu=""``: a GPU that
fell off the bus and is not enumerated); else, never dropped, to ``gpu=""`` and
``uuid="PCI:0000:3b:00"``, the bus id in the driver's spelling (no real uuid starts with ``PCI:``).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Iterable

from exporter.kmsg import KernelLog, KmsgReader, ReadLimits
from exporter.nvml.session import GpuDevice
from exporter.nvrm import GpuLine, MalformedLine, PciKey, XidLine, parse_driver_line, pci_key, pci_name

log = logging.getLogger(__name__)


@dataclass
class RecoveredXids:
    """The XIDs recovered for one GPU identity: counts by code, and the last one's stamp."""

    index: int | None  # NVML's index if NVML enumerates the GPU now
    uuid: str
    counts: dict[int, int] = field(default_factory=dict)
    last_us: int = -1
    last_code: int = 0

    def add(self, code: int, stamp_us: int, count: int = 1) -> None:
        self.counts[code] = self.counts.get(code, 0) + count
        if stamp_us >= self.last_us:
            self.last_us, self.last_code = stamp_us, code


@dataclass
class RecoveryStats:
    """What the recovery read; exposed as ``clusterwatch_exporter_xid_recovery_*``."""

    counted: int = 0  # XIDs NVML could not have delivered: counted from the log
    seen_by_nvml: int = 0  # XIDs logged while NVML watched their GPU: counted by the watcher
    other: int = 0  # every other record (other messages, user-space writes)
    malformed: int = 0  # lines that are not records, XID lines that cannot be read
    complete: bool = False  # read to the end of the log, every XID line in it accounted for
    problem: str = ""  # why it is not complete


class XidRecovery:
    """One recovery of missed XIDs from ``kernel_log``; see the module docstring for the steps."""

    def __init__(self, kernel_log: KernelLog, limits: ReadLimits = ReadLimits()) -> None:
        self.kernel_log = kernel_log
        self.stats = RecoveryStats()
        self._limits = limits
        self._reader: KmsgReader | None = None
        self._backlog: dict[tuple[PciKey, int], tuple[int, int]] = {}  # (bus id, code) -> (count, last stamp)
        self._window: list[tuple[PciKey, int, int]] = []  # (bus id, code, stamp) logged during registration
        self._uuids: dict[PciKey, str] = {}  # from the driver's "GPU at PCI" lines
        self._read_backlog = False

    def read_backlog(self) -> None:
        """Step 1: the XIDs logged before any GPU was registered. Does nothing the second time."""
        if self._read_backlog:
            return
        self._read_backlog = True
        try:
            self._reader = KmsgReader(self.kernel_log.open(), self._limits)
        except OSError as exc:
            self.stats.problem = f"cannot read the kernel log {self.kernel_log!r}: {exc.strerror or exc}"
            return
        for key, code, stamp in self._xids():
            count, _ = self._backlog.get((key, code), (0, stamp))
            self._backlog[(key, code)] = (count + 1, stamp)  # the log is in time order: the last is the latest

    def finish(self, devices: Iterable[GpuDevice], watched_since: dict[str, int]) -> list[RecoveredXids]:
        """Step 3: read what was logged during registration, decide, and attribute every XID counted.

        ``devices`` are the GPUs NVML knows (enumerated or missing); ``watched_since`` maps the
        uuid of each GPU registered for XID events to the kernel-log time right after that.
        """
        if self._reader is None:
            return []
        self._window.extend(self._xids())
        self._reader_done()
        attribute = _Attribution(devices, self._uuids)
        recovered: dict[str, RecoveredXids] = {}
        for (key, code), (count, last_stamp) in self._backlog.items():
            self.stats.counted += count
            attribute.entry(recovered, key).add(code, last_stamp, count)
        for key, code, stamp in self._window:
            target = attribute.entry(recovered, key)
            if target.uuid in watched_since and stamp >= watched_since[target.uuid]:
                self.stats.seen_by_nvml += 1
                continue
            self.stats.counted += 1
            target.add(code, stamp)
        self._log_result(attribute.unknown)
        return [entry for entry in recovered.values() if entry.counts]

    def _xids(self) -> Iterable[tuple[PciKey, int, int]]:
        """(bus id, code, stamp) of each XID line the reader yields now; GPU lines noted on the way."""
        assert self._reader is not None
        for record in self._reader.records():
            if not record.from_kernel:
                self.stats.other += 1
                continue
            try:
                line = parse_driver_line(record.message)
            except MalformedLine as exc:
                self.stats.malformed += 1
                log.debug("kernel log record %d skipped: %s", record.seq, exc)
                continue
            if isinstance(line, XidLine):
                yield line.pci, line.xid, record.ts_us
            else:
                if isinstance(line, GpuLine):
                    self._uuids[line.pci] = line.uuid
                self.stats.other += 1

    def _reader_done(self) -> None:
        assert self._reader is not None
        read = self._reader.stats
        self.stats.malformed += read.malformed
        if read.stopped:
            self.stats.problem = f"reading the kernel log {self.kernel_log!r} {read.stopped}"
        self.stats.complete = not read.stopped
        self._reader.close()
        if read.overwritten:
            log.info("kernel log: the ring buffer dropped records while it was read (%d times)", read.overwritten)

    def _log_result(self, unknown: set[PciKey]) -> None:
        stats = self.stats
        log.log(logging.WARNING if stats.problem else logging.INFO,
                "XID recovery from %r: %d XIDs counted that NVML could not deliver, %d already delivered by NVML, "
                "%d other records, %d malformed skipped%s", self.kernel_log, stats.counted, stats.seen_by_nvml,
                stats.other, stats.malformed, f"; incomplete: {stats.problem}" if stats.problem else "")
        for key in sorted(unknown):
            log.warning("XIDs of %s counted under uuid=%r: no GPU NVML knows, nor a driver line, names that bus id",
                        pci_name(key), pci_name(key))


class _Attribution:
    """Bus id -> the GPU identity its XIDs are counted under."""

    def __init__(self, devices: Iterable[GpuDevice], logged_uuids: dict[PciKey, str]) -> None:
        self._devices: dict[PciKey, GpuDevice] = {}
        for device in devices:
            key = pci_key(device.pci_bus_id) if device.pci_bus_id else None
            if key is not None and device.uuid:
                self._devices[key] = device
        # Some hypervisors give 32-bit PCI domains that the kernel log truncates to 16 bits.
        self._short: dict[PciKey, GpuDevice | None] = {}
        for (domain, bus, dev), device in self._devices.items():
            short = (domain & 0xFFFF, bus, dev)
            self._short[short] = None if short in self._short else device  # ambiguous: no match
        self._logged_uuids = logged_uuids
        self.unknown: set[PciKey] = set()

    def entry(self, recovered: dict[str, RecoveredXids], key: PciKey) -> RecoveredXids:
        device = self._devices.get(key) or self._short.get(key)
        if device is not None:
            index: int | None = device.index
            uuid = device.uuid
        elif key in self._logged_uuids:
            index, uuid = None, self._logged_uuids[key]
        else:
            index, uuid = None, pci_name(key)
            self.unknown.add(key)
        entry = recovered.get(uuid)
        if entry is None:
            entry = recovered[uuid] = RecoveredXids(index, uuid)
        return entry
