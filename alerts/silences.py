"""Silences: matchers (incl. regex) with a start, an end, an author and a comment; created, listed
and expired through the API; persisted in SQLite and cached in memory, indexed by a label each
requires (checked on every flush: an alert is tried only against the silences that could match it).

Shape and rules follow Alertmanager's API v2: state pending/active/expired from the times; expiring
an active silence sets its end to now, a pending one ends where it starts; a silence needs at
least one matcher that does not match the empty string (else it would silence everything).
Beyond Alertmanager, both ends must be times a view can write (at most 9999-12-31T23:59:59Z): a
"99999999y" silence used to be stored and then break /alerts and /api/silences for everyone.

A row this store cannot read (written by an older version, or damaged) never breaks a view: one
whose end is past that bound is kept with its end clamped there (it still mutes, and can now be
seen and expired); one whose matchers cannot be read is left out (``unreadable``); each is
logged once, when the store loads.
"""
from __future__ import annotations

import bisect
import json
import logging
import math
import threading
import time
import uuid
from dataclasses import dataclass, replace
from typing import Callable, Iterable

from alerts.model import EARLIEST, LATEST, Alert, rfc3339, renderable
from alerts.notify.matchers import AlertMatcher, matches_all
from alerts.notify.sqlite import Database

log = logging.getLogger(__name__)

PENDING, ACTIVE, EXPIRED = "pending", "active", "expired"
SCHEMA = """
CREATE TABLE IF NOT EXISTS silences (
    id TEXT PRIMARY KEY, matchers TEXT NOT NULL, starts_at REAL NOT NULL, ends_at REAL NOT NULL,
    created_by TEXT NOT NULL, comment TEXT NOT NULL, updated_at REAL NOT NULL
);
"""
EXPIRED_RETENTION = 5 * 24 * 3600.0  # Alertmanager keeps expired silences for --data.retention
# Active and pending silences at once (Alertmanager's --silences.max-silences, unlimited there):
# room for one silence per node of a 16,384-node cluster, and a bound for a script creating them
# in a loop.
DEFAULT_MAX_SILENCES = 20_000


class SilenceError(ValueError):
    """A silence the API must refuse; the message says why."""


@dataclass(frozen=True)
class Silence:
    id: str
    matchers: tuple[AlertMatcher, ...]
    starts_at: float
    ends_at: float
    created_by: str
    comment: str
    updated_at: float

    def state(self, now: float) -> str:
        if now < self.starts_at:
            return PENDING
        return ACTIVE if now < self.ends_at else EXPIRED

    def matches(self, alert: Alert) -> bool:
        return matches_all(self.matchers, alert.labels)

    @property
    def required_labels(self) -> list[tuple[str, str]]:
        """Labels every alert it matches carries with exactly these values (its ``name="v"``
        matchers with a value); none: it must be tried on every alert."""
        return [(m.name, m.value) for m in self.matchers if m.op == "=" and m.value]


