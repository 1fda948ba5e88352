"""The kernel log (``/dev/kmsg``): its record format, and reading it within bounds, never blocking.

``/dev/kmsg`` (Documentation/ABI/testing/dev-kmsg) hands out every record still in the kernel's
ring buffer, oldest first, one record per ``read()``::

    6,1234,5678901,-;NVRM: Xid (PCI:0000:3b:00): 79, pid=1234, name=python, GPU has fallen off the bus.
     SUBSYSTEM=pci

that is ``priority,sequence,microseconds since boot,flags[,more];message``, then optional
continuation lines that start with a space. The priority's facility is 0 only for records the
kernel itself logged: a write to ``/dev/kmsg`` from user space is filed under LOG_USER, so a
process cannot forge a driver line. A reader that falls behind the ring buffer gets ``EPIPE``
once and continues at the oldest record left; at the end, a non-blocking reader gets ``EAGAIN``.

``KmsgDevice`` reads a path in this format (``/dev/kmsg`` itself, or a file of the same records:
test fixtures), opened non-blocking: the end of what the kernel holds now is the end, never a
wait. ``MemoryKmsg`` is a kernel log held in memory that the fake NVML driver writes to, so the
simulator's nodes have one each. ``KmsgReader`` splits either into records within
``ReadLimits``: a huge log, lines that are not records and binary garbage are skipped and
counted in ``ReadStats``, never raised.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable, Iterator, Protocol

log = logging.getLogger(__name__)

CHUNK_BYTES = 64 * 1024  # /dev/kmsg's records are at most 8 KiB (PRINTK_MESSAGE_MAX); a read needs room for one


@dataclass(frozen=True)
class KmsgRecord:
    priority: int  # facility << 3 | level
    seq: int
    ts_us: int  # microseconds since boot, on the kernel's log clock
    message: str

    @property
    def from_kernel(self) -> bool:
        """True if the kernel logged it (facility 0): user space cannot write such a record."""
        return self.priority >> 3 == 0


@dataclass(frozen=True)
class ReadLimits:
    """How much one reading of the kernel log may take, whatever the log holds."""

    max_records: int = 1_000_000  # the ring buffer holds a few hundred thousand at its largest
    max_bytes: int = 256 * 1024 * 1024
    max_seconds: float = 5.0
    max_line_bytes: int = 64 * 1024  # longer than any record: what is longer is garbage


@dataclass
class ReadStats:
    records: int = 0  # well-formed records handed out
    malformed: int = 0  # lines that are not records (garbage, truncated, over-long): skipped
    overwritten: int = 0  # times the ring buffer dropped records before they could be read
    bytes: int = 0
    stopped: str = ""  # why reading ended before the end of the log ("" if it reached the end)


class KmsgStream(Protocol):
    overwritten: int  # EPIPEs seen: times the ring buffer dropped records this stream had not read

    def read_chunk(self) -> bytes | None:
        """The next bytes of the log, or None when it holds nothing more now. May raise OSError."""

    def close(self) -> None: ...


class KernelLog(Protocol):
    """A kernel log the exporter can read from its oldest record, and the clock it stamps records with."""

    def open(self) -> KmsgStream: ...

    def now_us(self) -> int:
        """Now, in the records' time base (microseconds since boot)."""


# -- a path: /dev/kmsg, or a file of its records ---------------------------------------------------


def monotonic_us() -> int:
    """CLOCK_MONOTONIC in microseconds: the time base of /dev/kmsg's stamps.

    The kernel stamps records with its local clock, which runs with CLOCK_MONOTONIC up to small
    drift (journald converts kmsg stamps with the same assumption).
    """
    return time.monotonic_ns() // 1000


class KmsgDevice:
    """``/dev/kmsg`` or a file in its format, read non-blocking from the oldest record."""

    def __init__(self, path: str, clock_us: Callable[[], int] = monotonic_us) -> None:
        self.path = path
        self._clock_us = clock_us

    def __repr__(self) -> str:
        return f"KmsgDevice({self.path!r})"

    def open(self) -> KmsgStream:
        # O_NONBLOCK: at the end of the ring buffer (or of a FIFO with a silent writer) read()
        # fails with EAGAIN instead of waiting for the next message.
        return _FdStream(os.open(self.path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC))

    def now_us(self) -> int:
        return self._clock_us()


class _FdStream:
    def __init__(self, fd: int) -> None:
        self._fd = fd
        self.overwritten = 0

    def read_chunk(self) -> bytes | None:
        while True:
            try:
                chunk = os.read(self._fd, CHUNK_BYTES)
            except BlockingIOError:
                return None  # EAGAIN: nothing more in the ring buffer now
            except BrokenPipeError:
                self.overwritten += 1  # EPIPE: records were overwritten; the next read goes on
                continue
            return chunk or None  # b"": end of a regular file, or a FIFO without a writer

    def close(self) -> None:
        os.close(self._fd)


# -- a kernel log in memory (the fake driver's, the simulator's nodes') -----------------------------


