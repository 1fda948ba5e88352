"""The in-memory columnar store: series, their samples, retention, staleness and per-target limits.

Layout, and why: the samples of one scrape share one timestamp, so each target (or imported
batch) owns a ``TimeColumn`` of int64 millisecond timestamps, and each series owns only an
``array('d')`` of values aligned to a slice of that column. A sample therefore costs 8 bytes
plus 8/N for the shared timestamp. A series that skips scrapes is padded with ``ABSENT`` (a NaN
payload distinct from Prometheus's StaleNaN) so the alignment holds; readers drop it.

Staleness follows Prometheus: when a series that was in a target's last scrape is missing from
the next one, or the target fails or disappears, a StaleNaN sample is written at that time, so
queries stop returning it at once instead of 5 minutes later.
"""
from __future__ import annotations

import bisect
import itertools
import json
import logging
import math
import operator
import os
import struct
import threading
import time
from array import array
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np

from cwkernel.series import STALE_NAN, STALE_NAN_BITS, Labels
from tsdb.admission import LimitError, SeriesAdmission
from tsdb.clocksteps import ClockSteps
from tsdb.labelset import LabelSet
from tsdb.matchers import EQUAL, LabelMatcher
from tsdb.wal import WriteAheadLog

log = logging.getLogger(__name__)

ABSENT_BITS = 0x7FF0000000000003
# Series an API walk (/api/v1/series) looks at per hold of the lock: about a millisecond's work.
SERIES_WALK_CHUNK = 4096
# What a snapshot copies per hold of the lock: at most this many samples (16 MB of timestamps and
# values, what it holds at once) and this many series (each costs a few tens of microseconds).
SNAPSHOT_PIECE_SAMPLES = 1 << 20
SNAPSHOT_PIECE_SERIES = 1024
ABSENT: float = struct.unpack("<d", struct.pack("<Q", ABSENT_BITS))[0]

DEFAULT_RETENTION_S = 6 * 3600.0
STATS_MAX_AGE_S = 30.0  # how old Store.stats' sample figures may be (a gauge, not an account)
# A target's last sample more than this ahead of the server's clock means the clock stepped back:
# what is stamped past it is dropped (Store._drop_ahead_of_clock). A smaller step is a skip that
# passes by itself.
CLOCK_STEP_TOLERANCE_MS = 60_000


def is_stale(value: float) -> bool:
    return math.isnan(value) and struct.pack("<d", value) == struct.pack("<Q", STALE_NAN_BITS)


class AppendError(Exception):
    """Samples that cannot be appended (out of order, or labels already owned by another target)."""


class OutOfOrderError(AppendError):
    """An append not after the target's last one: this server's clock went back (or two scrapes
    started in one millisecond), not the target's doing."""


@dataclass(frozen=True)
class Limits:
    """Per-target limits: 0 means unlimited. ``max_series_total`` guards the whole store.

    ``series_per_target_by_job`` gives the targets of a job their own series limit, which also
    bounds their label values: one fabric collector legitimately exposes every cable of a fabric
    (about 47 series a cable), where a node's 50,000 would mean a runaway exporter (Prometheus's
    ``sample_limit`` is per scrape job for the same reason)."""

    max_series_per_target: int = 50_000
    max_label_values_per_target: int = 10_000
    max_series_total: int = 2_000_000
    series_per_target_by_job: tuple[tuple[str, int], ...] = ()
    # Per scraped series, as Prometheus's label_limit, label_name_length_limit and
    # label_value_length_limit (which it leaves unlimited by default): without them only the page's
    # size bounds a series, and a target putting a new 5 MB value in a label on each scrape makes a
    # new 5 MB series every interval, within every series limit. Lengths in UTF-8 bytes, the target
    # labels and ``__name__`` included.
    max_labels_per_series: int = 64
    max_label_name_length: int = 256
    max_label_value_length: int = 16_384

    def label_problem(self, labels: Labels) -> str:
        """Why a scraped series' labels (sorted, ``__name__`` among them) are past the label limits,
        in Prometheus's words; "" when they are within them."""
        if self.max_labels_per_series and len(labels) > self.max_labels_per_series:
            return (f"label_limit exceeded (metric: {_metric_name(labels)[:50]}, number of labels: {len(labels)}, "
                    f"limit: {self.max_labels_per_series})")
        for name, value in labels:
            length = _utf8_length(name, self.max_label_name_length)
            if length:
                return (f"label_name_length_limit exceeded (metric: {_metric_name(labels)[:50]}, label name: "
                        f"{name[:50]}, length: {length}, limit: {self.max_label_name_length})")
            length = _utf8_length(value, self.max_label_value_length)
            if length:
                return (f"label_value_length_limit exceeded (metric: {_metric_name(labels)[:50]}, label name: "
                        f"{name[:50]}, value: "
                        f"{json.dumps(value[:50], ensure_ascii=False)}, length: {length}, "
                        f"limit: {self.max_label_value_length})")
        return ""

    def for_job(self, job: str) -> tuple[int, int]:
        """(series, label values) allowed to one target of ``job``."""
        for name, limit in self.series_per_target_by_job:
            if name == job:
                return limit, limit
        return self.max_series_per_target, self.max_label_values_per_target


def _utf8_length(text: str, limit: int) -> int:
    """``text``'s length in UTF-8 bytes when it is over ``limit`` (0: no limit), else 0; the
    usual short text is let through on its character count (at most 4 bytes each) alone."""
    if not limit or len(text) * 4 <= limit:
        return 0
    length = len(text) if text.isascii() else len(text.encode())
    return length if length > limit else 0


@dataclass
class SeriesData:
    """What a read returns: numpy copies, so callers never hold the store's buffers."""

    labels: dict[str, str]
    timestamps: np.ndarray  # int64 ms
    values: np.ndarray  # float64; StaleNaN kept, ABSENT removed


