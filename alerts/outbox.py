"""Durable delivery: every notification is written to SQLite before its first attempt and
kept until it is delivered, refused for good (a 4xx), or older than ``max_age``.

Why an outbox rather than Alertmanager's in-memory retry: a receiver down for an hour, or a
restart in between, must lose nothing. Each row carries an idempotency key (group key, receiver,
integration, status, alert sets and the previous send of that group); writing the same key
twice is a no-op, so a pipeline that restarts and rebuilds a notification it had already queued
adds nothing. Delivery is at least once towards the receiver (a crash after its 2xx and before
the row is marked resends once, with the same ``Idempotency-Key`` header for it to drop).

Rows of one (receiver, integration, group) are delivered in order: a later notification waits
while an earlier one is being retried, so a receiver never sees "resolved" before "firing".

Fair under a dead receiver (Alertmanager keeps a queue per receiver for the same reason): each
target (receiver, integration) is a lane of its own. The deliverer asks for the targets with a due
head (the oldest pending row of a group), never for the globally oldest rows, and works each target
on its own thread, so a receiver that refuses or hangs holds only its own lane; the in-process
remediation hook is a target like any other and is never behind another's backlog. What waits
is bounded per receiver (``max_pending_per_receiver``): past it the oldest pending rows of that
receiver are dropped, logged and counted (``clusterwatch_notifications_dropped_total{reason=
"queue_full"}``), never another receiver's.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import random
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from alerts.notify.integrations import DeliveryError, Integration
from alerts.notify.metrics import NotifyMetrics
from alerts.notify.sqlite import Database

log = logging.getLogger(__name__)

PENDING, DELIVERED, FAILED, EXPIRED = "pending", "delivered", "failed", "expired"
SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    receiver TEXT NOT NULL, integration TEXT NOT NULL, group_key TEXT NOT NULL, status TEXT NOT NULL,
    body TEXT NOT NULL, created_at REAL NOT NULL, next_attempt REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0, state TEXT NOT NULL DEFAULT 'pending',
    last_error TEXT, delivered_at REAL
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (state, next_attempt);
CREATE INDEX IF NOT EXISTS outbox_age ON outbox (state, created_at);
CREATE INDEX IF NOT EXISTS outbox_lanes ON outbox (state, receiver, integration, group_key, id);
"""
DEFAULT_MAX_AGE = 24 * 3600.0
DONE_RETENTION = 7 * 24 * 3600.0  # delivered/failed rows kept for the API, then dropped
DONE_MAX_ROWS = 100_000  # and at most this many of them: a storm a minute must not fill the disk
DEFAULT_MAX_PENDING_PER_RECEIVER = 10_000
HEADS_PER_ROUND = 100  # due group heads one target's worker takes per query
# Share of the time the delivery loop may spend asking which lanes are due (a query over every
# pending row: ~10 ms per 10,000): after each look it rests 1/LOOK_SHARE - 1 times as long.
LOOK_SHARE = 0.2

Target = tuple[str, str]  # (receiver, integration): one delivery lane
SENT, FAILED, PAUSED = "sent", "failed", "paused"  # outcomes of one attempt
# (receiver, integration, reason, count): notifications given up without delivery.
DropCallback = Callable[[str, str, str, int], None]

# The oldest pending row of each group lane: the only row of a group that may be attempted.
_HEADS = "SELECT MIN(id) AS id FROM outbox WHERE state = 'pending' {where} GROUP BY receiver, integration, group_key"


def idempotency_key(group_key: str, receiver: str, integration: str, status: str, firing: Iterable[str],
                    resolved: Iterable[str], previous_sent: float | None) -> str:
    parts = [group_key, receiver, integration, status, ",".join(sorted(firing)), ",".join(sorted(resolved)),
             repr(previous_sent)]
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


@dataclass(frozen=True)
class Backoff:
    """Exponential with "equal jitter": half the delay fixed, half random, capped."""

    initial: float = 1.0
    factor: float = 2.0
    cap: float = 300.0

    def delay(self, attempts: int, rng: Callable[[], float] = random.random) -> float:
        base = min(self.cap, self.initial * self.factor ** max(0, attempts - 1))
        return base / 2 + rng() * base / 2


@dataclass(frozen=True)
class Entry:
    id: int
    key: str
    receiver: str
    integration: str
    group_key: str
    status: str
    body: dict[str, Any]
    created_at: float
    next_attempt: float
    attempts: int
    state: str
    last_error: str | None
    delivered_at: float | None

    @property
    def target(self) -> Target:
        return self.receiver, self.integration

    @classmethod
    def from_row(cls, row) -> "Entry":
        values = dict(row)
        values["body"] = json.loads(values["body"])
        return cls(**values)


