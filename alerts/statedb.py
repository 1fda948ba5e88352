"""The server's SQLite state files (``alerting.db``, ``alert-state.sqlite``, ``remediation.db``),
opened so that a bad file or a full disk degrades the server instead of stopping it.

A watcher that stops because its own bookkeeping broke leaves the cluster unmonitored, so:

- A file SQLite cannot read at start (not a database, malformed, failing ``quick_check``) is set
  aside with its ``-wal``/``-shm`` as ``NAME.corrupt-<UTC time>`` (one error line names it) and a
  fresh file is started. Reported until the process restarts (``state_set_aside``).
- A file that cannot be opened for writing (read-only directory or file, a path under a regular
  file) runs as an in-memory database, loaded from the file when it can still be read.
- A write that fails at run time (disk full, I/O error, read-only) moves the whole state to an
  in-memory copy at once and is done there, the transaction it belonged to included: nothing the
  caller was told is stored is lost. Every ``retry_interval_s`` the copy is written over the file
  (SQLite's backup API); once that works the file is used again. Until then ``state_in_memory``
  is reported and a restart loses what changed since.
- The in-memory copy is bounded (``memory_limit_bytes``); a write past it raises
  ``StateWriteError`` and is counted as dropped (``state_writes_dropped``, until restart).

``problems()`` is a component's health hook (``cwkernel/health.py``); ``StateCollector``
exports the counters. The connection is shared by threads and serialised by one lock.
"""
from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence
from urllib.parse import quote

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from cwkernel.setaside import set_aside

log = logging.getLogger(__name__)

MEMORY = ":memory:"
RETRY_INTERVAL_S = 30.0
MEMORY_LIMIT_BYTES = 256 * 1024 * 1024
# Primary result codes (sqlite3.h): the file is not a readable database...
_UNREADABLE = {11, 26}  # SQLITE_CORRUPT, SQLITE_NOTADB
# ...or the storage refuses: permission, read-only, I/O error, full, cannot open.
_STORAGE = {3, 8, 10, 13, 14} | _UNREADABLE  # SQLITE_PERM, READONLY, IOERR, FULL, CANTOPEN

Operation = Callable[[sqlite3.Connection], Any]


class StateWriteError(Exception):
    """A write that neither the file nor the in-memory copy could take: it is lost (and counted)."""


class _Unreadable(Exception):
    """The file at the path is not a database SQLite can read."""


def _code(exc: BaseException) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    return None if code is None else code & 0xFF


def _is_storage_error(exc: BaseException) -> bool:
    return isinstance(exc, OSError) or _code(exc) in _STORAGE


def _utc(wall: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(wall))


