"""The state databases on a bad day (issue 14, finding 9): a corrupt or truncated file, a state
directory that cannot be written, a disk that fills up at run time. Monitoring goes on: the bad
file is set aside and a fresh one started, an unwritable state lives in memory and says so, and
what a full disk refused is kept in memory and written once the disk has room again."""
from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from alerts.evaluator.manager import RuleEvaluator
from alerts.evaluator.rulefile import load_rule_file
from alerts.evaluator.selfmetrics import EvaluatorCollector
from alerts.evaluator.state import AlertStateStore
from alerts.notify import component as alerting
from alerts.notify.config import parse
from alerts.notify.matchers import AlertMatcher
from alerts.notify.pipeline import Pipeline
from remediation.store import RemediationStore
from alerts.statedb import Database
from tests.alerts.notify_support import Clock, alert
from tests.alerts.remediation_helpers import Harness
from tests.alerts.remediation_helpers import alert as remediable_alert
from tests.realcomponents import free_port, wait_http
from tsdb.client import LocalQueryClient
from tsdb.promql.engine import Engine
from tsdb.store import Store

HOOK_CONFIG = """
global: {resolve_timeout: 1d}
route: {receiver: hook, group_by: [alertname], group_wait: 0s, group_interval: 1m}
receivers:
  - name: hook
    hook_configs: [{name: capture}]
"""


@contextlib.contextmanager
def full_disk():
    """No file of this process can grow (RLIMIT_FSIZE 0): SQLite's writes fail as on a full disk.
    Reads still work. Nothing else in the test may write a file meanwhile."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)


def rows(path: Path, sql: str) -> list[tuple]:
    """What is on disk, read by a connection of its own."""
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def set_aside_files(directory: Path, name: str) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith(f"{name}.corrupt-"))


def alerting_values(state_dir: Path, config: Path | None = None) -> dict:
    return {"state_dir": str(state_dir), "alerting_config": str(config) if config else None, "webhook_token": None}


# ---- unreadable files at start ------------------------------------------------------------------

def test_a_corrupt_alerting_db_is_set_aside_and_alerting_starts_fresh(tmp_path, caplog):
    state = tmp_path / "state"
    state.mkdir()
    (state / "alerting.db").write_bytes(os.urandom(64 * 1024))
    (state / "alerting.db-wal").write_bytes(os.urandom(4096))
    component, pipeline = alerting.from_settings(alerting_values(state))
    try:
        aside = set_aside_files(state, "alerting.db")
        assert aside[0].endswith("Z") and aside[0] + "-wal" in aside, "set aside with its WAL, still paired"
        assert (state / (aside[0] + "-wal")).stat().st_size == 4096
        problems = component.health()
        assert str(state / aside[0]) in problems["state_set_aside"]
        errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
        assert len(errors) == 1 and str(state / aside[0]) in errors[0] and "\n" not in errors[0]
        pipeline.notify([alert(1_700_000_000.0, alertname="Xid79", instance="n1")])
    finally:
        component.stop()
    assert rows(state / "alerting.db", "SELECT fingerprint FROM alerts"), "the fresh file holds the new state"


def test_a_truncated_alert_state_db_is_set_aside(tmp_path):
    path = tmp_path / "alert-state.sqlite"
    store = AlertStateStore(path)
    evaluator = _evaluator(store)
    evaluator.evaluate(1_700_000_000.0)
    key = _rule_key(evaluator)
    assert store.load(key, 1_700_000_030.0)
    store.close()
    size = path.stat().st_size
    with open(path, "r+b") as f:  # a file cut short by a crash of the file system or a bad copy
        f.truncate(size // 2)
        f.seek(100)
        f.write(b"\xff" * 2000)
    reopened = AlertStateStore(path)
    try:
        assert set_aside_files(tmp_path, "alert-state.sqlite")
        assert "state_set_aside" in reopened.db.problems()
        assert reopened.load(key, 1_700_000_030.0) == {}, "started fresh"
    finally:
        reopened.close()


def test_a_corrupt_remediation_db_is_set_aside(tmp_path):
    path = tmp_path / "remediation.db"
    path.write_bytes(b"SQLite format 3\x00" + os.urandom(8192))
    store = RemediationStore(path)
    try:
        assert set_aside_files(tmp_path, "remediation.db")
        assert "state_set_aside" in store.problems()
        assert store.open_cases() == []
    finally:
        store.close()


# ---- a state directory that cannot be written ---------------------------------------------------

def test_a_state_dir_that_cannot_be_created_runs_alerting_in_memory_and_says_so(tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the state directory should be")
    component, pipeline = alerting.from_settings(alerting_values(blocker / "state"))
    try:
        problems = component.health()
        assert "in memory" in problems["state_in_memory"] and "alerting.db" in problems["state_in_memory"]
        pipeline.notify([alert(1_700_000_000.0, alertname="Xid79", instance="n1")])
        assert [a.name for a in pipeline.store.current()] == ["Xid79"]
    finally:
        component.stop()


READ_ONLY_SCRIPT = """
import json, sys
from alerts.notify import component as alerting
component, pipeline = alerting.from_settings({"state_dir": sys.argv[1], "alerting_config": None,
                                              "webhook_token": None})
