"""The notification log: what was last sent per (group, receiver, integration).

Alertmanager's nflog: the dedup stage compares the current firing/resolved sets with the last
entry; the set-notifies stage writes the entry once the notification is durably queued. Kept in
SQLite, so a restarted pipeline knows what it already sent.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from alerts.notify.sqlite import Database

SCHEMA = """
CREATE TABLE IF NOT EXISTS nflog (
    group_key TEXT NOT NULL, receiver TEXT NOT NULL, integration TEXT NOT NULL,
    firing TEXT NOT NULL, resolved TEXT NOT NULL, sent_at REAL NOT NULL,
    PRIMARY KEY (group_key, receiver, integration)
);
"""
RETENTION_S = 120 * 3600.0  # Alertmanager's default --data.retention


@dataclass(frozen=True)
class Entry:
    firing: frozenset[str]
    resolved: frozenset[str]
    sent_at: float


class NotificationLog:
    def __init__(self, db: Database) -> None:
        self.db = db
        db.script(SCHEMA)

    def get(self, group_key: str, receiver: str, integration: str) -> Entry | None:
        rows = self.db.execute("SELECT firing, resolved, sent_at FROM nflog WHERE group_key=? AND receiver=? "
                               "AND integration=?", (group_key, receiver, integration))
        if not rows:
            return None
        row = rows[0]
        return Entry(frozenset(json.loads(row["firing"])), frozenset(json.loads(row["resolved"])), row["sent_at"])

    def log(self, group_key: str, receiver: str, integration: str, firing: frozenset[str],
            resolved: frozenset[str], now: float) -> None:
        self.db.execute("INSERT OR REPLACE INTO nflog VALUES (?, ?, ?, ?, ?, ?)",
                        (group_key, receiver, integration, json.dumps(sorted(firing)),
                         json.dumps(sorted(resolved)), now))

    def gc(self, now: float, retention_s: float = RETENTION_S) -> int:
        return self.db.execute_count("DELETE FROM nflog WHERE sent_at < ?", (now - retention_s,))