@dataclass
class Block:
    """Series that share one time column, read together: ``values[i]`` is aligned to
    ``timestamps`` and holds ABSENT where series ``i`` has no sample. Reading a whole target's
    series as one matrix is what lets the engine work on all of them with a few numpy calls."""

    timestamps: np.ndarray  # int64 ms
    labels: list[LabelSet]  # shared with the store's other readers: never mutate them
    values: np.ndarray  # float64, shape (len(labels), len(timestamps))
    moved: bool = False  # some series here also has samples in another block


@dataclass
class Window:
    """Series whose window [mint, maxt] has the same number of column timestamps, one row each:
    ``values[i]`` is aligned to ``timestamps[i]`` (its column's) and holds ABSENT where series
    ``i`` has no sample."""

    labels: list[LabelSet]
    timestamps: np.ndarray  # int64 ms, (len(labels), width)
    values: np.ndarray  # float64, (len(labels), width)


@dataclass
class Latest:
    """Per matching series, its newest sample at or before a time (``Store.select_latest``)."""

    labels: list[LabelSet]
    values: np.ndarray  # float64
    times: np.ndarray  # int64 ms


class TimeColumn:
    """Timestamps shared by every series of one target; ``base`` counts samples dropped by retention."""

    __slots__ = ("ts", "base")

    def __init__(self) -> None:
        self.ts = array("q")
        self.base = 0

    @property
    def end(self) -> int:
        return self.base + len(self.ts)


class _Segment:
    """A run of a series' values aligned to one column, from absolute index ``first``."""

    __slots__ = ("column", "first", "values")

    def __init__(self, column: TimeColumn, first: int) -> None:
        self.column = column
        self.first = first
        self.values = array("d")

    def pad_to(self, index: int) -> None:
        gap = index - (self.first + len(self.values))
        if gap > 0:
            self.values.extend(array("d", [ABSENT]) * gap)

    def trim(self) -> None:
        cut = min(len(self.values), max(0, self.column.base - self.first))
        if cut:
            del self.values[:cut]
            self.first += cut

    def window(self) -> tuple[int, int]:
        """Positions of this segment's samples within ``column.ts``."""
        start = self.first - self.column.base
        return start, start + len(self.values)

    def between(self, mint_ms: int, maxt_ms: int) -> tuple[int, int, int]:
        """``(lo, hi, offset)``: ``values[lo:hi]`` are the samples in [mint_ms, maxt_ms] (padding
        included; the range may be empty), at ``column.ts[lo + offset:hi + offset]``."""
        start, end = self.window()
        lo = bisect.bisect_left(self.column.ts, mint_ms, max(start, 0), end)
        hi = bisect.bisect_right(self.column.ts, maxt_ms, lo, end)
        return lo - start, hi - start, start

    def has_sample_between(self, mint_ms: int, maxt_ms: int) -> bool:
        """Whether a sample (not a gap's padding) is in [mint_ms, maxt_ms]; nothing is copied."""
        lo, hi, _ = self.between(mint_ms, maxt_ms)
        if lo >= hi:
            return False
        if not math.isnan(self.values[lo]) or not math.isnan(self.values[hi - 1]):
            return True  # the usual case: no padding at the window's ends
        bits = np.frombuffer(self.values, dtype=np.uint64)  # a view: released before the lock is
        return bool((bits[lo:hi] != ABSENT_BITS).any())


class _Series:
    """A series usually has one segment; it gains another when it moves to a different column
    (its target was re-keyed by discovery, or it was restored from a snapshot and then scraped)."""

    __slots__ = ("id", "labels", "origin", "segments", "_label_set")

    def __init__(self, sid: int, labels: Labels, origin: str | None) -> None:
        self.id = sid
        self.labels = labels
        self.origin = origin  # the scrape target that created it, held to its share of the store
        self.segments: list[_Segment] = []
        self._label_set: LabelSet | None = None

    @property
    def label_set(self) -> LabelSet:
        """The labels as the one dict every query shares (built on first read, not at ingest)."""
        if self._label_set is None:
            self._label_set = LabelSet(self.labels, self.labels)
        return self._label_set

    def append(self, column: TimeColumn, index: int, value: float) -> bool:
        """Append ``value`` at ``index`` of ``column``; True when that started a new segment."""
        segment = self.segments[-1] if self.segments else None
        created = False
        if segment is None or segment.column is not column:
            if segment is not None and segment.values:
                _, end = segment.window()
                if column.ts[index - column.base] <= segment.column.ts[end - 1]:
                    return False  # not newer than a sample we hold: Prometheus rejects it as out of order
            segment = _Segment(column, index)
            self.segments.append(segment)
            created = True
        segment.pad_to(index)
        segment.values.append(value)
        return created

    def owned_by(self, column: TimeColumn) -> bool:
        return bool(self.segments) and self.segments[-1].column is column

    def sample_count(self) -> int:
        return sum(len(segment.values) for segment in self.segments)


@dataclass
class _Target:
    column: TimeColumn = field(default_factory=TimeColumn)
    last_scrape: set[int] = field(default_factory=set)