silences = [s.comment for s in pipeline.silences.list()]
pipeline.notify([])
print(json.dumps({"health": component.health(), "silences": silences}))
component.stop()
"""


def without_privileges(argv: list[str]) -> list[str]:
    """``argv`` subject to file permissions: root keeps its uid but loses every capability."""
    return ["setpriv", "--inh-caps=-all", "--bounding-set=-all", *argv] if os.geteuid() == 0 else argv


def test_a_read_only_state_dir_keeps_serving_the_state_it_can_read(tmp_path):
    state = tmp_path / "state"
    component, pipeline = alerting.from_settings(alerting_values(state))
    pipeline.silences.create([AlertMatcher("instance", "=", "n1")], time.time() + 86400, "ops",
                             "kept across the restart")
    component.stop()
    for path in state.iterdir():
        path.chmod(0o444)
    state.chmod(0o555)
    try:
        result = subprocess.run(without_privileges([sys.executable, "-c", READ_ONLY_SCRIPT, str(state)]),
                                capture_output=True, text=True, timeout=60, cwd=Path(__file__).resolve().parents[2])
    finally:
        state.chmod(0o755)
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert "in memory" in answer["health"]["state_in_memory"]
    assert answer["silences"] == ["kept across the restart"]
    assert "Traceback" not in result.stderr


# ---- a disk that fills up at run time -----------------------------------------------------------

def test_a_full_disk_keeps_alerts_and_notifications_in_memory_until_it_has_room(tmp_path):
    clock = Clock()
    db = Database(tmp_path / "alerting.db", retry_interval_s=0.0)
    pipeline = Pipeline(parse(HOOK_CONFIG, "test.yml"), db, clock=clock)
    sent: list = []
    pipeline.register_hook("capture", sent.append)
    with full_disk():
        pipeline.notify([alert(clock.now, alertname="Xid79", instance=f"n{i}", detail="x" * 2000)
                         for i in range(20)])
        pipeline.flush()
        pipeline.deliver()
        problems = dict(db.problems())
    assert [len(n.alerts) for n in sent] == [20], "delivered while the disk was full"
    assert "alerting.db" in problems["state_in_memory"]
    assert db.write_failures >= 1
    assert rows(tmp_path / "alerting.db", "SELECT COUNT(*) FROM alerts") == [(0,)], "nothing reached the file yet"
    # The disk has room again: the next write puts the state held in memory back into the file.
    pipeline.notify([alert(clock.now, alertname="Xid79", instance="n-after")])
    assert db.problems() == {}
    assert rows(tmp_path / "alerting.db", "SELECT COUNT(*) FROM alerts") == [(21,)]
    assert rows(tmp_path / "alerting.db", "SELECT state FROM outbox") == [("delivered",)]
    pipeline.close()


RULES = """
groups:
  - name: monitoring
    rules:
      - alert: AlwaysFiring
        expr: vector(1)
        annotations: {summary: "%s"}
