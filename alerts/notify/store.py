"""The store of current alerts that the dispatcher, the inhibitor, the dashboard and the API read,
with acknowledgements and a history of firing/resolved transitions. Persisted in SQLite so a
restart neither forgets alerts received from a production Alertmanager (which re-sends only every
repeat_interval) nor the operators' acknowledgements.

Alerts from the embedded evaluator carry ``timeout``: if the evaluator stops re-sending one for
``resolve_timeout`` it is resolved, as Alertmanager resolves alerts without an endsAt. Alerts
received by webhook are not: their sender reports the resolution.
"""
from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass, replace
from typing import Iterable

from alerts.model import Alert
from alerts.notify.sqlite import Database

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    fingerprint TEXT PRIMARY KEY, alert TEXT NOT NULL, source TEXT NOT NULL, timeout INTEGER NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS acks (
    fingerprint TEXT NOT NULL, starts_at REAL NOT NULL, acked_by TEXT NOT NULL, comment TEXT NOT NULL,
    acked_at REAL NOT NULL, PRIMARY KEY (fingerprint, starts_at)
);
CREATE TABLE IF NOT EXISTS alert_history (
    id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, fingerprint TEXT NOT NULL, alertname TEXT NOT NULL,
    status TEXT NOT NULL, labels TEXT NOT NULL, annotations TEXT NOT NULL, source TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS alert_history_at ON alert_history (at);
"""
RESOLVED_RETENTION = 15 * 60.0  # resolved alerts stay visible this long, then only in history


@dataclass(frozen=True)
class Ack:
    acked_by: str
    comment: str
    acked_at: float


@dataclass(frozen=True, slots=True)
class Stored:
    alert: Alert
    source: str
    timeout: bool
    updated_at: float


def _history_row(alert: Alert, status: str, source: str, at: float) -> tuple:
    return (at, alert.fingerprint, alert.name, status, json.dumps(alert.labels), json.dumps(alert.annotations),
            source)


def _alert_json(alert: Alert) -> str:
    return json.dumps({"labels": alert.labels, "annotations": alert.annotations, "starts_at": alert.starts_at,
                       "ends_at": alert.ends_at, "generator_url": alert.generator_url})


class AlertStore:
    def __init__(self, db: Database, max_alerts: int = 0) -> None:
        self.db = db
        self.max_alerts = max_alerts  # held by ``put(capped=True)``; 0: no cap
        self.refused_total = 0
        self.last_refused: tuple[float, int] | None = None  # (when, how many) of the latest refusal
        self._lock = threading.Lock()
        db.script(SCHEMA)
        self._alerts: dict[str, Stored] = {}
        self.version = 0  # moves whenever an alert or an acknowledgement changes (alerts/judged.py)
        for row in db.execute("SELECT * FROM alerts"):
            try:
                alert = Alert(**json.loads(row["alert"]))
            except (ValueError, TypeError) as exc:  # one damaged row costs that alert, not the pipeline
                log.warning("stored alert %s cannot be read and is left out: %s", row["fingerprint"], exc)
                continue
            self._alerts[row["fingerprint"]] = Stored(alert, row["source"], bool(row["timeout"]), row["updated_at"])
        # Kept in memory too: the alerts API and page look one up for every alert they show.
        self._acks: dict[tuple[str, float], Ack] = {
            (row["fingerprint"], row["starts_at"]): Ack(row["acked_by"], row["comment"], row["acked_at"])
            for row in db.execute("SELECT * FROM acks")}

    def put(self, alerts: Iterable[Alert], source: str, timeout: bool, now: float,
            capped: bool = False) -> list[Alert]:
        """Merge ``alerts`` in; returns them as stored (a firing alert keeps its first startsAt).
        ``capped``: an alert not held yet is refused (left out of the answer, counted in
        ``refused_total``) once ``max_alerts`` are held; one already held is always merged, so
        that its resolution is never lost.

        The rows are prepared first and written in one short transaction (a storm's 10,000
        alerts in a few statements): the database's lock, which /metrics and /-/ready also wait
        for, is held for the writing only. The in-memory store changes once they are written."""
        merged: list[Alert] = []
        with self._lock:
            batch: dict[str, Stored] = {}
            history: list[tuple] = []
            room = self.max_alerts - len(self._alerts) if capped and self.max_alerts else None
            refused = 0
            for alert in alerts:
                old = batch.get(alert.fingerprint) or self._alerts.get(alert.fingerprint)
                if room is not None and old is None:
                    if room <= 0:
                        refused += 1
                        continue
                    room -= 1
                if old and old.alert.ends_at is None and alert.starts_at and old.alert.starts_at:
                    alert = replace(alert, starts_at=min(old.alert.starts_at, alert.starts_at))
                if alert.starts_at == 0.0:
                    alert = replace(alert, starts_at=old.alert.starts_at if old and old.alert.ends_at is None else now)
                was_firing = old is not None and old.alert.ends_at is None
                if alert.ends_at is None and not was_firing:
                    history.append(_history_row(alert, "firing", source, now))
                elif alert.ends_at is not None and was_firing:
                    history.append(_history_row(alert, "resolved", source, alert.ends_at))
                batch[alert.fingerprint] = Stored(alert, source, timeout, now)
                merged.append(alert)
            rows = [(fp, _alert_json(stored.alert), source, int(timeout), now) for fp, stored in batch.items()]
            with self.db.transaction():
                self.db.executemany("INSERT OR REPLACE INTO alerts VALUES (?, ?, ?, ?, ?)", rows)
                if history:
                    self.db.executemany("INSERT INTO alert_history (at, fingerprint, alertname, status, labels, "
                                        "annotations, source) VALUES (?, ?, ?, ?, ?, ?, ?)", history)
            self._alerts.update(batch)
            self.version += 1
            if refused:
                self.refused_total += refused
                self.last_refused = (now, refused)
        return merged

    def timed_out(self, now: float, resolve_timeout: float) -> list[Alert]:
        """Firing alerts their sender stopped refreshing, as resolved copies (not yet stored)."""
        return [replace(s.alert, ends_at=s.updated_at + resolve_timeout) for s in list(self._alerts.values())
                if s.timeout and s.alert.ends_at is None and s.updated_at + resolve_timeout <= now]

    def current(self) -> list[Alert]:
        return [s.alert for s in list(self._alerts.values())]

    def get(self, fingerprint: str) -> Stored | None:
        return self._alerts.get(fingerprint)

    def sources(self) -> dict[str, str]:
        return {fp: s.source for fp, s in list(self._alerts.items())}

    def gc(self, now: float, retention: float = RESOLVED_RETENTION) -> int:
        with self._lock:
            old = [fp for fp, s in self._alerts.items() if s.alert.ends_at is not None and s.alert.ends_at < now - retention]
            gone = set(old)
            for fp in old:
                del self._alerts[fp]
                self.db.execute("DELETE FROM alerts WHERE fingerprint=?", (fp,))
                self.db.execute("DELETE FROM acks WHERE fingerprint=?", (fp,))
            for key in [key for key in self._acks if key[0] in gone]:
                del self._acks[key]
            if old:
                self.version += 1
        return len(old)

    def ack(self, fingerprint: str, acked_by: str, comment: str, now: float) -> Ack:
        stored = self._alerts.get(fingerprint)
        if stored is None:
            raise KeyError(fingerprint)
        # Bound to this firing episode: the same alert firing again later is news again.
        self.db.execute("INSERT OR REPLACE INTO acks VALUES (?, ?, ?, ?, ?)",
                        (fingerprint, stored.alert.starts_at, acked_by, comment, now))
        ack = self._acks[(fingerprint, stored.alert.starts_at)] = Ack(acked_by, comment, now)
        self.version += 1
        return ack

    def ack_of(self, alert: Alert) -> Ack | None:
        return self._acks.get((alert.fingerprint, alert.starts_at))

    def history(self, limit: int = 100, since: float | None = None, fingerprint: str | None = None) -> list[dict]:
        sql, params = "SELECT * FROM alert_history WHERE 1=1", []
        if since is not None:
            sql, params = sql + " AND at >= ?", params + [since]
        if fingerprint:
            sql, params = sql + " AND fingerprint = ?", params + [fingerprint]
        rows = self.db.execute(sql + " ORDER BY id DESC LIMIT ?", (*params, limit))
        return [{**dict(r), "labels": json.loads(r["labels"]), "annotations": json.loads(r["annotations"])}
                for r in rows]