class _Selection:
    """The series a matcher list selects, grouped by time column: what every query of the same
    selector would otherwise recompute (postings set operations, per-series segment lookups,
    label dicts). Valid while its ``stamp`` (``Store._stamp``) is unchanged: segments are created
    and their ``first`` moved (retention) only in steps that change it.

    Besides the groups, one row per segment across all columns, so that reading the newest
    sample of a thousand series is a few numpy calls over these rows, not a few per column."""

    def __init__(self, stamp: tuple, groups: list[tuple[TimeColumn, list[_Segment], list[LabelSet], list[int]]],
                 moved: bool) -> None:
        self.stamp = stamp
        self.groups = groups  # per column: its segments, their series' label sets and ids, in one order
        self.moved = moved  # some series has segments in more than one column
        self.columns = [group[0] for group in groups]
        self.segments = [segment for group in groups for segment in group[1]]
        self.arrays = [segment.values for segment in self.segments]  # appended in place, never replaced
        self.labels = [labels for group in groups for labels in group[2]]
        self.ids = [sid for group in groups for sid in group[3]]
        self.column_of = np.repeat(np.arange(len(groups), dtype=np.intp), [len(group[1]) for group in groups])
        self.firsts = np.array([segment.first for segment in self.segments], dtype=np.int64)
        self.stamps = [column.ts for column in self.columns]  # appended in place, never replaced
        self.bases = np.array([column.base for column in self.columns], dtype=np.int64)
        self._ranks: np.ndarray | None = None

    @property
    def ranks(self) -> np.ndarray:
        """Per row, its series' place among the selected series in id order: ``places`` of a read
        takes the rows of a range of places, so a moved series' segments stay together."""
        if self._ranks is None:
            ids = np.asarray(self.ids, dtype=np.int64)
            self._ranks = np.searchsorted(np.unique(ids), ids)
        return self._ranks

    def series_count(self) -> int:
        return int(self.ranks.max()) + 1 if len(self.ids) else 0

    def positions(self, mint_ms: int, maxt_ms: int) -> tuple[np.ndarray, np.ndarray]:
        """Per column, the positions in ``ts`` of [mint_ms, maxt_ms] as (lo, hi): C-level maps
        over the columns, as a selection spans ~140 of them (one per target)."""
        lo = np.fromiter(map(bisect.bisect_left, self.stamps, itertools.repeat(mint_ms)), np.int64, len(self.stamps))
        hi = np.fromiter(map(bisect.bisect_right, self.stamps, itertools.repeat(maxt_ms)), np.int64,
                         len(self.stamps))
        return lo, hi


_SELECTION_CACHE_SIZE = 1024
Charge = Callable[[int, int], None]  # told a read's samples and series before they are copied; may raise


