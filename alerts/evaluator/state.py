"""Alert state in SQLite, so that a restart neither re-notifies a storm nor resets ``for`` clocks.

Prometheus restores ``for`` state from its own ALERTS_FOR_STATE series; the embedded store may be
empty after a restart, so the evaluator keeps its own small table instead: one row per active
alert (labels, annotations, state, active/fired/resolved/last-sent times), replaced for a rule
after each of its evaluations, and the time of that evaluation. On start the rows come back
into the rules; when the evaluator was down longer than ``outage_tolerance`` (Prometheus's
``--rules.alert.for-outage-tolerance``, 1 h) pending alerts restart their clocks, since the
condition was not observed in between; firing ones stay firing and are not re-sent before their
resend delay.

The file is an ``alerts.statedb.Database``: a corrupt one is set aside, a full disk keeps the
state in memory until it can be written. A write lost even so is logged and counted there, never
raised: this state only matters at the next restart, and evaluation must go on.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

from alerts.evaluator.alerting import PENDING, ActiveAlert
from alerts.statedb import Database, StateWriteError

log = logging.getLogger(__name__)

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
    def __init__(self, path: str | Path | Database, outage_tolerance_s: float = 3600.0) -> None:
        self.db = path if isinstance(path, Database) else Database(path)
        self.path = self.db.path
        self.outage_tolerance_s = outage_tolerance_s
        self.db.script(SCHEMA)

    def save(self, evaluated: dict[str, dict[str, ActiveAlert]], ts: float) -> None:
        """Replace the rows of every rule in ``evaluated`` (rule key -> its active alerts)."""
        try:
            with self.db.transaction():
                for rule_key, alerts in evaluated.items():
                    self.db.execute("DELETE FROM alert_state WHERE rule_key = ?", (rule_key,))
                    self.db.executemany(
                        "INSERT INTO alert_state (rule_key, fingerprint, alert) VALUES (?, ?, ?)",
                        [(rule_key, fp, json.dumps(a.to_dict())) for fp, a in alerts.items()])
                    self.db.execute("INSERT OR REPLACE INTO rule_eval (rule_key, evaluated_at) VALUES (?, ?)",
                                    (rule_key, ts))
        except StateWriteError as exc:
            log.error("alert state not saved: %s", exc)

    def retain(self, rule_keys: set[str]) -> None:
        """Forget the rows of rules no longer loaded (after a reload)."""
        try:
            with self.db.transaction():
                for table in ("alert_state", "rule_eval"):
                    known = {row[0] for row in self.db.execute(f"SELECT DISTINCT rule_key FROM {table}")}
                    for key in known - rule_keys:
                        self.db.execute(f"DELETE FROM {table} WHERE rule_key = ?", (key,))
        except StateWriteError as exc:
            log.error("alert state of removed rules not forgotten: %s", exc)

    def load(self, rule_key: str, now: float) -> dict[str, ActiveAlert]:
        evaluated = self.db.execute("SELECT evaluated_at FROM rule_eval WHERE rule_key = ?", (rule_key,))
        rows = self.db.execute("SELECT fingerprint, alert FROM alert_state WHERE rule_key = ?", (rule_key,))
        stale = not evaluated or now - evaluated[0][0] > self.outage_tolerance_s
        out = {}
        for fp, text in rows:
            alert = ActiveAlert(**json.loads(text))
            if stale and alert.state == PENDING:
                continue
            out[fp] = alert
        return out

    def close(self) -> None:
        self.db.close()