""" % ("padding " * 400)


def _evaluator(store: AlertStateStore, notify=None) -> RuleEvaluator:
    """A real evaluator over the embedded engine, with one rule that fires at once."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "always.yml"
        path.write_text(RULES)
        groups = load_rule_file(path)
    return RuleEvaluator(groups, LocalQueryClient(Engine(Store())), state=store, notify=notify)


def _rule_key(evaluator: RuleEvaluator) -> str:
    return evaluator.alerting_rules()[0].rule.key


def test_a_full_disk_does_not_stop_rule_evaluation_and_is_counted(tmp_path):
    sent: list = []
    store = AlertStateStore(Database(tmp_path / "alert-state.sqlite", retry_interval_s=0.0))
    evaluator = _evaluator(store, notify=sent.extend)
    with full_disk():
        evaluator.evaluate(1_700_000_000.0)
        problems = dict(store.db.problems())
    assert [a.name for a in sent] == ["AlwaysFiring"], "alerts still go out"
    assert "alert-state.sqlite" in problems["state_in_memory"]
    families = {f.name: f for f in EvaluatorCollector(evaluator).collect()}
    assert families["clusterwatch_rule_state_write_failures"].samples[0].value >= 1
    evaluator.evaluate(1_700_000_030.0)  # room again: written back
    assert store.db.problems() == {}
    store.close()
    assert AlertStateStore(tmp_path / "alert-state.sqlite").load(_rule_key(evaluator), 1_700_000_060.0)


def test_remediation_acts_only_once_its_audit_trail_reaches_the_disk(tmp_path):
    h = Harness()
    h.store = RemediationStore(Database(tmp_path / "remediation.db", retry_interval_s=0.0))
    h.engine = h.build()
    with full_disk():
        with contextlib.suppress(Exception):  # the hook's delivery is retried by the outbox
            h.receive(remediable_alert())
        problems = dict(h.store.problems())
    assert h.cluster.executed == [], "no action while its record cannot be written"
    assert "remediation.db" in problems["remediation_paused"]
    h.step()
    assert h.cluster.executed and h.cluster.executed[0].kind == "drain", "acts once the disk has room"
    assert rows(tmp_path / "remediation.db", "SELECT action, result FROM audit WHERE action = 'drain'") \
        == [("drain", "done")]
    assert h.store.problems() == {}
    h.store.close()


# ---- serve end to end ---------------------------------------------------------------------------

@pytest.mark.real_component
def test_serve_with_corrupt_state_files_is_ready_degraded_and_sets_them_aside(tmp_path, process_factory):
    state = tmp_path / "state"
    state.mkdir()
    (state / "alerting.db").write_bytes(os.urandom(32 * 1024))
    (state / "alert-state.sqlite").write_bytes(b"not a database at all\n" * 100)
    port = free_port()
    proc = process_factory([sys.executable, "-m", "clusterwatch", "serve", "--listen", f"127.0.0.1:{port}",
                            "--state-dir", str(state)], name="serve")
    wait_http(f"http://127.0.0.1:{port}/-/healthy", timeout=60, proc=proc)
    ready = httpx.get(f"http://127.0.0.1:{port}/-/ready", timeout=10)
    assert ready.status_code == 200 and ready.text.startswith("Degraded")
    assert "alerting: state_set_aside" in ready.text and "rules: state_set_aside" in ready.text
    assert set_aside_files(state, "alerting.db") and set_aside_files(state, "alert-state.sqlite")
    metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    assert 'clusterwatch_component_problem_info{component="alerting",reason="state_set_aside"} 1.0' in metrics
    log = proc.log_tail(20000)
    assert "Traceback" not in log
    assert sum("set aside as" in line for line in log.splitlines()) == 2