class SilenceStore:
    def __init__(self, db: Database, clock: Callable[[], float] = time.time,
                 max_silences: int = DEFAULT_MAX_SILENCES) -> None:
        self.db = db
        self.clock = clock
        self.max_silences = max_silences
        self._lock = threading.Lock()
        self.unreadable: dict[str, str] = {}  # silence id -> why it is left out
        self.version = 0  # moves whenever a silence is created, expired or collected (alerts/judged.py)
        db.script(SCHEMA)
        self._cache: dict[str, Silence] = {}
        # Which silences an alert could match, by one label each requires: a maintenance script
        # silences nodes one by one, and every alert of a storm was tried against every such
        # silence. Buckets are replaced, never changed, so that ``muted_by`` reads them unlocked
        # (a create holds the lock through its disk write).
        self._by_label: dict[tuple[str, str] | None, dict[str, Silence]] = {}
        self._key_of: dict[str, tuple[str, str] | None] = {}
        self._ends: list[float] = []  # every silence's end, sorted: those in force are the ones after now
        for silence in self._load():
            self._put(silence, in_place=True)  # nobody reads yet: no bucket copied per silence

    def _load(self) -> Iterable[Silence]:
        for row in self.db.execute("SELECT * FROM silences"):
            try:
                silence = _from_row(row)
            except (ValueError, TypeError, KeyError) as exc:
                self.unreadable[row["id"]] = str(exc)
                log.warning("stored silence %s cannot be read and is ignored (expire or delete it): %s", row["id"],
                            exc)
                continue
            if silence.ends_at > LATEST or silence.starts_at > LATEST or silence.updated_at > LATEST:
                log.warning("stored silence %s ends after %s: shown as ending then", silence.id, rfc3339(LATEST))
                silence = replace(silence, starts_at=min(silence.starts_at, LATEST),
                                  ends_at=min(silence.ends_at, LATEST), updated_at=min(silence.updated_at, LATEST))
            yield silence

    def _save(self, silence: Silence) -> None:
        matchers = json.dumps([{"name": m.name, "op": m.op, "value": m.value} for m in silence.matchers])
        self.db.execute("INSERT OR REPLACE INTO silences VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (silence.id, matchers, silence.starts_at, silence.ends_at, silence.created_by,
                         silence.comment, silence.updated_at))
        self._put(silence)
        self.version += 1

    def _put(self, silence: Silence, in_place: bool = False) -> None:
        """In the cache and the index. A new silence goes under the label it requires whose bucket
        is smallest: ``alertname="GpuXid", instance="n7"`` beside a hundred silences of that
        alert goes under its node."""
        replaced = self._cache.get(silence.id)
        if replaced is not None:
            del self._ends[bisect.bisect_left(self._ends, replaced.ends_at)]
        bisect.insort(self._ends, silence.ends_at)
        self._cache[silence.id] = silence
        if silence.id not in self._key_of:  # a change keeps the matchers, and so the bucket
            self._key_of[silence.id] = min(silence.required_labels, default=None,
                                           key=lambda label: len(self._by_label.get(label, ())))
        key = self._key_of[silence.id]
        if in_place:
            self._by_label.setdefault(key, {})[silence.id] = silence
        else:
            self._by_label[key] = {**self._by_label.get(key, {}), silence.id: silence}

    def _drop(self, silence_id: str) -> None:
        silence = self._cache.pop(silence_id)
        del self._ends[bisect.bisect_left(self._ends, silence.ends_at)]
        key = self._key_of.pop(silence_id)
        bucket = {sid: s for sid, s in self._by_label[key].items() if sid != silence_id}
        if bucket:
            self._by_label[key] = bucket
        else:
            del self._by_label[key]

    def create(self, matchers: Iterable[AlertMatcher], ends_at: float, created_by: str, comment: str,
               starts_at: float | None = None) -> Silence:
        now = self.clock()
        matchers = tuple(matchers)
        starts_at = now if starts_at is None or starts_at < now else starts_at
        if not matchers:
            raise SilenceError("a silence needs at least one matcher")
        if all(m.matches({}) for m in matchers):
            raise SilenceError("at least one matcher must not match the empty string (it would silence everything)")
        for name, value in (("startsAt", starts_at), ("endsAt", ends_at)):
            if not renderable(value):
                raise SilenceError(f"{name} must be a time up to {rfc3339(LATEST)} (the duration or time given is "
                                   "too far in the future)")
        if ends_at <= starts_at:
            raise SilenceError("endsAt must be after startsAt (and in the future)")
        if not created_by.strip():
            raise SilenceError("createdBy is required")
        if not comment.strip():
            raise SilenceError("comment is required")
        silence = Silence(uuid.uuid4().hex, matchers, starts_at, ends_at, created_by, comment, now)
        with self._lock:
            in_force = len(self._ends) - bisect.bisect_right(self._ends, now)  # Silence.state: ends_at > now
            if self.max_silences and in_force >= self.max_silences:
                raise SilenceError(f"exceeded maximum number of silences: {in_force} (limit: {self.max_silences}); "
                                   "expire some, or cover several alerts with one (a regex matcher)")
            self._save(silence)
        return silence

    def get(self, silence_id: str) -> Silence | None:
        return self._cache.get(silence_id)

    def list(self, state: str | None = None) -> list[Silence]:
        now = self.clock()
        found = [s for s in self._cache.values() if state is None or s.state(now) == state]
        return sorted(found, key=lambda s: (s.ends_at, s.id))

    def expire(self, silence_id: str) -> Silence:
        return self.end_at(silence_id, self.clock())

    def end_at(self, silence_id: str, ends_at: float) -> Silence:
        """Bring a silence's end forward to ``ends_at`` (now or later; never past its own end)."""
        now = self.clock()
        with self._lock:
            silence = self._cache.get(silence_id)
            if silence is None:
                raise KeyError(silence_id)
            state = silence.state(now)
            if state == EXPIRED:
                raise SilenceError(f"silence {silence_id} is already expired")
            ends_at = min(max(ends_at, now), silence.ends_at)
            start = min(silence.starts_at, ends_at) if state == PENDING else silence.starts_at
            silence = replace(silence, starts_at=start, ends_at=ends_at, updated_at=now)
            self._save(silence)
        return silence

    def muted_by(self, alert: Alert, now: float) -> list[str]:
        """The active silences that match ``alert``, by id."""
        index = self._by_label
        if not index:
            return []  # the usual case, judged for each of a storm's alerts on every pass
        candidates = list(index.get(None, {}).values())
        for label in alert.labels.items():
            bucket = index.get(label)
            if bucket:
                candidates.extend(bucket.values())
        return sorted(s.id for s in candidates if s.state(now) == ACTIVE and s.matches(alert))

    def gc(self, now: float, retention: float = EXPIRED_RETENTION) -> int:
        with self._lock:
            old = [s.id for s in self._cache.values() if s.ends_at < now - retention]
            for silence_id in old:
                self.db.execute("DELETE FROM silences WHERE id=?", (silence_id,))
                self._drop(silence_id)
            if old:
                self.version += 1
        return len(old)


def _from_row(row) -> Silence:
    """A stored row as a Silence; ValueError (or TypeError, KeyError) when it cannot be one."""
    matchers = tuple(AlertMatcher(m["name"], m["op"], m["value"]) for m in json.loads(row["matchers"]))
    if not matchers:
        raise ValueError("no matchers")
    times = tuple(float(row[name]) for name in ("starts_at", "ends_at", "updated_at"))
    if not all(math.isfinite(t) and t >= EARLIEST for t in times):
        raise ValueError(f"times out of range: {times}")
    return Silence(row["id"], matchers, *times[:2], str(row["created_by"]), str(row["comment"]), times[2])
