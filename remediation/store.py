"""SQLite persistence of cases, their steps and the audit trail.

Every step is written as "started" before it runs and updated after it, in its own transaction,
so that a process killed in between leaves a record the next start can read (see
``ladder.StepKind.repeat_safe``). The audit table only grows: it is the operators' answer to
"what did the automation do, and why not".

The file is an ``alerts.statedb.Database``: a corrupt one is set aside, and a write the disk
refuses is held in memory and written later, so what was done is never forgotten. But no step
starts while the file cannot be written (``step_started`` raises ``AuditUnavailable``): the
engine acts only with its "started" record on disk, the record a restart relies on to never
repeat a reboot. The alert's delivery to the engine is retried by the outbox meanwhile.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from remediation.ladder import OPEN_STATES, STARTED
from alerts.statedb import MEMORY, Database

_SCHEMA = """
CREATE TABLE IF NOT EXISTS cases (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL,
    class TEXT NOT NULL,
    alertname TEXT NOT NULL,
    node TEXT, gpu TEXT, job_id TEXT,
    labels TEXT NOT NULL,
    mode TEXT NOT NULL,
    state TEXT NOT NULL,
    step INTEGER NOT NULL DEFAULT 0,
    ladder TEXT NOT NULL,
    alert_active INTEGER NOT NULL DEFAULT 1,
    seen INTEGER NOT NULL DEFAULT 1,
    owned INTEGER NOT NULL DEFAULT 0,
    lemon INTEGER NOT NULL DEFAULT 0,
    evidence TEXT,
    detail TEXT NOT NULL DEFAULT '',
    approved_by TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    step_since REAL NOT NULL,
    closed_at REAL
);
CREATE INDEX IF NOT EXISTS cases_open ON cases (state, key);
CREATE TABLE IF NOT EXISTS steps (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    case_id INTEGER NOT NULL,
    position INTEGER NOT NULL,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    started_at REAL NOT NULL,
    ended_at REAL,
    actor TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS steps_case ON steps (case_id, position);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time REAL NOT NULL,
    case_id INTEGER,
    alert TEXT NOT NULL,
    node TEXT, job_id TEXT,
    action TEXT NOT NULL,
    mode TEXT NOT NULL,
    actor TEXT NOT NULL,
    result TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS audit_time ON audit (time);
"""


@dataclass
class Case:
    id: int
    key: str
    alert_class: str
    alertname: str
    node: str | None
    gpu: str | None
    job_id: str | None
    labels: dict[str, str]
    mode: str
    state: str
    step: int
    ladder: tuple[str, ...]
    alert_active: bool
    seen: int
    owned: bool
    lemon: bool
    evidence: dict[str, Any] | None
    detail: str
    approved_by: str | None
    created_at: float
    updated_at: float
    step_since: float
    closed_at: float | None

    @property
    def current_step(self) -> str | None:
        return self.ladder[self.step] if self.step < len(self.ladder) else None

    @property
    def open(self) -> bool:
        return self.state in OPEN_STATES


@dataclass(frozen=True)
class AuditEntry:
    time: float
    alert: str
    action: str
    mode: str
    actor: str
    result: str
    node: str | None = None
    job_id: str | None = None
    case_id: int | None = None
    detail: str = ""
    id: int | None = None


@dataclass(frozen=True)
class StepRecord:
    id: int
    case_id: int
    position: int
    name: str
    status: str
    started_at: float
    ended_at: float | None
    actor: str
    detail: str = ""


_CASE_COLUMNS = ("id, key, class, alertname, node, gpu, job_id, labels, mode, state, step, ladder, alert_active, "
                 "seen, owned, lemon, evidence, detail, approved_by, created_at, updated_at, step_since, closed_at")


def _case(row: tuple) -> Case:
    values = list(row)
    values[7] = json.loads(values[7])
    values[11] = tuple(json.loads(values[11]))
    values[12], values[14], values[15] = bool(values[12]), bool(values[14]), bool(values[15])
    values[16] = json.loads(values[16]) if values[16] else None
    return Case(*values)


class AuditUnavailable(RuntimeError):
    """A step may not start: its record cannot be written to the file."""


class RemediationStore:
    def __init__(self, path: str | Path | Database = MEMORY) -> None:
        self.db = path if isinstance(path, Database) else Database(path)
        self.db.script(_SCHEMA)

    def close(self) -> None:
        self.db.close()

    def problems(self) -> dict[str, str]:
        """The health hook: the file's problems, and that automation waits while it is in memory."""
        found = self.db.problems()
        if self.db.in_memory:
            found["remediation_paused"] = (f"no remediation step starts until {self.db.name} can be written: "
                                           "every action is recorded on disk before it is taken")
        return found

    def _rows(self, sql: str, params: tuple = ()) -> list:
        return self.db.execute(sql, params)

    def _row(self, sql: str, params: tuple = ()):
        rows = self.db.execute(sql, params)
        return rows[0] if rows else None

    def _write(self, sql: str, params: tuple = ()) -> None:
        self.db.execute(sql, params)

    # ---- cases ------------------------------------------------------------------------------

    def create_case(self, key: str, alert_class: str, alertname: str, node: str | None, gpu: str | None,
                    job_id: str | None, labels: dict[str, str], mode: str, state: str, ladder: tuple[str, ...],
                    now: float, lemon: bool = False) -> Case:
        case_id = self.db.execute_insert(
            "INSERT INTO cases (key, class, alertname, node, gpu, job_id, labels, mode, state, ladder, lemon, "
            "created_at, updated_at, step_since) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (key, alert_class, alertname, node, gpu, job_id, json.dumps(labels, sort_keys=True), mode, state,
             json.dumps(list(ladder)), int(lemon), now, now, now))
        return self.case(case_id)  # type: ignore[return-value]

    def case(self, case_id: int) -> Case | None:
        row = self._row(f"SELECT {_CASE_COLUMNS} FROM cases WHERE id = ?", (case_id,))
        return _case(row) if row else None

    def open_case(self, key: str) -> Case | None:
        placeholders = ",".join("?" * len(OPEN_STATES))
        row = self._row(f"SELECT {_CASE_COLUMNS} FROM cases WHERE key = ? AND state IN ({placeholders}) "
                        "ORDER BY id DESC LIMIT 1", (key, *sorted(OPEN_STATES)))
        return _case(row) if row else None

    def open_cases(self) -> list[Case]:
        placeholders = ",".join("?" * len(OPEN_STATES))
        rows = self._rows(f"SELECT {_CASE_COLUMNS} FROM cases WHERE state IN ({placeholders}) ORDER BY id",
                          tuple(sorted(OPEN_STATES)))
        return [_case(r) for r in rows]

    def cases(self, state: str | None = None, limit: int = 200) -> list[Case]:
        where, params = ("WHERE state = ?", (state,)) if state else ("", ())
        rows = self._rows(f"SELECT {_CASE_COLUMNS} FROM cases {where} ORDER BY id DESC LIMIT ?",
                          (*params, limit))
        return [_case(r) for r in rows]

    def update_case(self, case_id: int, now: float, **fields: Any) -> None:
        encoded = {k: (json.dumps(v, sort_keys=True, default=str) if k == "evidence" else
                       int(v) if isinstance(v, bool) else v) for k, v in fields.items()}
        if "step" in fields:
            encoded["step_since"] = now
        sets = ", ".join(f"{k} = ?" for k in encoded)
        self._write(f"UPDATE cases SET {sets}, updated_at = ? WHERE id = ?", (*encoded.values(), now, case_id))

    def last_closed_case(self, key: str, alertname: str) -> Case | None:
        row = self._row(f"SELECT {_CASE_COLUMNS} FROM cases WHERE key = ? AND alertname = ? AND closed_at IS NOT NULL "
                        "ORDER BY closed_at DESC LIMIT 1", (key, alertname))
        return _case(row) if row else None

    def last_case_on_node(self, node: str, states: tuple[str, ...]) -> Case | None:
        placeholders = ",".join("?" * len(states))
        row = self._row(f"SELECT {_CASE_COLUMNS} FROM cases WHERE node = ? AND state IN ({placeholders}) "
                        "ORDER BY closed_at DESC LIMIT 1", (node, *states))
        return _case(row) if row else None

    # ---- steps ------------------------------------------------------------------------------

    def step_started(self, case_id: int, position: int, name: str, actor: str, now: float) -> int:
        """Record a step before it runs; refused (AuditUnavailable) while the file cannot be written."""
        if not self.db.durable():
            raise AuditUnavailable(f"step {name} of case {case_id} not started: {self.db.name} cannot be "
                                   "written, and no action is taken without its record on disk")
        return self.db.execute_insert("INSERT INTO steps (case_id, position, name, status, started_at, actor) "
                                      "VALUES (?,?,?,?,?,?)", (case_id, position, name, STARTED, now, actor))

    def step_ended(self, step_id: int, status: str, detail: str, now: float) -> None:
        self._write("UPDATE steps SET status = ?, detail = ?, ended_at = ? WHERE id = ?",
                    (status, detail, now, step_id))

    def delete_step(self, step_id: int) -> None:
        self._write("DELETE FROM steps WHERE id = ?", (step_id,))

    def steps(self, case_id: int) -> list[StepRecord]:
        rows = self._rows("SELECT id, case_id, position, name, status, started_at, ended_at, actor, detail "
                          "FROM steps WHERE case_id = ? ORDER BY id", (case_id,))
        return [StepRecord(*r) for r in rows]

    def unfinished_step(self, case_id: int, position: int) -> StepRecord | None:
        """A step left "started" by a process that stopped before recording its end."""
        row = self._row("SELECT id, case_id, position, name, status, started_at, ended_at, actor, detail "
                        "FROM steps WHERE case_id = ? AND position = ? AND status = ? ORDER BY id DESC LIMIT 1",
                        (case_id, position, STARTED))
        return StepRecord(*row) if row else None

    def last_action_time(self, node: str, actions: tuple[str, ...]) -> float | None:
        """When one of these actions was last carried out on ``node`` (cooldown)."""
        row = self._row(f"SELECT MAX(time) FROM audit WHERE node = ? AND action IN ({','.join('?' * len(actions))}) "
                        "AND (result = 'done' OR result LIKE 'failed%')", (node, *actions))
        return row[0] if row else None

    def actions_since(self, since: float, actions: tuple[str, ...]) -> int:
        """Actions carried out (done or failed: both reached the scheduler) since ``since`` (rate limit)."""
        row = self._row(f"SELECT COUNT(*) FROM audit WHERE time >= ? AND action IN ({','.join('?' * len(actions))}) "
                        "AND (result = 'done' OR result LIKE 'failed%')", (since, *actions))
        return int(row[0])

    # ---- audit ------------------------------------------------------------------------------

    def audit(self, entry: AuditEntry) -> None:
        self._write("INSERT INTO audit (time, case_id, alert, node, job_id, action, mode, actor, result, detail) "
                    "VALUES (?,?,?,?,?,?,?,?,?,?)",
                    (entry.time, entry.case_id, entry.alert, entry.node, entry.job_id, entry.action, entry.mode,
                     entry.actor, entry.result, entry.detail))

    def audit_entries(self, since: float | None = None, case_id: int | None = None,
                      limit: int = 500) -> list[AuditEntry]:
        clauses, params = [], []
        if since is not None:
            clauses.append("time >= ?")
            params.append(since)
        if case_id is not None:
            clauses.append("case_id = ?")
            params.append(case_id)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._rows(f"SELECT time, alert, action, mode, actor, result, node, job_id, case_id, detail, id "
                          f"FROM audit {where} ORDER BY id DESC LIMIT ?", (*params, limit))
        return [AuditEntry(*r) for r in rows]

    def audit_counts(self) -> Iterator[tuple[str, str, int]]:
        """(action, result, count) over the whole trail, for the metrics collector."""
        yield from self._rows("SELECT action, result, COUNT(*) FROM audit GROUP BY action, result")

    def count_cases(self, state: str) -> int:
        return int(self._row("SELECT COUNT(*) FROM cases WHERE state = ?", (state,))[0])
