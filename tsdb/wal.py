"""The store's write-ahead log: every append, in the order it happened, so that a crash between two
snapshots loses nothing the store had accepted (Prometheus keeps one for its head block for the
same reason).

Layout: a directory beside the snapshot (``SNAPSHOT.wal/``) of segment files ``GGGGGG-SSSSSSSS``:
G the generation (each start of the server begins one, since series references are a process's
own), S a sequence within it. A segment is a run of records, each ``[payload length u32][crc32
of the payload, seeded with the type, u32][type u8][payload]``, and stands alone: it declares
each series it refers to before its first use, so that the segments before it can be deleted:

- ``SERIES``: the series an append refers to that the segment has not declared yet: their
  references (the store's ids) and labels, as zlib-compressed JSON (labels repeat a lot: a node's
  1,116 series take about a sixth of their JSON);
- ``APPEND``: one append (a scrape, a rule's output, a failed scrape's report): target, timestamp,
  the references in page order (or "the same as this target's last append", the usual case) and
  the values. Replayed through the store's own append, it gives back staleness markers too;
- ``GONE``: a target left service discovery at a time;
- ``DROP_AFTER``: the server's clock stepped back, and every sample stamped after a time was
  dropped (``Store._drop_ahead_of_clock``): replayed in its place, so that the appends after it
  are not refused as out of order.

Records go to the operating system as each append is stored (a killed process loses nothing)
and to the disk at ``sync`` (housekeeping, every 30 s: a power cut loses at most that). A snapshot
first ``cut``s the log (later records go to a new segment), then writes the store; once it is on
disk the segments before the cut are deleted. Records both in the snapshot and after the cut are
replayed as not newer than what the snapshot gave back, and so change nothing.

A write that fails (a full disk) stops the log, says so (``failed``), and never the store: the
next snapshot holds what the log missed, and the log starts again after it.
"""
from __future__ import annotations

import json
import logging
import os
import struct
import zlib
from array import array
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Protocol, Sequence

from cwkernel.series import Labels

log = logging.getLogger(__name__)

HEADER = struct.Struct("<IIB")  # payload length, crc32 of the payload seeded with the type, type
SERIES, APPEND, GONE, DROP_AFTER = 1, 2, 3, 4
APPEND_HEAD = struct.Struct("<qIB")  # timestamp ms, samples, 1 if the references are the last append's
SEGMENT_BYTES = 128 << 20  # then a new segment: the snapshot's cut deletes whole ones
MAX_RECORD_BYTES = 1 << 30  # a length past this is damage, not a record


def wal_directory(snapshot_path: str | Path) -> Path:
    """Where the log of the store snapshotted to ``snapshot_path`` lives."""
    return Path(f"{snapshot_path}.wal")


class WalError(ValueError):
    """A record that passed its checksum but cannot be read (a series it names was never declared,
    a payload that does not decode): the replay stops there."""


class Replayer(Protocol):
    """What replay appends into (the store)."""

    def replay_append(self, target: str, timestamp_ms: int, samples: Sequence[tuple[Labels, float]]) -> bool: ...

    def mark_target_gone(self, target: str, timestamp_ms: int) -> None: ...

    def drop_after(self, cutoff_ms: int) -> int: ...


@dataclass
class Replayed:
    appends: int = 0
    skipped: int = 0  # older than the retention window, or refused by the store
    torn: str = ""  # where a crash cut the last record short (normal after a crash)
    damaged: str = ""  # a bad record before the end of a generation: what followed it is lost

    def describe(self, directory: str) -> str:
        line = f"replayed {self.appends} appends from {directory} ({self.skipped} left out: older than the " \
               "retention window, or refused)"
        if self.torn:
            line += f"; {self.torn}"
        return line