class Outbox:
    """The outbox table plus, in memory, how many rows each target has pending (the cap, the
    metrics and the alerts page read that, never the database)."""

    def __init__(self, db: Database, max_pending_per_receiver: int = DEFAULT_MAX_PENDING_PER_RECEIVER,
                 on_drop: DropCallback = lambda receiver, integration, reason, count: None) -> None:
        if not isinstance(max_pending_per_receiver, int) or max_pending_per_receiver < 1:
            raise ValueError(f"max_pending_per_receiver must be a positive integer, not {max_pending_per_receiver!r}")
        self.db = db
        self.max_pending_per_receiver = max_pending_per_receiver
        self.on_drop = on_drop
        db.script(SCHEMA)
        self._lock = threading.Lock()
        self._pending: dict[Target, int] = {
            (r["receiver"], r["integration"]): r["n"] for r in db.execute(
                "SELECT receiver, integration, COUNT(*) AS n FROM outbox WHERE state = ? GROUP BY receiver, integration",
                (PENDING,))}
        for receiver in {receiver for receiver, _ in self._pending}:
            self._enforce_cap(receiver)

    def enqueue(self, key: str, receiver: str, integration: str, group_key: str, status: str,
                body: dict[str, Any], now: float) -> bool:
        """True if queued; False if this notification was queued before (same key)."""
        queued = self.db.execute_count(
            "INSERT OR IGNORE INTO outbox (key, receiver, integration, group_key, status, body, created_at, "
            "next_attempt) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (key, receiver, integration, group_key, status, json.dumps(body), now, now)) == 1
        if queued:
            self._count((receiver, integration), 1)
            self._enforce_cap(receiver)
        return queued

    def _count(self, target: Target, change: int) -> None:
        with self._lock:
            left = self._pending.get(target, 0) + change
            if left > 0:
                self._pending[target] = left
            else:
                self._pending.pop(target, None)

    def _enforce_cap(self, receiver: str) -> None:
        """Drop the receiver's oldest pending rows past the cap (only that receiver's)."""
        with self._lock:
            over = sum(n for (r, _), n in self._pending.items() if r == receiver) - self.max_pending_per_receiver
        if over <= 0:
            return
        oldest = "SELECT id, integration FROM outbox WHERE state = ? AND receiver = ? ORDER BY id LIMIT ?"
        with self.db.transaction():
            rows = self.db.execute(f"SELECT integration, COUNT(*) AS n FROM ({oldest}) GROUP BY integration",
                                   (PENDING, receiver, over))
            self.db.execute(f"DELETE FROM outbox WHERE id IN (SELECT id FROM ({oldest}))", (PENDING, receiver, over))
        for row in rows:
            self._count((receiver, row["integration"]), -row["n"])
            self.on_drop(receiver, row["integration"], "queue_full", row["n"])
            log.warning("receiver %s/%s has more than %d notifications pending: dropped its %d oldest", receiver,
                        row["integration"], self.max_pending_per_receiver, row["n"])

    def next_attempts(self) -> dict[Target, float]:
        """Per target with something pending: when its earliest group head may be attempted."""
        rows = self.db.execute(
            "SELECT o.receiver, o.integration, MIN(o.next_attempt) AS t FROM outbox o "
            f"JOIN ({_HEADS.format(where='')}) h ON o.id = h.id GROUP BY o.receiver, o.integration")
        return {(r["receiver"], r["integration"]): r["t"] for r in rows}

    def due(self, now: float, target: Target, limit: int = HEADS_PER_ROUND) -> list[Entry]:
        """The target's group heads due at ``now``, oldest first: the rows that may be attempted
        (a group's later rows wait for its head, which keeps each group in order)."""
        rows = self.db.execute(
            f"SELECT o.* FROM outbox o JOIN ({_HEADS.format(where='AND receiver = ? AND integration = ?')}) h "
            "ON o.id = h.id WHERE o.next_attempt <= ? ORDER BY o.id LIMIT ?", (*target, now, limit))
        return [Entry.from_row(r) for r in rows]

    def delivered(self, entry: Entry, now: float) -> None:
        self._leave(entry, "UPDATE outbox SET state=?, attempts=attempts+1, delivered_at=?, last_error=NULL "
                           "WHERE id=? AND state=?", (DELIVERED, now, entry.id, PENDING))

    def retry(self, entry: Entry, error: str, next_attempt: float) -> None:
        self.db.execute("UPDATE outbox SET attempts=attempts+1, last_error=?, next_attempt=? WHERE id=?",
                        (error, next_attempt, entry.id))

    def hold(self, target: Target, until: float) -> int:
        """Nothing pending for ``target`` is attempted before ``until`` (its receiver asked for a
        pause); returns how many rows were moved. Kept in the table, so a restart keeps the pause."""
        return self.db.execute_count(
            "UPDATE outbox SET next_attempt=? WHERE state=? AND receiver=? AND integration=? AND next_attempt<?",
            (until, PENDING, *target, until))

    def retry_by(self, latest: float, now: float) -> int:
        """Pending rows to be retried after ``latest`` are due at ``now`` instead; returns how many."""
        return self.db.execute_count("UPDATE outbox SET next_attempt=? WHERE state=? AND next_attempt>?",
                                     (now, PENDING, latest))

    def failed(self, entry: Entry, error: str) -> None:
        self._leave(entry, "UPDATE outbox SET state=?, attempts=attempts+1, last_error=? WHERE id=? AND state=?",
                    (FAILED, error, entry.id, PENDING))

    def _leave(self, entry: Entry, sql: str, params: tuple) -> None:
        """A row leaves the pending state (unless the cap dropped it meanwhile)."""
        if self.db.execute_count(sql, params):
            self._count(entry.target, -1)

    def expire(self, now: float, max_age: float) -> list[Entry]:
        with self.db.transaction():
            rows = self.db.execute("SELECT * FROM outbox WHERE state=? AND created_at < ?", (PENDING, now - max_age))
            self.db.execute("UPDATE outbox SET state=? WHERE state=? AND created_at < ?",
                            (EXPIRED, PENDING, now - max_age))
        expired = [Entry.from_row(r) for r in rows]
        for entry in expired:
            self._count(entry.target, -1)
        return expired

    def gc(self, now: float, retention: float = DONE_RETENTION, max_rows: int = DONE_MAX_ROWS) -> int:
        removed = self.db.execute_count("DELETE FROM outbox WHERE state != ? AND created_at < ?",
                                        (PENDING, now - retention))
        return removed + self.db.execute_count(
            "DELETE FROM outbox WHERE state != ? AND id <= (SELECT id FROM outbox WHERE state != ? "
            "ORDER BY id DESC LIMIT 1 OFFSET ?)", (PENDING, PENDING, max_rows))

    def pending_count(self) -> int:
        with self._lock:
            return sum(self._pending.values())

    def pending_counts(self) -> dict[Target, int]:
        """Pending rows per target (targets with none are absent)."""
        with self._lock:
            return dict(self._pending)

    def list(self, state: str | None = None, receiver: str | None = None, limit: int = 100) -> list[Entry]:
        sql, params = "SELECT * FROM outbox WHERE 1=1", []
        if state:
            sql, params = sql + " AND state=?", params + [state]
        if receiver:
            sql, params = sql + " AND receiver=?", params + [receiver]
        rows = self.db.execute(sql + " ORDER BY id DESC LIMIT ?", (*params, limit))
        return [Entry.from_row(r) for r in rows]


class Deliverer:
    """Sends due outbox rows through their integration. Each target (receiver, integration) is
    worked by one thread at a time and no target waits for another: ``dispatch`` starts a worker
    for each target that has something due and none running, and returns at once. A worker
    attempts its target's due group heads until none is left or none goes through; an attempt
    is bounded by the integration's timeout, and a receiver that hangs holds only its own lane."""

    def __init__(self, outbox: Outbox, integration_for: Callable[[str, str], Integration | None],
                 metrics: NotifyMetrics, clock: Callable[[], float] = time.time, backoff: Backoff = Backoff(),
                 max_age: float = DEFAULT_MAX_AGE, rng: Callable[[], float] = random.random,
                 workers: int = 4, wake: Callable[[], None] = lambda: None) -> None:
        self.outbox = outbox
        self.integration_for = integration_for
        self.metrics = metrics
        self.clock = clock
        self.backoff = backoff
        self.max_age = max_age
        self.rng = rng
        self.wake = wake
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cw-deliver")
        self._workers = workers
        self._lock = threading.Lock()
        self._running: dict[Target, Future] = {}
        self._closing = threading.Event()
        self._next_due: float | None = None
        self._latest_round = -math.inf  # the clock at the last round: one going back stepped back
        self.pause_s = 0.0  # how long the loop should rest after this round (LOOK_SHARE)

    def run_once(self) -> int:
        """Deliver what is due now and wait for it (and for rounds already under way); returns
        how many rows were delivered."""
        self.dispatch()
        with self._lock:
            futures = list(self._running.values())
        return sum(f.result() for f in futures)

    def dispatch(self) -> None:
        """Expire what is too old, then start a worker for each idle target with a due head."""
        now = self.clock()
        if now < self._latest_round:
            # The clock stepped back: retries it set further ahead than any backoff can were set
            # by a clock that was wrong, and would wait until it came back to them.
            moved = self.outbox.retry_by(now + self.backoff.cap, now)
            if moved:
                log.warning("this server's clock stepped back: %d notification retries set ahead of it are due now",
                            moved)
        self._latest_round = now
        for entry in self.outbox.expire(now, self.max_age):
            log.warning("notification %s to %s/%s expired after %d attempts: %s", entry.key[:12], entry.receiver,
                        entry.integration, entry.attempts, entry.last_error)
            self.metrics.expire(entry.receiver, entry.integration)
        # One look at the lanes per round (a query over every pending row): what is due is
        # started, the rest tells the loop when to look again.
        later: list[float] = []
        started = time.monotonic()
        lanes = self.outbox.next_attempts()
        self.pause_s = min(1.0, (time.monotonic() - started) * (1 / LOOK_SHARE - 1))
        for target, when in lanes.items():
            with self._lock:
                if target in self._running or self._closing.is_set():
                    continue
                if when > now:
                    later.append(when)
                    continue
                self._running[target] = self._pool.submit(self._work, target)
        self._next_due = min(later, default=None)

    def resize(self, workers: int) -> None:
        """At least ``workers`` workers from now on (a reload added receivers); the rounds under
        way end in the pool they started in."""
        with self._lock:
            if workers <= self._workers:
                return
            old, self._pool = self._pool, ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cw-deliver")
            self._workers = workers
        old.shutdown(wait=False)

    def next_due(self) -> float | None:
        """When an idle target's head falls due, as of the last ``dispatch`` (None: none pending;
        a worker that finishes wakes the loop, which dispatches again)."""
        return self._next_due

    def _work(self, target: Target) -> int:
        try:
            return self._deliver_target(target)
        finally:
            with self._lock:
                self._running.pop(target, None)
            self.wake()

    def _deliver_target(self, target: Target) -> int:
        delivered = 0
        while not self._closing.is_set():
            heads = self.outbox.due(self.clock(), target)
            progress = 0
            for entry in heads:
                if self._closing.is_set():
                    break
                outcome = self._attempt(entry)
                if outcome == PAUSED:
                    return delivered + progress  # the receiver asked us to stop sending for now
                progress += outcome == SENT
            delivered += progress
            if not progress:
                break  # everything due was attempted once; failures wait for their backoff
        return delivered

    def _attempt(self, entry: Entry) -> str:
        """SENT, FAILED (this notification waits for its backoff) or PAUSED (all of its lane waits)."""
        integration = self.integration_for(entry.receiver, entry.integration)
        started = time.monotonic()
        try:
            if integration is None:
                raise DeliveryError(f"receiver {entry.receiver!r} has no integration {entry.integration!r} "
                                    "in the current configuration", retryable=False)
            integration.deliver(entry.body, entry.key)
        except DeliveryError as exc:
            return self._failed(entry, exc, time.monotonic() - started)
        except Exception as exc:  # noqa: BLE001 - a bug in one integration must not stop delivery
            log.exception("integration %s/%s raised", entry.receiver, entry.integration)
            return self._failed(entry, DeliveryError(f"{type(exc).__name__}: {exc}"), time.monotonic() - started)
        self.metrics.attempt(entry.receiver, entry.integration, time.monotonic() - started, True)
        self.outbox.delivered(entry, self.clock())
        return SENT

    def _failed(self, entry: Entry, exc: DeliveryError, seconds: float) -> str:
        self.metrics.attempt(entry.receiver, entry.integration, seconds, False)
        if not exc.retryable:
            self.outbox.failed(entry, str(exc))
            log.error("notification to %s/%s refused, not retried: %s", entry.receiver, entry.integration, exc)
            return FAILED
        delay = self.backoff.delay(entry.attempts + 1, self.rng)
        if exc.retry_after is not None:
            # The receiver's time, but never past the backoff's cap: a receiver cannot park its
            # queue for a day (nor past the horizon the clock-step check in dispatch trusts).
            delay = max(delay, min(exc.retry_after, self.backoff.cap))
        until = self.clock() + delay
        self.outbox.retry(entry, str(exc), until)
        if exc.retry_after is None:
            log.warning("notification to %s/%s failed (attempt %d), retry in %.1fs: %s", entry.receiver,
                        entry.integration, entry.attempts + 1, delay, exc)
            return FAILED
        held = self.outbox.hold(entry.target, until)
        self.metrics.hold(entry.receiver, entry.integration)
        log.warning("receiver %s/%s asked for a pause: nothing more is sent to it for %.1fs (%d other notifications "
                    "wait with this one): %s", entry.receiver, entry.integration, delay, held, exc)
        return PAUSED

    def close(self) -> None:
        """Stop starting attempts; an attempt under way finishes within its own timeout."""
        self._closing.set()
        self._pool.shutdown(wait=True, cancel_futures=True)