class Database:
    """One SQLite state file (or ``:memory:``, by choice, with nothing to degrade).

    Statements run through ``execute``/``execute_count``/``execute_insert``/``executemany``,
    schemas through ``script`` (recorded: a fresh in-memory database is given them again), and
    ``transaction()`` groups writes that must land together."""

    def __init__(self, path: str | Path = MEMORY, *, retry_interval_s: float = RETRY_INTERVAL_S,
                 memory_limit_bytes: int = MEMORY_LIMIT_BYTES,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.path = str(path)
        self.name = Path(self.path).name
        self.retry_interval_s = retry_interval_s
        self.memory_limit_bytes = memory_limit_bytes
        self.monotonic = monotonic
        self.write_failures = 0
        self.dropped_writes = 0
        self._lock = threading.RLock()
        self._scripts: list[str] = []
        self._transaction: list[Operation] | None = None  # the open transaction's statements
        self._sticky: dict[str, str] = {}  # problems reported until the process restarts
        self._memory_reason = ""
        self._memory_since = 0.0
        self._next_retry = 0.0
        self._file: sqlite3.Connection | None = None
        self._memory: sqlite3.Connection | None = None
        if self.path == MEMORY:
            self._memory = self._new_memory()
        else:
            self._open()
        self._conn: sqlite3.Connection = self._file or self._memory  # type: ignore[assignment]

    # ---- opening ----------------------------------------------------------------------------

    def _open(self) -> None:
        try:
            self._file = self._open_file()
            return
        except _Unreadable as exc:
            try:
                self._set_aside(str(exc))
                self._file = self._open_file()
                return
            except (sqlite3.Error, OSError, _Unreadable) as again:
                failure: BaseException = again
        except (sqlite3.Error, OSError) as exc:
            failure = exc
        self._memory = self._new_memory()
        self._load_readable_copy()
        self._hold_in_memory(failure, "cannot be opened for writing")

    def _open_file(self) -> sqlite3.Connection:
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        if os.path.exists(self.path):
            self._check_readable()
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        conn.row_factory = sqlite3.Row
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            # NORMAL with WAL survives a process crash; only an OS crash may lose the last commit.
            conn.execute("PRAGMA synchronous=NORMAL")
            # A file opened read-only answers reads; find out now, not at the first alert.
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("ROLLBACK")
            for sql in self._scripts:
                conn.executescript(sql)
        except BaseException:
            conn.close()
            raise
        return conn

    def _check_readable(self) -> None:
        """Raise _Unreadable for a file SQLite cannot read. The check reads only: a read-write
        connection would checkpoint or delete the -wal on close, which belongs to what is set aside."""
        try:
            probe = sqlite3.connect(f"file:{quote(self.path)}?mode=ro", uri=True)
            try:
                problems = [row[0] for row in probe.execute("PRAGMA quick_check(3)").fetchall()]
            finally:
                probe.close()
        except sqlite3.DatabaseError as exc:
            if _code(exc) in _UNREADABLE:
                raise _Unreadable(str(exc)) from None
            return  # not a verdict on the content (permissions...): opening it for writing tells
        if problems != ["ok"]:
            raise _Unreadable("; ".join(problems))

    def _set_aside(self, reason: str) -> None:
        aside = set_aside(self.path, ("-wal", "-shm"))  # the -wal keeps its pairing: `sqlite3 ASIDE` reads both
        log.error("state database %s is unreadable (%s): set aside as %s; starting with empty state",
                  self.path, reason, aside)
        self._sticky["state_set_aside"] = (f"{self.path} was unreadable ({reason}) and was set aside as {aside}; "
                                           "this state (history, silences, cases...) started empty")

    def _new_memory(self) -> sqlite3.Connection:
        conn = sqlite3.connect(MEMORY, check_same_thread=False, isolation_level=None)
        conn.row_factory = sqlite3.Row
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {max(1, self.memory_limit_bytes // page_size)}")
        for sql in self._scripts:
            conn.executescript(sql)
        return conn

    def _load_readable_copy(self) -> None:
        """What the unwritable file still holds, so that silences and history stay visible."""
        if not os.path.isfile(self.path):
            return
        for mode in ("mode=ro", "immutable=1"):
            try:
                source = sqlite3.connect(f"file:{quote(self.path)}?{mode}", uri=True)
                try:
                    source.backup(self._memory)  # type: ignore[arg-type]
                    return
                finally:
                    source.close()
            except sqlite3.Error:
                continue

    # ---- running statements -------------------------------------------------------------------

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        return self._run(lambda conn: conn.execute(sql, params).fetchall())

    def execute_count(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Rows changed by a write (0 tells an INSERT OR IGNORE that found the key)."""
        return self._run(lambda conn: conn.execute(sql, params).rowcount)

    def execute_insert(self, sql: str, params: Sequence[Any] = ()) -> int:
        """The rowid of the row an INSERT added."""
        return self._run(lambda conn: conn.execute(sql, params).lastrowid)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        rows = list(rows)
        self._run(lambda conn: conn.executemany(sql, rows))

    def script(self, sql: str) -> None:
        """Schema statements (idempotent: ``CREATE ... IF NOT EXISTS``); never inside a transaction."""
        with self._lock:
            self._scripts.append(sql)
            self._run(lambda conn: conn.executescript(sql))

    @contextmanager
    def transaction(self) -> Iterator["Database"]:
        with self._lock:
            self._retry_file_if_due()
            self._transaction = []
            try:
                try:
                    self._conn.execute("BEGIN IMMEDIATE")
                except sqlite3.Error as exc:
                    if not _is_storage_error(exc) or self._conn is self._memory:
                        raise
                    self._move_to_memory(exc)  # begins the transaction there
                try:
                    yield self
                except BaseException:
                    if self._conn.in_transaction:
                        self._conn.execute("ROLLBACK")
                    raise
                self._run(lambda conn: conn.execute("COMMIT"), record=False)
            finally:
                self._transaction = None

    def _run(self, operation: Operation, record: bool = True) -> Any:
        with self._lock:
            if self._transaction is None:
                self._retry_file_if_due()
            try:
                result = operation(self._conn)
            except sqlite3.Error as exc:
                if not _is_storage_error(exc):
                    raise
                result = self._after_storage_error(exc, operation)
            if record and self._transaction is not None:
                self._transaction.append(operation)
            return result

    def _after_storage_error(self, exc: sqlite3.Error, operation: Operation) -> Any:
        if self._conn is self._memory:
            self._drop(exc)
        self._move_to_memory(exc)
        try:
            return operation(self._conn)
        except sqlite3.Error as again:
            if not _is_storage_error(again):
                raise
            self._drop(again)

    def _drop(self, exc: BaseException) -> None:
        """The in-memory copy is full too: this write is lost, and said so."""
        self.dropped_writes += 1
        if self._conn.in_transaction:
            self._conn.execute("ROLLBACK")
        self._sticky["state_writes_dropped"] = (
            f"{self.dropped_writes} write(s) to {self.name} were lost: the file could not take them and the "
            f"in-memory copy is full ({self.memory_limit_bytes // 2**20} MiB); last: {exc}")
        log.error("write to %s lost: %s (in-memory copy full too)", self.path, exc)
        raise StateWriteError(f"{self.name}: write lost: {exc}") from None

    def _move_to_memory(self, exc: BaseException) -> None:
        """Hold the state in memory from now on, the open transaction's statements included."""
        file = self._file
        if file is not None and file.in_transaction:
            try:
                file.execute("ROLLBACK")
            except sqlite3.Error:
                log.warning("rolling back %s after a failed write failed too", self.path)
        self._memory = self._new_memory() if file is None else self._copy_of(file)
        self._conn = self._memory
        self._hold_in_memory(exc, "cannot be written")
        if self._transaction is not None:
            self._memory.execute("BEGIN IMMEDIATE")
            for operation in self._transaction:
                operation(self._memory)

    def _copy_of(self, file: sqlite3.Connection) -> sqlite3.Connection:
        memory = sqlite3.connect(MEMORY, check_same_thread=False, isolation_level=None)
        memory.row_factory = sqlite3.Row
        try:
            file.backup(memory)
        except sqlite3.Error:
            log.exception("reading %s into memory failed; holding an empty state", self.path)
            memory.close()
            return self._new_memory()
        page_size = memory.execute("PRAGMA page_size").fetchone()[0]
        memory.execute(f"PRAGMA max_page_count = {max(1, self.memory_limit_bytes // page_size)}")
        return memory

    def _hold_in_memory(self, exc: BaseException, what: str) -> None:
        self.write_failures += 1
        self._memory_reason = f"{self.path} {what} ({exc})"
        self._memory_since = time.time()
        self._next_retry = self.monotonic() + self.retry_interval_s
        log.error("%s: holding this state in memory, written to the file once it can be (retried every %gs)",
                  self._memory_reason, self.retry_interval_s)

    # ---- back to the file -----------------------------------------------------------------------

    @property
    def in_memory(self) -> bool:
        """True while the state lives only in memory because its file cannot be written."""
        return self._conn is self._memory and self.path != MEMORY

    def durable(self) -> bool:
        """Whether a write now lands in the file (always, for a database in memory by choice)."""
        with self._lock:
            self._retry_file_if_due()
            return not self.in_memory

    def _retry_file_if_due(self, force: bool = False) -> None:
        if not self.in_memory or (not force and self.monotonic() < self._next_retry):
            return
        self._next_retry = self.monotonic() + self.retry_interval_s
        try:
            if self._file is None:
                self._file = self._open_file()
            # A lock held by another process (an operator's sqlite3 shell) must not hang us:
            # BEGIN IMMEDIATE waits its busy timeout, then fails; backup() would retry forever.
            self._file.execute("BEGIN IMMEDIATE")
            self._file.execute("ROLLBACK")
            self._memory.backup(self._file)  # type: ignore[union-attr]
        except (sqlite3.Error, OSError, _Unreadable) as exc:
            self.write_failures += 1
            self._memory_reason = f"{self.path} cannot be written ({exc})"
            return
        log.warning("%s written from memory (held since %s); the file is used again", self.path,
                    _utc(self._memory_since))
        self._memory.close()  # type: ignore[union-attr]
        self._memory = None
        self._conn = self._file

    # ---- reporting and closing ----------------------------------------------------------------

    def problems(self) -> dict[str, str]:
        """The health hook: reason code -> one sentence, empty when the state is on disk.

        Read without the database lock: /metrics and /-/ready ask for it and must not wait
        behind a long write (copying a dict and reading flags is atomic under the GIL)."""
        found = dict(self._sticky)
        if self.in_memory:
            found["state_in_memory"] = (
                f"{self._memory_reason}; this state is held in memory since {_utc(self._memory_since)} and "
                f"written to the file once it can be (retried every {self.retry_interval_s:g}s); a restart "
                "now loses what changed since")
        return found

    def close(self) -> None:
        with self._lock:
            if self.in_memory:
                self._retry_file_if_due(force=True)
                if self.in_memory:
                    log.error("%s: changes held in memory since %s are lost at exit", self._memory_reason,
                              _utc(self._memory_since))
            for conn in {id(c): c for c in (self._file, self._memory) if c is not None}.values():
                conn.close()


class StateCollector:
    """A state database's counters as ``{prefix}_state_*`` metrics, labelled with its file name
    (families without samples when the component keeps no state)."""

    def __init__(self, db: Database | None, prefix: str) -> None:
        self.db = db
        self.prefix = prefix

    def collect(self) -> Iterator:
        failures = CounterMetricFamily(f"{self.prefix}_state_write_failures",
                                       "Writes to the state file that failed (disk full, I/O error, read-only); "
                                       "the state is then held in memory", labels=["database"])
        dropped = CounterMetricFamily(f"{self.prefix}_state_writes_dropped",
                                      "State writes lost: neither the file nor the bounded in-memory copy took "
                                      "them", labels=["database"])
        held = GaugeMetricFamily(f"{self.prefix}_state_in_memory",
                                 "1 while the state is held in memory only because its file cannot be written",
                                 labels=["database"])
        if self.db is not None:
            labels = [self.db.name]
            failures.add_metric(labels, self.db.write_failures)
            dropped.add_metric(labels, self.db.dropped_writes)
            held.add_metric(labels, 1.0 if self.db.in_memory else 0.0)
        yield from (failures, dropped, held)