class MemoryKmsg:
    """A kernel log held in memory, read and stamped like ``/dev/kmsg``.

    ``uptime`` gives seconds since the (simulated) boot. Stamps strictly increase, even when that
    clock stands still (a simulator whose time only moves when a test advances it): whatever is
    logged after a reading of ``now_us()`` is stamped later than it, as on a real kernel.
    """

    def __init__(self, uptime: Callable[[], float] = time.monotonic, capacity: int = 20_000) -> None:
        self.uptime = uptime
        self._capacity = capacity
        self._lock = threading.Lock()
        self._boot = 0
        self._records: deque[bytes] = deque()
        self._first_seq = 0
        self._next_seq = 0
        self._last_us = -1

    def log(self, message: str, level: int = 4) -> KmsgRecord:
        """Append a kernel (facility 0) record; ``level`` 4 is KERN_WARNING, the driver's XID level."""
        with self._lock:
            stamp = self._tick()
            record = KmsgRecord(level & 7, self._next_seq, stamp, message)
            self._records.append(f"{record.priority},{record.seq},{stamp},-;{message}\n".encode())
            self._next_seq += 1
            if len(self._records) > self._capacity:  # the ring buffer wraps: the oldest go
                self._records.popleft()
                self._first_seq += 1
            return record

    def now_us(self) -> int:
        with self._lock:
            return self._tick()

    def clear(self) -> None:
        """A reboot: a new, empty log; readers of the old one see its end."""
        with self._lock:
            self._boot += 1
            self._records.clear()
            self._first_seq = self._next_seq = 0
            self._last_us = -1

    def open(self) -> KmsgStream:
        with self._lock:
            return _MemoryStream(self, self._boot, self._first_seq)

    def _tick(self) -> int:
        self._last_us = max(int(self.uptime() * 1e6), self._last_us + 1)
        return self._last_us

    def _record(self, boot: int, seq: int) -> tuple[bytes | None, int]:
        """(record ``seq`` or the oldest one left after it, its seq); (None, seq) past the end."""
        with self._lock:
            if boot != self._boot or seq >= self._next_seq:
                return None, seq
            seq = max(seq, self._first_seq)
            return self._records[seq - self._first_seq], seq


class _MemoryStream:
    def __init__(self, kmsg: MemoryKmsg, boot: int, seq: int) -> None:
        self._kmsg = kmsg
        self._boot = boot
        self._seq = seq
        self.overwritten = 0

    def read_chunk(self) -> bytes | None:
        record, seq = self._kmsg._record(self._boot, self._seq)
        if record is not None and seq != self._seq:
            self.overwritten += 1
        self._seq = seq + 1 if record is not None else seq
        return record

    def close(self) -> None:
        pass


# -- splitting into records ------------------------------------------------------------------------


class KmsgReader:
    """The records of one open kernel log, within ``limits`` shared by every ``records()`` call.

    ``records()`` yields what the log holds now and stops at its end (or at a limit); a later
    call continues where the last ended, with whatever was logged since.
    """

    def __init__(self, stream: KmsgStream, limits: ReadLimits = ReadLimits()) -> None:
        self._stream = stream
        self.limits = limits
        self.stats = ReadStats()
        self._deadline = time.monotonic() + limits.max_seconds
        self._pending = b""
        self._discarding = False  # inside a line that outgrew max_line_bytes: dropped to its end

    def records(self) -> Iterator[KmsgRecord]:
        while not self.stats.stopped:
            try:
                chunk = self._stream.read_chunk()
            except OSError as exc:  # a directory, a device that refuses reads: the end, said why
                self.stats.stopped = f"stopped by a read error: {exc.strerror or exc}"
                break
            if chunk is None:
                break
            self.stats.bytes += len(chunk)
            yield from self._lines(chunk)
            self._check_limits()
        self.stats.overwritten = self._stream.overwritten
        if self._pending and not self.stats.stopped:
            # A file whose last line has no newline (/dev/kmsg always ends its records).
            line, self._pending = self._pending, b""
            record = self._record(line)
            if record is not None:
                yield record

    def close(self) -> None:
        try:
            self._stream.close()
        except OSError as exc:  # closing a read-only descriptor: nothing was lost
            log.debug("closing the kernel log: %s", exc)

    def _lines(self, chunk: bytes) -> Iterator[KmsgRecord]:
        if self._discarding:
            newline = chunk.find(b"\n")
            if newline < 0:
                return  # still inside the over-long line
            chunk, self._discarding = chunk[newline + 1:], False
        lines = (self._pending + chunk).split(b"\n")
        self._pending = lines.pop()
        for line in lines:
            record = self._record(line)
            if record is not None:
                yield record
        if len(self._pending) > self.limits.max_line_bytes:
            self.stats.malformed += 1
            self._pending, self._discarding = b"", True

    def _record(self, line: bytes) -> KmsgRecord | None:
        if not line or line[:1] in (b" ", b"\t"):
            return None  # a record's continuation (" SUBSYSTEM=pci") or an empty line
        record = parse_record(line) if len(line) <= self.limits.max_line_bytes else None
        if record is None:
            self.stats.malformed += 1
        else:
            self.stats.records += 1
        return record

    def _check_limits(self) -> None:
        if self.stats.records + self.stats.malformed >= self.limits.max_records:
            self.stats.stopped = f"stopped after {self.limits.max_records} records"
        elif self.stats.bytes >= self.limits.max_bytes:
            self.stats.stopped = f"stopped after {self.limits.max_bytes} bytes"
        elif time.monotonic() > self._deadline:
            self.stats.stopped = f"stopped after {self.limits.max_seconds:g}s"


def parse_record(line: bytes) -> KmsgRecord | None:
    """One ``priority,seq,usec,flags[,...];message`` record, or None if ``line`` is not one."""
    header, separator, message = line.partition(b";")
    fields = header.split(b",", 4)
    if not separator or len(fields) < 4 or len(header) > 200:
        return None
    priority, seq, stamp = fields[0], fields[1], fields[2]
    if not (priority.isdigit() and seq.isdigit() and stamp.isdigit()) or len(priority) > 4 or len(seq) > 20 or len(stamp) > 20:
        return None
    return KmsgRecord(int(priority), int(seq), int(stamp), message.rstrip(b"\r").decode("utf-8", "replace"))