class WriteAheadLog:
    """Not thread-safe: the store calls it holding its lock."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.failed = ""  # why the log stopped; "" while it writes
        self._fd: int | None = None
        self._generation = 0
        self._sequence = 0
        self._size = 0
        self._last_refs: dict[str, bytes] = {}  # target -> its last append's references, this segment
        self._declared: set[int] = set()  # series declared in this segment

    # ---- writing -----------------------------------------------------------------------------
    def start(self) -> None:
        """Begin a new generation after the segments of earlier runs (replayed already). A
        directory that cannot be made stops the log (``failed``), never the server."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self._fail(exc)
            return
        self._generation = max((gen for gen, _ in self._segments()), default=0) + 1
        self._sequence = 0
        self._open_next()

    def log_append(self, target: str, timestamp_ms: int, refs: Sequence[int], values: Sequence[float],
                   labels_of: Callable[[int], Labels]) -> None:
        """One append; ``labels_of`` gives a reference's labels, for the series this segment has
        not declared yet."""
        if self._size >= SEGMENT_BYTES:
            self._open_next()  # here, not between a record and the series it declares
        packed = array("q", refs).tobytes()
        same = self._last_refs.get(target) == packed
        if not same:
            new = [ref for ref in dict.fromkeys(refs) if ref not in self._declared]
            if new:
                self._declared.update(new)
                declared = [[ref, labels_of(ref)] for ref in new]
                self._write(SERIES, zlib.compress(json.dumps(declared, separators=(",", ":")).encode(), 1))
        self._last_refs[target] = packed
        name = target.encode()
        payload = b"".join((APPEND_HEAD.pack(timestamp_ms, len(values), same), struct.pack("<H", len(name)), name,
                            b"" if same else packed, array("d", values).tobytes()))
        self._write(APPEND, payload)

    def log_gone(self, target: str, timestamp_ms: int) -> None:
        self._last_refs.pop(target, None)
        self._write(GONE, struct.pack("<q", timestamp_ms) + target.encode())

    def log_drop_after(self, cutoff_ms: int) -> None:
        self._write(DROP_AFTER, struct.pack("<q", cutoff_ms))

    def handle(self) -> int | None:
        """A duplicate of the segment's descriptor, for an fsync outside the store's lock (the
        caller closes it); None while the log is stopped."""
        if self._fd is None:
            return None
        try:
            return os.dup(self._fd)
        except OSError as exc:
            self._fail(exc)
            return None

    def cut(self) -> str:
        """Later records go to a new segment; returns its name, the oldest to keep once the
        snapshot taken now is written. A log that had stopped starts again here."""
        self.failed = ""
        self._open_next()
        return self._name(self._generation, self._sequence)

    def drop_before(self, keep_from: str) -> None:
        """Delete the segments before ``keep_from`` (the snapshot holds what they did)."""
        for gen, seq in self._segments():
            name = self._name(gen, seq)
            if name < keep_from:
                try:
                    (self.directory / name).unlink()
                except OSError as exc:
                    log.warning("write-ahead log: %s not deleted: %s", name, exc)

    def close(self) -> None:
        if self._fd is not None:
            try:
                os.fsync(self._fd)
            except OSError as exc:
                log.error("write-ahead log: last records not synced: %s", exc)
            os.close(self._fd)
            self._fd = None

    def _write(self, kind: int, payload: bytes) -> None:
        if self._fd is None:
            return
        record = HEADER.pack(len(payload), zlib.crc32(payload, kind), kind) + payload
        try:
            os.write(self._fd, record)
        except OSError as exc:
            self._fail(exc)
            return
        self._size += len(record)

    def _open_next(self) -> None:
        self._close_segment()
        self._sequence += 1
        self._size = 0
        self._last_refs.clear()  # a segment stands alone: it may outlive the one before
        self._declared.clear()
        path = self.directory / self._name(self._generation, self._sequence)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        except OSError as exc:
            self._fail(exc)

    def _fail(self, exc: OSError) -> None:
        self.failed = f"{self.directory} not written: {exc.strerror or exc}"
        log.error("write-ahead log stopped: %s; the next snapshot holds what it misses", self.failed)
        self._close_segment()

    def _close_segment(self) -> None:
        if self._fd is not None:
            try:
                os.close(self._fd)
            except OSError:
                pass  # a failed close loses nothing here: every record went out with its own write
            self._fd = None

    # ---- reading -----------------------------------------------------------------------------
    def replay(self, into: Replayer, keep_from_ms: int | None = None) -> Replayed:
        """Append every record of every segment, in order; records older than ``keep_from_ms``
        are left out, as a snapshot's are at load."""
        replayed = Replayed()
        segments = self._segments()
        for position, (gen, seq) in enumerate(segments):
            if position == 0 or segments[position - 1][0] != gen:
                refs: dict[int, Labels] = {}
            last_of_generation = position + 1 == len(segments) or segments[position + 1][0] != gen
            self._replay_segment(gen, seq, refs, into, keep_from_ms, replayed, last_of_generation)
        return replayed

    def _replay_segment(self, gen: int, seq: int, refs: dict[int, Labels], into: Replayer,
                        keep_from_ms: int | None, replayed: Replayed, last_of_generation: bool) -> None:
        name = self._name(gen, seq)
        last_refs: dict[str, array] = {}
        data = (self.directory / name).read_bytes()
        for offset, kind, payload in _records(data):
            if kind is None:
                where = f"segment {name} ends in a torn record at byte {offset:,} (a crash mid-write)"
                if last_of_generation:
                    replayed.torn = where
                else:
                    replayed.damaged = f"segment {name}: a bad record at byte {offset:,}; the rest of it was lost"
                    log.error("write-ahead log: %s", replayed.damaged)
                return
            try:
                if kind == SERIES:
                    for ref, labels in json.loads(zlib.decompress(payload)):
                        refs[ref] = tuple(tuple(pair) for pair in labels)
                elif kind == GONE:
                    into.mark_target_gone(payload[8:].decode(), struct.unpack_from("<q", payload)[0])
                elif kind == DROP_AFTER:
                    into.drop_after(struct.unpack_from("<q", payload)[0])
                elif kind == APPEND:
                    self._replay_append(payload, refs, last_refs, into, keep_from_ms, replayed)
            except (KeyError, ValueError, TypeError, struct.error, zlib.error) as exc:
                raise WalError(f"segment {name}: unreadable record at byte {offset:,} ({exc!r})") from None

    @staticmethod
    def _replay_append(payload: bytes, refs: dict[int, Labels], last_refs: dict[str, array], into: Replayer,
                       keep_from_ms: int | None, replayed: Replayed) -> None:
        timestamp_ms, count, same = APPEND_HEAD.unpack_from(payload)
        at = APPEND_HEAD.size
        (length,) = struct.unpack_from("<H", payload, at)
        target = payload[at + 2:at + 2 + length].decode()
        at += 2 + length
        if same:
            ids = last_refs[target]
        else:
            ids = array("q", payload[at:at + 8 * count])
            at += 8 * count
            last_refs[target] = ids
        values = array("d", payload[at:at + 8 * count])
        if keep_from_ms is not None and timestamp_ms < keep_from_ms:
            replayed.skipped += 1
            return
        if into.replay_append(target, timestamp_ms, [(refs[ref], value) for ref, value in zip(ids, values)]):
            replayed.appends += 1
        else:
            replayed.skipped += 1

    def _segments(self) -> list[tuple[int, int]]:
        found = []
        try:
            names = os.listdir(self.directory)
        except OSError:
            return []  # none, or none readable: replay finds nothing, writing fails and says so
        for name in names:
            gen, _, seq = name.partition("-")
            if gen.isdigit() and seq.isdigit():
                found.append((int(gen), int(seq)))
        return sorted(found)

    @staticmethod
    def _name(gen: int, seq: int) -> str:
        return f"{gen:06d}-{seq:08d}"


def _records(data: bytes) -> Iterator[tuple[int, int | None, bytes]]:
    """(offset, type, payload) of each whole record; a last one of type None where the data stops
    being records (torn or damaged)."""
    offset = 0
    while offset < len(data):
        if len(data) - offset < HEADER.size:
            yield offset, None, b""
            return
        length, crc, kind = HEADER.unpack_from(data, offset)
        start = offset + HEADER.size
        payload = data[start:start + length]
        if length > MAX_RECORD_BYTES or len(payload) < length or zlib.crc32(payload, kind) != crc:
            yield offset, None, b""
            return
        yield offset, kind, payload
        offset = start + length