class Store:
    """Thread-safe: the scraper appends from worker threads while the API reads."""

    def __init__(self, retention_s: float = DEFAULT_RETENTION_S, limits: Limits | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.retention_ms = int(retention_s * 1000)
        self.limits = limits or Limits()
        self.clock = clock  # the time live appends are stamped with: a sample far past it is the clock's fault
        self.clock_steps = ClockSteps()
        self._admission = SeriesAdmission(self.limits.max_series_total)
        self.wal: WriteAheadLog | None = None  # every append, for a restart after a crash (tsdb/wal.py)
        self._lock = threading.RLock()
        self._stats: tuple[float, int, int] | None = None  # (when, samples, sample bytes): Store.stats
        self._series: dict[int, _Series] = {}
        self._by_labels: dict[Labels, int] = {}
        self._postings: dict[str, dict[str, set[int]]] = {}
        self._targets: dict[str, _Target] = {}
        self._next_id = 1
        # Cached selections are rebuilt when what they read changed: ``generation`` counts any
        # change to the set of series or their segments, ``_name_generation`` the changes per
        # metric name (a new series of one metric leaves every other metric's selections valid:
        # a live server creates series all the time), ``_epoch`` retention passes.
        self.generation = 0
        self._name_generation: dict[str, int] = {}
        self._epoch = 0
        self._selections: dict[tuple[LabelMatcher, ...], _Selection] = {}
        self.max_time_ms: int | None = None
        self.min_time_ms: int | None = None

    # ---- writing -------------------------------------------------------------------------
    def append_scrape(self, target: str, timestamp_ms: int, samples: Sequence[tuple[Labels, float]],
                      job: str = "") -> int:
        """Store one scrape of ``target`` (of scrape job ``job``) at one timestamp; series gone since
        the last one go stale.

        ``samples`` holds sorted label tuples. Raises LimitError (nothing stored) when the target
        exceeds its limits, AppendError when the timestamp is not after the previous scrape's.
        """
        series_limit, label_values_limit = self.limits.for_job(job)
        self._check_limits(target, samples, series_limit, label_values_limit)
        return self._append(target, timestamp_ms, samples, series_limit)

    def append_rule_output(self, target: str, timestamp_ms: int, samples: Sequence[tuple[Labels, float]]) -> int:
        """``append_scrape`` for what a recording or alerting rule returned: the per-target limits
        guard against a misbehaving exporter, while a rule's output is bounded by its group's
        ``limit`` (as in Prometheus). A per-node rule over 16,384 nodes has 16,384 ``instance``
        values, over the label cardinality limit for a target. New series may use the store's
        reserve (tsdb/admission.py): the alerts that say the store is full must be recorded."""
        return self._append(target, timestamp_ms, samples, None)

    def append_report(self, target: str, timestamp_ms: int, samples: Sequence[tuple[Labels, float]]) -> int:
        """A refused or failed scrape's own series (``up 0``, ``scrape_*``): like a rule's output
        they may use the reserve, so that a target refused for its series still shows as down."""
        return self._append(target, timestamp_ms, samples, None)

    def _append(self, target: str, timestamp_ms: int, samples: Sequence[tuple[Labels, float]],
                allowance: int | None, live: bool = True) -> int:
        """``allowance``: the target's new series an hour; None for the server's own series.
        ``live``: stamped with this server's clock now (not a replay of the write-ahead log)."""
        with self._lock:
            state = self._targets.setdefault(target, _Target())
            column = state.column
            if column.ts and timestamp_ms <= column.ts[-1]:
                if live:
                    self._drop_ahead_of_clock(column.ts[-1])
                if column.ts and timestamp_ms <= column.ts[-1]:
                    raise OutOfOrderError(f"out of order scrape for {target}: {timestamp_ms} <= {column.ts[-1]}")
            known = [self._by_labels.get(labels) for labels, _ in samples]
            origin = None if allowance is None else target
            if None in known:  # admitted before anything is stored: a refusal leaves nothing behind
                new = len({labels for (labels, _), sid in zip(samples, known) if sid is None})
                self._admission.admit(target, timestamp_ms, new, len(self._series), allowance)
                if origin is not None:
                    self._admission.created(origin, timestamp_ms, new)
            column.ts.append(timestamp_ms)
            index = column.end - 1
            seen: set[int] = set()
            ids: list[int] | None = [] if self.wal is not None else None
            for (labels, value), sid in zip(samples, known):
                series = self._series[sid] if sid is not None else self._get_or_create(labels, origin)
                if ids is not None:
                    ids.append(series.id)
                if series.id in seen:
                    continue  # repeated within one page: the first sample wins
                if series.append(column, index, value):
                    self._changed(series.labels)
                seen.add(series.id)
            for sid in state.last_scrape - seen:
                self._append_stale(sid, column, index)
            state.last_scrape = seen
            self._note_time(timestamp_ms)
            if ids is not None:
                self.wal.log_append(target, timestamp_ms, ids, [value for _, value in samples], self._labels_of)
            return len(seen)

    def _labels_of(self, sid: int) -> Labels:
        return self._series[sid].labels

    def replay_append(self, target: str, timestamp_ms: int, samples: Sequence[tuple[Labels, float]]) -> bool:
        """An append from the write-ahead log (tsdb/wal.py), admitted as it was the first time
        (no churn allowance), False when the store refuses it now."""
        try:
            self._append(target, timestamp_ms, samples, 0, live=False)
        except (AppendError, LimitError) as exc:
            log.debug("write-ahead log: append of %s at %d not replayed: %s", target, timestamp_ms, exc)
            return False
        return True

    def _drop_ahead_of_clock(self, newest_ms: int) -> None:
        """A target's newest sample ``newest_ms`` is not before a live append: when it is more than
        ``CLOCK_STEP_TOLERANCE_MS`` ahead of the clock, the clock stepped back, and what every
        target holds stamped that far ahead came from a clock that was wrong. Kept, it would refuse
        every scrape, rule output and the server's own health until the clock passed it again (an
        hour's step: an hour blind, no alert able to fire). Dropped once, said and counted; the
        write-ahead log records the drop so that a restart gives the same store back."""
        now_ms = round(self.clock() * 1000)
        cutoff_ms = now_ms + CLOCK_STEP_TOLERANCE_MS
        if newest_ms <= cutoff_ms:
            return
        dropped = self._drop_after(cutoff_ms)
        self.clock_steps.note(now_ms, newest_ms, dropped)
        log.error("this server's clock stepped back: %d samples stamped up to %.0f s ahead of it were dropped, so that "
                  "scrapes and rules are stored again at once (check NTP)", dropped, (newest_ms - now_ms) / 1000)
        if self.wal is not None:
            self.wal.log_drop_after(cutoff_ms)

    def drop_after(self, cutoff_ms: int) -> int:
        """Drop every sample stamped after ``cutoff_ms`` (a replayed clock step); returns how many."""
        with self._lock:
            return self._drop_after(cutoff_ms)

    def _drop_after(self, cutoff_ms: int) -> int:
        columns = self._columns()
        for column in columns:
            del column.ts[bisect.bisect_right(column.ts, cutoff_ms):]
        dropped = 0
        live = self._live_series()
        removed = []
        for series in self._series.values():
            for segment in series.segments:
                excess = segment.first + len(segment.values) - segment.column.end
                if excess > 0:
                    dropped += _samples_in(segment.values, len(segment.values) - excess)
                    del segment.values[len(segment.values) - excess:]
                    segment.first = min(segment.first, segment.column.end)  # an emptied one starts at the end
            if self._trim(series) and series.id not in live:
                removed.append(series)
        for series in removed:
            self._delete(series)
        self.generation += 1
        self._epoch += 1
        self.max_time_ms = max((column.ts[-1] for column in columns if column.ts), default=None)
        return dropped

    def _columns(self) -> list[TimeColumn]:
        """Every time column: the targets' and those only series still read."""
        columns = {id(seg.column): seg.column for s in self._series.values() for seg in s.segments}
        columns.update({id(t.column): t.column for t in self._targets.values()})
        return list(columns.values())

    def _live_series(self) -> set[int]:
        """Series some target exposed in its last scrape: kept even when they hold no sample."""
        return set().union(*(t.last_scrape for t in self._targets.values())) if self._targets else set()

    def cut_wal(self) -> str | None:
        """Start the log's next segment before a snapshot is taken (``WriteAheadLog.cut``)."""
        with self._lock:
            return self.wal.cut() if self.wal is not None else None

    def close_wal(self) -> None:
        with self._lock:
            if self.wal is not None:
                self.wal.close()
                self.wal = None

    def sync_wal(self) -> None:
        """The log's records to disk, without holding appends up for the flush."""
        with self._lock:
            handle = self.wal.handle() if self.wal is not None else None
        if handle is not None:
            try:
                os.fsync(handle)
            except OSError as exc:
                log.error("write-ahead log not synced: %s", exc)
            finally:
                os.close(handle)

    def mark_target_gone(self, target: str, timestamp_ms: int) -> None:
        """The target left service discovery: every series it last exposed goes stale now."""
        with self._lock:
            state = self._targets.get(target)
            if state is None or not state.last_scrape:
                return
            column = state.column
            if column.ts and timestamp_ms <= column.ts[-1]:
                timestamp_ms = column.ts[-1] + 1
            column.ts.append(timestamp_ms)
            for sid in state.last_scrape:
                self._append_stale(sid, column, column.end - 1)
            state.last_scrape = set()
            if self.wal is not None:
                self.wal.log_gone(target, timestamp_ms)

    def append_series(self, labels: Labels, timestamps: Sequence[int], values: Sequence[float],
                      column: TimeColumn | None = None) -> None:
        """Bulk-load one series (import, snapshot restore). Pass one ``column`` for series that
        share timestamps; it must already hold exactly ``timestamps``."""
        with self._lock:
            if column is None:
                column = TimeColumn()
                column.ts.frombytes(np.asarray(timestamps, dtype=np.int64).tobytes())
            if labels in self._by_labels:
                raise AppendError(f"series {format_series(dict(labels))} already exists")
            if self.limits.max_series_total and len(self._series) >= self.limits.max_series_total:
                raise LimitError(f"store holds the maximum of {self.limits.max_series_total:,} series")
            series = self._get_or_create(labels, None)
            segment = _Segment(column, column.end - len(values))
            segment.values.frombytes(np.asarray(values, dtype=np.float64).tobytes())
            series.segments.append(segment)
            self._changed(labels)
            if len(timestamps):
                self._note_time(int(timestamps[0]))
                self._note_time(int(timestamps[-1]))

    def _append_stale(self, sid: int, column: TimeColumn, index: int) -> None:
        series = self._series.get(sid)
        if series is not None and series.owned_by(column):
            series.append(column, index, STALE_NAN)

    def _get_or_create(self, labels: Labels, origin: str | None) -> _Series:
        """Limits are the caller's: checked before a sample of the append is stored."""
        sid = self._by_labels.get(labels)
        if sid is not None:
            return self._series[sid]  # repeated within one page
        sid = self._next_id
        self._next_id += 1
        series = _Series(sid, labels, origin)
        self._changed(labels)
        self._series[sid] = series
        self._by_labels[labels] = sid
        for name, value in labels:
            self._postings.setdefault(name, {}).setdefault(value, set()).add(sid)
        return series

    def _changed(self, labels: Labels) -> None:
        self.generation += 1
        name = _metric_name(labels)
        self._name_generation[name] = self._name_generation.get(name, 0) + 1

    def _stamp(self, matchers: Sequence[LabelMatcher]) -> tuple:
        """What a cached selection for ``matchers`` must match to be valid: per metric name when
        the selector names one, else the whole store's generation."""
        for matcher in matchers:
            if matcher.name == "__name__" and matcher.op == EQUAL:
                return (self._epoch, matcher.value, self._name_generation.get(matcher.value, 0))
        return ("any", self.generation)

    def _check_limits(self, target: str, samples: Sequence[tuple[Labels, float]], series_limit: int,
                      label_values_limit: int) -> None:
        limit = series_limit
        if limit and len(samples) > limit:
            raise LimitError(f"target {target} exposes {len(samples)} series, more than the limit of {limit}")
        limit = label_values_limit
        if limit and len(samples) > limit:
            values: dict[str, set[str]] = {}
            for labels, _ in samples:
                for name, value in labels:
                    seen = values.setdefault(name, set())
                    seen.add(value)
                    if len(seen) > limit:
                        raise LimitError(f"target {target}: label {name!r} has more than {limit} values "
                                         f"(label cardinality limit)")

    def _note_time(self, timestamp_ms: int) -> None:
        if self.max_time_ms is None or timestamp_ms > self.max_time_ms:
            self.max_time_ms = timestamp_ms
        if self.min_time_ms is None or timestamp_ms < self.min_time_ms:
            self.min_time_ms = timestamp_ms

    # ---- retention -----------------------------------------------------------------------
    def apply_retention(self, now_ms: int | None = None) -> int:
        """Drop samples older than the retention before ``now_ms`` (default: the newest sample,
        so imported history is kept as long as nothing newer arrives). Returns series removed."""
        with self._lock:
            reference = now_ms if now_ms is not None else self.max_time_ms
            if reference is None:
                return 0
            cutoff = reference - self.retention_ms
            for column in self._columns():
                keep_from = bisect.bisect_left(column.ts, cutoff)
                if keep_from:
                    del column.ts[:keep_from]
                    column.base += keep_from
            live = self._live_series()
            removed = [s for s in self._series.values() if self._trim(s) and s.id not in live]
            for series in removed:
                self._delete(series)
            self.generation += 1  # segments may have been dropped even where no series was
            self._epoch += 1
            self.min_time_ms = max(self.min_time_ms or cutoff, cutoff)
            return len(removed)

    @staticmethod
    def _trim(series: _Series) -> bool:
        """Cut values before each column's base; True when nothing is left."""
        for segment in series.segments:
            segment.trim()
        kept = [seg for seg in series.segments if seg.values]
        if kept or not series.segments:
            series.segments = kept
        else:
            series.segments = series.segments[-1:]  # keep the live column binding, empty
        return not kept

    def _delete(self, series: _Series) -> None:
        self._changed(series.labels)
        if series.origin is not None:
            self._admission.deleted(series.origin)
        del self._series[series.id]
        del self._by_labels[series.labels]
        for name, value in series.labels:
            ids = self._postings[name][value]
            ids.discard(series.id)
            if not ids:
                del self._postings[name][value]
                if not self._postings[name]:
                    del self._postings[name]

    # ---- reading -------------------------------------------------------------------------
    def _match_ids(self, matchers: Sequence[LabelMatcher]) -> set[int]:
        result: set[int] | None = None
        # Cheap, selective matchers first so the later set operations work on small sets.
        ordered = sorted(matchers, key=lambda m: (m.op != EQUAL or m.value == "", m.op))
        for matcher in ordered:
            ids = self._ids_for(matcher, result)
            result = ids if result is None else result & ids
            if not result:
                return set()
        return result if result is not None else set(self._series)

    def _ids_for(self, matcher: LabelMatcher, candidates: set[int] | None) -> set[int]:
        values = self._postings.get(matcher.name, {})
        if matcher.op == EQUAL and matcher.value != "":
            return set(values.get(matcher.value, ()))
        if candidates is not None and len(candidates) < 64:
            # Checking a few series directly beats scanning a label's whole value list.
            return {sid for sid in candidates
                    if matcher.matches(dict(self._series[sid].labels).get(matcher.name, ""))}
        hits: set[int] = set()
        for value, ids in values.items():
            if matcher.matches(value):
                hits |= ids
        if matcher.matches(""):
            with_label = set().union(*values.values()) if values else set()
            hits |= set(self._series) - with_label
        return hits

    def select(self, matchers: Sequence[LabelMatcher], mint_ms: int, maxt_ms: int) -> list[SeriesData]:
        """Every series matching all ``matchers`` with its samples in [mint_ms, maxt_ms]."""
        out: list[SeriesData] = []
        with self._lock:
            for sid in self._match_ids(matchers):
                series = self._series[sid]
                parts = [part for segment in series.segments
                         if (part := self._read(segment, mint_ms, maxt_ms)) is not None]
                if len(parts) == 1:
                    out.append(SeriesData(dict(series.labels), *parts[0]))
                elif parts:
                    out.append(SeriesData(dict(series.labels), np.concatenate([p[0] for p in parts]),
                                          np.concatenate([p[1] for p in parts])))
        for data in out:
            bits = data.values.view(np.uint64)
            keep = bits != ABSENT_BITS
            if not keep.all():
                data.timestamps, data.values = data.timestamps[keep], data.values[keep]
        return [data for data in out if len(data.values)]

    def _selection(self, matchers: Sequence[LabelMatcher]) -> _Selection:
        """The cached selection for ``matchers`` (callers hold the lock)."""
        key = tuple(matchers)
        stamp = self._stamp(matchers)
        cached = self._selections.get(key)
        if cached is not None and cached.stamp == stamp:
            return cached
        groups: dict[int, tuple[TimeColumn, list[_Segment], list[LabelSet], list[int]]] = {}
        moved = False
        for sid in sorted(self._match_ids(matchers)):  # sorted: results do not depend on set order
            series = self._series[sid]
            moved = moved or len(series.segments) > 1
            for segment in series.segments:
                group = groups.get(id(segment.column))
                if group is None:
                    group = groups[id(segment.column)] = (segment.column, [], [], [])
                group[1].append(segment)
                group[2].append(series.label_set)
                group[3].append(sid)
        if len(self._selections) >= _SELECTION_CACHE_SIZE:
            self._selections.clear()  # selectors come from a small set of rules and panels
        selection = self._selections[key] = _Selection(stamp, list(groups.values()), moved)
        return selection

    def series_count(self, matchers: Sequence[LabelMatcher]) -> int:
        """How many series ``matchers`` select (at any time): the places a read's ``places`` counts in."""
        with self._lock:
            return self._selection(matchers).series_count()

    def select_blocks(self, matchers: Sequence[LabelMatcher], mint_ms: int, maxt_ms: int,
                      charge: Charge | None = None, places: slice | None = None) -> list[Block]:
        """Matching series in [mint_ms, maxt_ms], grouped by the time column they share. A series
        that moved between columns appears in one block per column. ``charge`` is told the
        samples the blocks will hold (padding included) and their rows before any is copied.
        ``places``: only the series at these places of the selection (``series_count``)."""
        with self._lock:
            selection = self._selection(matchers)
            ranks = selection.ranks.tolist() if places is not None else None
            first = 0  # the group's first row in the selection's flat rows
            spans = []  # per column: its window and the segments with samples in it, nothing copied yet
            for column, segments, label_sets, _ in selection.groups:
                first, row = first + len(segments), first
                lo = bisect.bisect_left(column.ts, mint_ms)
                hi = bisect.bisect_right(column.ts, maxt_ms, lo)
                if lo >= hi:
                    continue
                inside = []
                for i, (segment, labels) in enumerate(zip(segments, label_sets), row):
                    if ranks is not None and not places.start <= ranks[i] < places.stop:
                        continue
                    start, end = segment.window()
                    if max(lo, start) < min(hi, end):
                        inside.append((segment, labels, start, end))
                if inside:
                    spans.append((column, lo, hi, inside))
            if charge is not None:  # a row per segment, padded to its column's window
                charge(sum((hi - lo) * len(inside) for _, lo, hi, inside in spans),
                       sum(len(inside) for _, _, _, inside in spans))
            blocks = []
            for column, lo, hi, inside in spans:
                rows = [(labels, max(lo, start) - lo, segment.values[max(lo, start) - start:min(hi, end) - start])
                        for segment, labels, start, end in inside]
                blocks.append((column.ts[lo:hi], rows))
        out = []
        for ts, rows in blocks:
            timestamps = np.frombuffer(ts, dtype=np.int64)
            width = len(timestamps)
            if all(offset == 0 and len(part) == width for _, offset, part in rows):
                # The usual case (every series in every scrape): one copy, no per-row work.
                values = np.frombuffer(b"".join(part for _, _, part in rows), dtype=np.float64)
                values = values.reshape(len(rows), width)
            else:
                values = np.full((len(rows), width), ABSENT)
                for i, (_, offset, part) in enumerate(rows):
                    values[i, offset:offset + len(part)] = np.frombuffer(part, dtype=np.float64)
            out.append(Block(timestamps, [labels for labels, _, _ in rows], values, selection.moved))
        return out

    def select_windows(self, matchers: Sequence[LabelMatcher], mint_ms: int, maxt_ms: int,
                       charge: Charge | None = None, places: slice | None = None) -> list[Window] | None:
        """Matching series in [mint_ms, maxt_ms] as one matrix per window width (usually one:
        targets scraped at one interval), for a range selector at one time: a few numpy calls
        for all series instead of a block per target. None when a series moved between columns
        (``select_blocks`` joins those). ``charge`` is told the samples the matrices will hold
        (padding included) and their rows before any is copied. ``places``: as ``select_blocks``."""
        with self._lock:
            sel = self._selection(matchers)
            if sel.moved:
                return None
            if not sel.segments:
                return []
            lo, hi = sel.positions(mint_ms, maxt_ms)
            hi = np.maximum(hi, lo)
            low = (sel.bases + lo)[sel.column_of]
            high = (sel.bases + hi)[sel.column_of]
            firsts = sel.firsts
            ends = firsts + np.fromiter(map(len, sel.arrays), np.int64, len(sel.arrays))
            start, stop = np.maximum(firsts, low), np.minimum(ends, high)
            valid = start < stop
            if places is not None:
                valid &= (sel.ranks >= places.start) & (sel.ranks < places.stop)
            every = valid.all()
            rows = np.flatnonzero(valid)
            if charge is not None:
                charge(int((high - low)[rows].sum()), len(rows))
            arrays = sel.arrays if every else [sel.arrays[i] for i in rows.tolist()]
            # The timestamps of the columns read only (a part of the series reads a few of them).
            used_columns = range(len(sel.stamps)) if every else np.unique(sel.column_of[rows]).tolist()
            stamps = {c: sel.stamps[c][lo[c]:hi[c]] for c in used_columns}
            # Slicing copies, so the matrices never pin the store's growing buffers.
            parts = list(map(operator.getitem, arrays, map(slice, (start - firsts)[rows].tolist(),
                                                          (stop - firsts)[rows].tolist())))
            labels = sel.labels if every else [sel.labels[i] for i in rows.tolist()]
        pad_before = (start - low)[rows]
        widths = (high - low)[rows]
        full_rows = (pad_before == 0) & ((stop - start)[rows] == widths)
        columns = sel.column_of[rows]
        column_ts = {c: np.frombuffer(ts, dtype=np.int64) for c, ts in stamps.items()}
        out = []
        for width in np.unique(widths).tolist():
            single = (widths == width).all()
            members = np.arange(len(rows)) if single else np.flatnonzero(widths == width)
            if full_rows[members].all():
                values = np.frombuffer(b"".join(parts if single else [parts[i] for i in members.tolist()]),
                                       dtype=np.float64)
                values = values.reshape(len(members), width)
            else:  # some series started or stopped inside the window: ABSENT around its samples
                values = np.full((len(members), width), ABSENT)
                for row, i in enumerate(members.tolist()):
                    values[row, pad_before[i]:pad_before[i] + len(parts[i])] = np.frombuffer(parts[i], np.float64)
            used = columns[members]
            distinct = np.unique(used)
            stacked = np.array([column_ts[c] for c in distinct.tolist()]).reshape(len(distinct), width)
            timestamps = stacked[np.searchsorted(distinct, used)]
            out.append(Window(labels if single else [labels[i] for i in members.tolist()], timestamps, values))
        return out

    def select_latest(self, matchers: Sequence[LabelMatcher], t_ms: int, lookback_ms: int) -> Latest:
        """Per matching series, the newest sample in [t_ms - lookback_ms, t_ms] (ABSENT padding
        skipped); series whose newest sample there is a stale marker, or that have none, are left
        out. This is an instant vector selector: one value read per series instead of a window."""
        with self._lock:
            sel = self._selection(matchers)
            if not sel.segments:
                return Latest([], np.zeros(0), np.zeros(0, dtype=np.int64))
            # Per column, in absolute indices (see _Segment): the newest sample at or before t_ms,
            # the oldest one not before the lookback, and the newest one's time.
            lo, hi = sel.positions(t_ms - lookback_ms, t_ms)
            found = lo < hi
            newest_time = np.zeros(len(hi), dtype=np.int64)
            if found.any():
                last = np.maximum(hi - 1, 0)
                newest_time[found] = [sel.stamps[c][last[c]] for c in np.flatnonzero(found).tolist()] \
                    if not found.all() else np.fromiter(map(operator.getitem, sel.stamps, last.tolist()), np.int64,
                                                        len(last))
            column_newest = np.where(found, sel.bases + hi - 1, -1)[sel.column_of]
            column_oldest = np.where(found, sel.bases + lo, 2**62)[sel.column_of]
            firsts = sel.firsts
            ends = firsts + np.fromiter(map(len, sel.arrays), np.int64, len(sel.arrays))
            # A segment that ended earlier (its series left the target) offers its last sample.
            at = np.minimum(ends - 1, column_newest)
            valid = at >= np.maximum(firsts, column_oldest)
            rows = np.flatnonzero(valid)
            at = at[rows]
            offsets = (at - firsts[rows]).tolist()
            arrays = sel.arrays if len(rows) == len(sel.arrays) else [sel.arrays[i] for i in rows.tolist()]
            values = np.fromiter(map(operator.getitem, arrays, offsets), np.float64, len(rows))
            bits = values.view(np.uint64)
            for j in np.flatnonzero(bits == ABSENT_BITS).tolist():
                at[j], values[j] = self._newest_real(sel.segments[rows[j]], int(at[j]), int(column_oldest[rows[j]]))
            keep = (bits != ABSENT_BITS) & (bits != STALE_NAN_BITS)
            rows, at = rows[keep], at[keep]
            values = values[keep]
            columns = sel.column_of[rows]
            times = np.array(newest_time, dtype=np.int64)[columns]
            for j in np.flatnonzero(at != column_newest[rows]).tolist():
                column = sel.columns[columns[j]]
                times[j] = column.ts[int(at[j]) - column.base]
            row_list = rows.tolist()
            labels = sel.labels if len(row_list) == len(sel.labels) else [sel.labels[i] for i in row_list]
            latest = Latest(labels, values, times)
            return _newest_per_series(latest, [sel.ids[i] for i in row_list]) if sel.moved else latest

    @staticmethod
    def _newest_real(segment: _Segment, at: int, oldest: int) -> tuple[int, float]:
        """The series skipped the scrape at ``at``: its newest real sample not before ``oldest``
        (rare), or ABSENT."""
        k = at - segment.first
        while k >= 0 and segment.first + k >= oldest and _is_absent(segment.values[k]):
            k -= 1
        if k >= 0 and segment.first + k >= oldest:
            return segment.first + k, segment.values[k]
        return at, ABSENT

    @staticmethod
    def _read(segment: _Segment, mint_ms: int, maxt_ms: int) -> tuple[np.ndarray, np.ndarray] | None:
        lo, hi, offset = segment.between(mint_ms, maxt_ms)
        if lo >= hi:
            return None
        # Slicing copies, so the arrays returned never pin the store's growing buffers.
        return (np.frombuffer(segment.column.ts[lo + offset:hi + offset], dtype=np.int64),
                np.frombuffer(segment.values[lo:hi], dtype=np.float64))

    def series_labels(self, matchers: Sequence[LabelMatcher], mint_ms: int | None = None,
                      maxt_ms: int | None = None, check: Callable[[], None] | None = None) -> list[dict[str, str]]:
        """Label sets of matching series with at least one sample in the window (if given).

        No sample is copied to tell (a window over everything would copy the store), and the
        series are looked at ``SERIES_WALK_CHUNK`` per hold of the lock, so that scrapes and rules
        append between chunks; ``check``, called before each chunk, may raise to end the walk (a
        request's deadline)."""
        with self._lock:
            ids = sorted(self._match_ids(matchers))
        windowed = mint_ms is not None or maxt_ms is not None
        lo = -(2**62) if mint_ms is None else mint_ms
        hi = 2**62 if maxt_ms is None else maxt_ms
        out: list[dict[str, str]] = []
        for first in range(0, len(ids), SERIES_WALK_CHUNK):
            if check is not None:
                check()
            with self._lock:
                for sid in ids[first:first + SERIES_WALK_CHUNK]:
                    series = self._series.get(sid)  # gone since the match: dropped by retention
                    if series is not None and (not windowed or any(
                            segment.has_sample_between(lo, hi) for segment in series.segments)):
                        out.append(dict(series.labels))
        return out

    def label_names(self) -> list[str]:
        with self._lock:
            return sorted(self._postings)

    def label_values(self, name: str) -> list[str]:
        with self._lock:
            return sorted(self._postings.get(name, {}))

    # ---- introspection -------------------------------------------------------------------
    def stats(self) -> dict[str, int]:
        """Series and targets held now; samples and the bytes their arrays hold (values +
        timestamps) as of a walk over every series at most ``STATS_MAX_AGE_S`` old.

        The walk costs ~0.1 s at 130,000 series and self-ingest asks at every scrape interval: on
        the demo (5 s) it was an eighth of the server's time under the interpreter lock. It runs
        outside the store's lock (scrapes append meanwhile: its figures are those of a moment
        during the walk)."""
        with self._lock:
            figures = {"series": len(self._series), "targets": len(self._targets)}
            walked = self._stats
            stale = walked is None or time.monotonic() - walked[0] >= STATS_MAX_AGE_S
            series = list(self._series.values()) if stale else []
        if stale:
            samples = sum(s.sample_count() for s in series)
            columns = {id(seg.column): seg.column for s in series for seg in list(s.segments)}
            ts_bytes = sum(len(c.ts) * 8 for c in columns.values())
            walked = self._stats = (time.monotonic(), samples, samples * 8 + ts_bytes)
        return {**figures, "samples": walked[1], "sample_bytes": walked[2]}

    def problems(self, now_ms: float | None = None) -> dict[str, str]:
        """New series refused in the last minutes because the store is full (tsdb/admission.py),
        and a recent step back of the clock."""
        with self._lock:
            return {**self._admission.problems(now_ms), **self.clock_steps.problems(self.clock())}

    @property
    def refused_series(self) -> dict[str, int]:
        """Appends refused for their new series, by reason: churn, share, total."""
        with self._lock:
            return dict(self._admission.refused)

    def iter_series(self) -> Iterator[tuple[Labels, np.ndarray, np.ndarray]]:
        """Every series there when the walk begins, with all its timestamps and values (ABSENT
        padding removed), for snapshots.

        Read a piece (``SNAPSHOT_PIECE_SAMPLES``, ``SNAPSHOT_PIECE_SERIES``) per hold of the lock:
        scrapes and rules append between pieces, and a snapshot holds one piece in memory, not a
        copy of the store.
        Each series is read as it is when its piece is; what is appended meanwhile also goes to
        the write-ahead log, which the snapshot's caller cuts before the walk."""
        with self._lock:
            ids = list(self._series)
        position = 0
        while position < len(ids):
            piece: list[tuple[Labels, list]] = []
            with self._lock:
                budget, end = SNAPSHOT_PIECE_SAMPLES, position + SNAPSHOT_PIECE_SERIES
                while position < min(len(ids), end) and budget > 0:
                    series = self._series.get(ids[position])  # gone since: dropped by retention
                    position += 1
                    if series is not None:
                        budget -= series.sample_count()
                        piece.append((series.labels, [self._read(seg, -(2**62), 2**62) for seg in series.segments]))
            for labels, parts in piece:
                parts = [p for p in parts if p is not None]
                if parts:
                    ts = np.concatenate([p[0] for p in parts]) if len(parts) > 1 else parts[0][0]
                    vs = np.concatenate([p[1] for p in parts]) if len(parts) > 1 else parts[0][1]
                    keep = vs.view(np.uint64) != ABSENT_BITS
                    yield labels, (ts if keep.all() else ts[keep]), (vs if keep.all() else vs[keep])


def _metric_name(labels: Labels) -> str:
    if labels and labels[0][0] == "__name__":  # sorted: it comes first unless a name is uppercase
        return labels[0][1]
    return dict(labels).get("__name__", "")


def _samples_in(values: array, start: int) -> int:
    """Samples (not a gap's padding) in ``values[start:]``; the view is gone once this returns,
    so the array can be cut."""
    return int(np.count_nonzero(np.frombuffer(values, dtype=np.uint64)[start:] != ABSENT_BITS))


def _is_absent(value: float) -> bool:
    return value != value and struct.pack("<d", value) == struct.pack("<Q", ABSENT_BITS)


def _newest_per_series(latest: Latest, ids: list[int]) -> Latest:
    """A series read from two columns (it moved between targets) keeps its newer sample."""
    best: dict[int, int] = {}
    for row, sid in enumerate(ids):
        other = best.get(sid)
        if other is None or latest.times[row] > latest.times[other]:
            best[sid] = row
    if len(best) == len(ids):
        return latest
    rows = sorted(best.values())
    return Latest([latest.labels[r] for r in rows], latest.values[rows], latest.times[rows])


def sorted_labels(labels: Iterable[tuple[str, str]]) -> Labels:
    return tuple(sorted(labels))


def format_series(labels: dict[str, str]) -> str:
    """A series as PromQL writes it: ``name{a="1", b="2"}``."""
    name = labels.get("__name__", "")
    inner = ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items()) if k != "__name__")
    return f"{name}{{{inner}}}"
