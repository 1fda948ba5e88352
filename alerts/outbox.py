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
"""
from __future__ import annotations

import hashlib
import json
import logging
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
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
"""
DEFAULT_MAX_AGE = 24 * 3600.0
DONE_RETENTION = 7 * 24 * 3600.0  # delivered/failed rows kept for the API, then dropped


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

    @classmethod
    def from_row(cls, row) -> "Entry":
        values = dict(row)
        values["body"] = json.loads(values["body"])
        return cls(**values)


class Outbox:
    def __init__(self, db: Database) -> None:
        self.db = db
        db.script(SCHEMA)

    def enqueue(self, key: str, receiver: str, integration: str, group_key: str, status: str,
                body: dict[str, Any], now: float) -> bool:
        """True if queued; False if this notification was queued before (same key)."""
        return self.db.execute_count(
            "INSERT OR IGNORE INTO outbox (key, receiver, integration, group_key, status, body, created_at, "
            "next_attempt) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (key, receiver, integration, group_key, status, json.dumps(body), now, now)) == 1

    def due(self, now: float, limit: int = 500) -> list[Entry]:
        """Pending rows, oldest first; a lane's later rows are included so the caller keeps order."""
        rows = self.db.execute("SELECT * FROM outbox WHERE state = ? ORDER BY id LIMIT ?", (PENDING, limit))
        return [Entry.from_row(r) for r in rows]

    def next_due(self) -> float | None:
        rows = self.db.execute("SELECT MIN(next_attempt) AS t FROM outbox WHERE state = ?", (PENDING,))
        return rows[0]["t"]

    def delivered(self, entry_id: int, now: float) -> None:
        self.db.execute("UPDATE outbox SET state=?, attempts=attempts+1, delivered_at=?, last_error=NULL "
                        "WHERE id=?", (DELIVERED, now, entry_id))

    def retry(self, entry_id: int, error: str, next_attempt: float) -> None:
        self.db.execute("UPDATE outbox SET attempts=attempts+1, last_error=?, next_attempt=? WHERE id=?",
                        (error, next_attempt, entry_id))

    def failed(self, entry_id: int, error: str) -> None:
        self.db.execute("UPDATE outbox SET state=?, attempts=attempts+1, last_error=? WHERE id=?",
                        (FAILED, error, entry_id))

    def expire(self, now: float, max_age: float) -> list[Entry]:
        with self.db.transaction():
            rows = self.db.execute("SELECT * FROM outbox WHERE state=? AND created_at < ?", (PENDING, now - max_age))
            self.db.execute("UPDATE outbox SET state=? WHERE state=? AND created_at < ?",
                            (EXPIRED, PENDING, now - max_age))
        return [Entry.from_row(r) for r in rows]

    def gc(self, now: float, retention: float = DONE_RETENTION) -> int:
        return self.db.execute_count("DELETE FROM outbox WHERE state != ? AND created_at < ?",
                                     (PENDING, now - retention))

    def pending_count(self) -> int:
        return self.db.execute("SELECT COUNT(*) AS n FROM outbox WHERE state=?", (PENDING,))[0]["n"]

    def list(self, state: str | None = None, receiver: str | None = None, limit: int = 100) -> list[Entry]:
        sql, params = "SELECT * FROM outbox WHERE 1=1", []
        if state:
            sql, params = sql + " AND state=?", params + [state]
        if receiver:
            sql, params = sql + " AND receiver=?", params + [receiver]
        rows = self.db.execute(sql + " ORDER BY id DESC LIMIT ?", (*params, limit))
        return [Entry.from_row(r) for r in rows]


class Deliverer:
    """Sends due outbox rows through their integration; lanes (receiver, integration) run in
    parallel so one slow receiver does not hold up the others."""

    def __init__(self, outbox: Outbox, integration_for: Callable[[str, str], Integration | None],
                 metrics: NotifyMetrics, clock: Callable[[], float] = time.time, backoff: Backoff = Backoff(),
                 max_age: float = DEFAULT_MAX_AGE, rng: Callable[[], float] = random.random,
                 workers: int = 4) -> None:
        self.outbox = outbox
        self.integration_for = integration_for
        self.metrics = metrics
        self.clock = clock
        self.backoff = backoff
        self.max_age = max_age
        self.rng = rng
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cw-deliver")

    def run_once(self) -> int:
        """Deliver what is due now; returns how many rows were delivered."""
        now = self.clock()
        for entry in self.outbox.expire(now, self.max_age):
            log.warning("notification %s to %s/%s expired after %d attempts: %s", entry.key[:12], entry.receiver,
                        entry.integration, entry.attempts, entry.last_error)
            self.metrics.expire(entry.receiver)
        lanes: dict[tuple[str, str, str], list[Entry]] = {}
        for entry in self.outbox.due(now):
            lanes.setdefault((entry.receiver, entry.integration, entry.group_key), []).append(entry)
        by_target: dict[tuple[str, str], list[list[Entry]]] = {}
        for (receiver, integration, _), entries in lanes.items():
            by_target.setdefault((receiver, integration), []).append(entries)
        futures = [self._pool.submit(self._deliver_target, groups) for groups in by_target.values()]
        return sum(f.result() for f in futures)

    def _deliver_target(self, lanes: list[list[Entry]]) -> int:
        delivered = 0
        for entries in lanes:
            for entry in entries:
                if entry.next_attempt > self.clock() or not self._attempt(entry):
                    break  # keep this group's order: later rows wait for this one
                delivered += 1
        return delivered

    def _attempt(self, entry: Entry) -> bool:
        integration = self.integration_for(entry.receiver, entry.integration)
        started = time.monotonic()
        try:
            if integration is None:
                raise DeliveryError(f"receiver {entry.receiver!r} has no integration {entry.integration!r} "
                                    "in the current configuration", retryable=False)
            integration.deliver(entry.body, entry.key)
        except DeliveryError as exc:
            self._failed(entry, str(exc), exc.retryable, time.monotonic() - started)
            return False
        except Exception as exc:  # noqa: BLE001 - a bug in one integration must not stop delivery
            log.exception("integration %s/%s raised", entry.receiver, entry.integration)
            self._failed(entry, f"{type(exc).__name__}: {exc}", True, time.monotonic() - started)
            return False
        self.metrics.attempt(entry.receiver, entry.integration, time.monotonic() - started, True)
        self.outbox.delivered(entry.id, self.clock())
        return True

    def _failed(self, entry: Entry, error: str, retryable: bool, seconds: float) -> None:
        self.metrics.attempt(entry.receiver, entry.integration, seconds, False)
        if retryable:
            delay = self.backoff.delay(entry.attempts + 1, self.rng)
            self.outbox.retry(entry.id, error, self.clock() + delay)
            log.warning("notification to %s/%s failed (attempt %d), retry in %.1fs: %s", entry.receiver,
                        entry.integration, entry.attempts + 1, delay, error)
        else:
            self.outbox.failed(entry.id, error)
            log.error("notification to %s/%s refused, not retried: %s", entry.receiver, entry.integration, error)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
