"""Alert state in SQLite, so that a restart neither re-notifies a storm nor resets ``for`` clocks.

Prometheus restores ``for`` state from its own ALERTS_FOR_STATE series; the embedded store may be
empty after a restart, so the evaluator keeps its own small table instead: one row per active
alert (labels, annotations, state, active/fired/resolved/last-sent times), replaced for a rule
after each of its evaluations, and the time of that evaluation. On start the rows come back
into the rules; when the evaluator was down longer than ``outage_tolerance`` (Prometheus's
``--rules.alert.for-outage-tolerance``, 1 h) pending alerts restart their clocks, since the
condition was not observed in between; firing ones stay firing and are not re-sent before their
resend delay.
"""
from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

from alerts.evaluator.alerting import PENDING, ActiveAlert

SCHEMA = """
CREATE TABLE IF NOT EXISTS alert_state (
    rule_key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    alert TEXT NOT NULL,
    PRIMARY KEY (rule_key, fingerprint)
);
CREATE TABLE IF NOT EXISTS rule_eval (
    rule_key TEXT PRIMARY KEY,
    evaluated_at REAL NOT NULL
);
"""


class AlertStateStore:
    def __init__(self, path: str | Path, outage_tolerance_s: float = 3600.0) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.path = str(path)
        self.outage_tolerance_s = outage_tolerance_s
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)

    def save(self, evaluated: dict[str, dict[str, ActiveAlert]], ts: float) -> None:
        """Replace the rows of every rule in ``evaluated`` (rule key -> its active alerts)."""
        with self._lock:
            self._db.execute("BEGIN")
            try:
                for rule_key, alerts in evaluated.items():
                    self._db.execute("DELETE FROM alert_state WHERE rule_key = ?", (rule_key,))
                    self._db.executemany(
                        "INSERT INTO alert_state (rule_key, fingerprint, alert) VALUES (?, ?, ?)",
                        [(rule_key, fp, json.dumps(a.to_dict())) for fp, a in alerts.items()])
                    self._db.execute("INSERT OR REPLACE INTO rule_eval (rule_key, evaluated_at) VALUES (?, ?)",
                                     (rule_key, ts))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def load(self, rule_key: str, now: float) -> dict[str, ActiveAlert]:
        with self._lock:
            row = self._db.execute("SELECT evaluated_at FROM rule_eval WHERE rule_key = ?", (rule_key,)).fetchone()
            rows = self._db.execute("SELECT fingerprint, alert FROM alert_state WHERE rule_key = ?",
                                    (rule_key,)).fetchall()
        stale = row is None or now - row[0] > self.outage_tolerance_s
        out = {}
        for fp, text in rows:
            alert = ActiveAlert(**json.loads(text))
            if stale and alert.state == PENDING:
                continue
            out[fp] = alert
        return out

    def close(self) -> None:
        with self._lock:
            self._db.close()
