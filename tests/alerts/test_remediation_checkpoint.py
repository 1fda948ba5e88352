"""The checkpoint step: before a requeue kills a job still running on the faulty GPU, the engine
asks it to checkpoint (the policy's signal through the scheduler's validated action), waits one
evaluation at a time for its mark (clusterwatch_job_checkpoint_timestamp_seconds newer than the
request) at most the class's checkpoint_timeout, then requeues. Never for a lost GPU; dry-run
shows the would-be scancel; budget, rate limit and approvals hold; every request, wait and
outcome is in the case's audit."""
from __future__ import annotations

import re
import time

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from remediation import api, queries
from remediation import policy as policy_module
from scheduler.checkpoint import CHECKPOINT_METRIC
from tests.alerts.remediation_helpers import Harness, TableQuery, alert, make_policy
from tests.dashboard.reliability_data_set import ALICE_UID, History, at
from tsdb.client import LocalQueryClient, QueryError
from tsdb.promql.engine import Engine
from tsdb.results import QueryResult, Series

JOB = "4242"


class MarkQuery(TableQuery):
    """The TSDB as the textfile collector fills it: each job's last checkpoint mark on the node it
    was written on (``marks``: the job's batch host, gpu-001; ``elsewhere``: (job, node) -> mark),
    grouped as the query's ``max by (...)`` asks."""

    def __init__(self) -> None:
        super().__init__(healthy=True)
        self.marks: dict[str, float] = {}
        self.elsewhere: dict[tuple[str, str], float] = {}
        self.failing = False

    def instant(self, query: str, at: float | None = None) -> QueryResult:
        if CHECKPOINT_METRIC not in query:
            return super().instant(query, at)
        self.queries.append(query)
        if self.failing:
            raise QueryError("unavailable", "store unreachable")
        by = [name.strip() for name in re.search(r"max by \(([^)]*)\)", query).group(1).split(",")]
        exposed = {**{(job, "gpu-001"): mark for job, mark in self.marks.items()}, **self.elsewhere}
        grouped: dict[tuple[tuple[str, str], ...], float] = {}
        for (job, node), mark in exposed.items():
            if f'"{job}"' in query or f"{job}|" in query or f"|{job}" in query:
                key = tuple((name, value) for name, value in (("job_id", job), ("instance", node)) if name in by)
                grouped[key] = max(mark, grouped.get(key, mark))
        return QueryResult("vector", [Series(dict(key), [at or 0.0], [mark]) for key, mark in grouped.items()])


def harness(mode: str = "auto", policy: policy_module.Policy | None = None, **guards: object) -> Harness:
    h = Harness(mode=mode, policy=policy, **guards)
    h.query = MarkQuery()
    h.engine = h.build()
    h.cluster.run_job(JOB, "gpu-001", (3,))
    h.query.marks[JOB] = h.clock.now - 600  # written at its start, as the contract says: it honours it
    return h


def policy_with(**changes: object) -> policy_module.Policy:
    raw = policy_module.yaml.safe_load(policy_module.DEFAULT_POLICY.read_text())
    raw["mode"] = "auto"
    for entry in raw["classes"]:
        entry.update(changes.get("classes", {}))
    raw.update({k: v for k, v in changes.items() if k != "classes"})
    return policy_module.parse(raw, "test-policy.yml")


def clock(at: float) -> str:
    return time.strftime("%H:%M:%S UTC", time.gmtime(at))


def executed(h: Harness) -> list[tuple[str, str]]:
    return [(a.kind, a.target) for a in h.cluster.executed]


def audit(h: Harness, *actions: str) -> list[tuple[str, str | None, str]]:
    return [(e.action, e.job_id, e.result) for e in reversed(h.store.audit_entries(case_id=1))
            if e.action in actions]


def test_the_job_is_asked_to_checkpoint_and_the_requeue_waits_for_its_mark():
    h = harness()
    h.receive(alert(gpu="3"))
    assert executed(h) == [("drain", "gpu-001"), ("signal", JOB)]
    assert h.cluster.executed[-1].signal == "USR1"
    asked_at = h.clock.now
    assert h.case().current_step == "checkpoint"
    h.step(30)
    h.step(30)
    assert executed(h)[-1] == ("signal", JOB), "no requeue, and no second signal, while the checkpoint is written"
    h.query.marks[JOB] = asked_at - 300  # an older, periodic checkpoint does not answer the request
    h.step(30)
    assert h.case().current_step == "checkpoint"
    h.query.marks[JOB] = asked_at + 75
    h.step(30)
    assert executed(h)[-1] == ("requeue", JOB)
    assert audit(h, "signal", "checkpoint", "requeue") == [
        ("signal", JOB, "done"), ("checkpoint", JOB, "waiting"), ("checkpoint", JOB, f"landed at {clock(asked_at + 75)}"),
        ("requeue", JOB, "done")]
    [landed] = [s for s in h.store.steps(1) if s.name == "checkpoint" and s.status == "done"]
    assert "landed" in landed.detail and "75s after the request" in landed.detail
    waits = [s for s in h.store.steps(1) if s.name == "checkpoint" and s.status == "waiting"]
    assert len(waits) == 2, "one record per change of the wait, not one per evaluation"
    assert "scancel --signal=USR1 --batch 4242" in waits[0].detail


def test_no_mark_within_the_timeout_and_the_requeue_goes_ahead():
    h = harness()
    h.receive(alert(gpu="3"))
    h.step(590)
    assert executed(h)[-1] == ("signal", JOB)
    h.step(20)
    assert executed(h)[-1] == ("requeue", JOB)
    assert audit(h, "checkpoint") == [("checkpoint", JOB, "waiting"), ("checkpoint", JOB, "timed out")]
    [timed_out] = [s for s in h.store.steps(1) if s.name == "checkpoint" and s.status == "done"]
    assert "within 600s" in timed_out.detail


def test_the_timeout_is_per_class_and_zero_asks_nothing():
    h = harness(policy=policy_with(classes={"checkpoint_timeout": "2m"}))
    h.receive(alert(gpu="3"))
    h.step(130)
    assert executed(h)[-1] == ("requeue", JOB)
    off = harness(policy=policy_with(classes={"checkpoint_timeout": 0}))
    off.receive(alert(gpu="3"))
    assert executed(off) == [("drain", "gpu-001"), ("requeue", JOB)]
    assert "checkpoint_timeout is 0" in [s.detail for s in off.store.steps(1) if s.name == "checkpoint"][0]


def test_with_no_job_on_the_gpu_the_audit_names_no_job():
    """The skipped step's audit entry named the node as its job ("job_id": "gpu-001")."""
    h = harness()
    h.receive(alert(gpu="5"))  # the job holds GPU 3 only
    assert audit(h, "checkpoint") == [("checkpoint", None, "skipped")]
    assert all(e.job_id in (None, JOB) for e in h.store.audit_entries(case_id=1))


@pytest.mark.parametrize("lost", [alert(gpu="3", xid="79"), alert("GpuLost", gpu="3")])
def test_a_lost_gpu_is_never_waited_for(lost):
    h = harness()
    h.receive(lost)
    assert executed(h) == [("drain", "gpu-001"), ("requeue", JOB)]
    assert audit(h, "checkpoint") == [("checkpoint", JOB, "skipped: GPU lost")]
    [skipped] = [s for s in h.store.steps(1) if s.name == "checkpoint"]
    assert "dead" in skipped.detail and "can write no checkpoint" in skipped.detail


def test_dry_run_records_the_would_be_scancel_and_sends_nothing():
    h = harness(mode="dry-run")
    h.receive(alert(gpu="3"))
    assert h.cluster.executed == []
    assert audit(h, "signal", "requeue") == [("signal", JOB, "would"), ("requeue", JOB, "would")]
    [entry] = [e for e in h.store.audit_entries(case_id=1) if e.action == "signal"]
    assert "would run scancel --signal=USR1 --batch 4242" in entry.detail


def test_the_configured_signal_is_sent_and_a_dangerous_one_refused():
    h = harness(policy=policy_with(checkpoint_signal="SIGUSR2"))
    h.receive(alert(gpu="3"))
    assert h.cluster.executed[-1].signal == "USR2"
    with pytest.raises(policy_module.PolicyError, match="checkpoint_signal"):
        policy_with(checkpoint_signal="KILL")


def test_the_signal_counts_against_the_rate_limit():
    h = harness(actions_per_hour=1)
    h.receive(alert(gpu="3"))
    assert executed(h) == [("drain", "gpu-001")]
    assert audit(h, "signal")[0][2].startswith("not done: rate limit")
    h.step(3601)  # the drain's hour is over: the request goes out
    assert executed(h)[-1] == ("signal", JOB)


def test_no_signal_while_the_drain_budget_holds_the_case():
    h = harness(max_drained_nodes=0)
    h.receive(alert(gpu="3"))
    assert h.cluster.executed == []
    assert h.case().current_step == "drain"


def test_a_class_that_needs_approval_sends_nothing_before_it():
    h = harness()
    h.policy.classes[0].__dict__["mode"] = "approve"
    h.receive(alert(gpu="3"))
    h.step(30)
    assert h.cluster.executed == []
    h.engine.approve(1, "carol")
    assert executed(h) == [("drain", "gpu-001"), ("signal", JOB)]
    assert h.cluster.executed[-1].actor == "operator:carol"


def test_a_restart_neither_asks_again_nor_forgets_the_deadline():
    h = harness()
    h.receive(alert(gpu="3"))
    h.engine = h.build()
    h.engine.recover()
    h.step(300)
    assert executed(h).count(("signal", JOB)) == 1
    h.step(310)
    assert executed(h)[-1] == ("requeue", JOB)


def test_a_job_that_dies_of_the_signal_is_named_in_the_audit():
    h = harness()
    h.receive(alert(gpu="3"))
    h.cluster.jobs[JOB] = h.cluster.jobs[JOB].__class__(JOB, state="FAILED", nodes=("gpu-001",),
                                                         gpu_indices={"gpu-001": (3,)}, end_time=h.clock.now + 1)
    h.step(30)
    assert audit(h, "checkpoint") == [("checkpoint", JOB, "ended after the request")]
    assert "does not trap USR1" in [s.detail for s in h.store.steps(1) if s.name == "checkpoint"][-1]
    assert executed(h)[-1] == ("requeue", JOB), "a job that died of it is requeued like a crashed one"


def test_a_failing_query_keeps_waiting_and_says_why():
    h = harness()
    h.receive(alert(gpu="3"))
    h.query.failing = True  # after the request: the mark cannot be seen landing
    h.step(30)
    assert h.case().current_step == "checkpoint"
    assert "checkpoint query failed: unavailable: store unreachable" in h.store.steps(1)[-1].detail


def test_marks_unreadable_before_asking_means_nobody_is_asked_and_the_requeue_goes_on():
    h = harness()
    h.query.failing = True
    h.receive(alert(gpu="3"))
    assert ("signal", JOB) not in executed(h) and ("requeue", JOB) in executed(h)
    assert audit(h, "checkpoint") == [("checkpoint", JOB, "not asked: marks unreadable")]


def test_every_request_wait_and_outcome_is_on_the_case_through_the_api():
    h = harness()
    h.receive(alert(gpu="3"))
    h.step(30)
    h.query.marks[JOB] = landed = h.clock.now + 10
    h.step(30)
    app = FastAPI()
    app.include_router(api.build_router(h.engine))
    entries = TestClient(app).get("/api/automation/audit", params={"case_id": 1}).json()
    shown = [(e["action"], e["job_id"], e["result"]) for e in reversed(entries)]
    assert ("signal", JOB, "done") in shown and ("checkpoint", JOB, f"landed at {clock(landed)}") in shown
    assert shown.index(("signal", JOB, "done")) < shown.index(("requeue", JOB, "done"))
    assert any(e["action"] == "checkpoint" and e["job_id"] == JOB and e["result"] == "waiting" and
               "waiting for the checkpoint of job 4242" in e["detail"] for e in entries)


def test_a_ladder_with_the_checkpoint_after_the_requeue_is_refused():
    raw = policy_module.yaml.safe_load(policy_module.DEFAULT_POLICY.read_text())
    raw["ladders"]["reboot"] = ["evidence", "drain", "requeue", "checkpoint", "wait_idle"]
    with pytest.raises(policy_module.PolicyError, match="checkpoint must come before a requeue"):
        policy_module.parse(raw, "test-policy.yml")
    assert make_policy().classes[0].checkpoint_timeout == 600
    assert "checkpoint" in make_policy().classes[0].ladder


def test_a_job_that_never_wrote_a_mark_is_not_signalled_and_the_requeue_goes_on():
    """A batch script that does not trap USR1 dies of it (its default action): only a job that has
    written the contract's mark (at its start, then after each checkpoint) is asked."""
    h = harness()
    h.query.marks.clear()
    h.receive(alert(gpu="3"))
    assert ("signal", JOB) not in executed(h)
    assert ("requeue", JOB) in executed(h)
    assert audit(h, "checkpoint") == [("checkpoint", JOB, "skipped: no checkpoint mark, the job does not follow "
                                                          "the contract")]


def test_a_mark_written_on_a_node_the_job_does_not_run_on_is_not_its_checkpoint():
    """The textfile directory is writable by every job on a node: another job's script can write
    this job's mark. Only a mark from a node the job runs on is its word: a forged one landing
    after the request neither ends the wait (the requeue would throw away the work since the real
    checkpoint) nor makes a job that never wrote a mark look like one that traps the signal."""
    h = harness()
    h.receive(alert(gpu="3"))
    asked_at = h.clock.now
    h.query.elsewhere[(JOB, "gpu-002")] = asked_at + 30
    h.step(60)
    assert executed(h)[-1] == ("signal", JOB), "a forged mark must not let the requeue go ahead"
    assert h.case().current_step == "checkpoint"
    h.query.marks[JOB] = asked_at + 90
    h.step(30)
    assert executed(h)[-1] == ("requeue", JOB)
    assert ("checkpoint", JOB, f"landed at {clock(asked_at + 90)}") in audit(h, "checkpoint")

    stranger = harness()
    stranger.query.marks.clear()
    stranger.query.elsewhere[(JOB, "gpu-002")] = stranger.clock.now - 60
    stranger.receive(alert(gpu="3"))
    assert ("signal", JOB) not in executed(stranger), "a job that wrote no mark of its own would die of the signal"
    assert ("requeue", JOB) in executed(stranger)


def test_a_mark_another_user_wrote_is_not_the_jobs_checkpoint():
    """On a node shared by several users' jobs, mallory's job can write the mark of alice's job 330:
    the exporter stamps it with its writer, and the wait believes only marks from the job's own
    user (slurm_job_info's ``user``, or its ``uid`` while the node has not resolved the name) or
    unstamped ones (root or the exporter wrote them). Read from a real store, as the engine reads it."""
    h = History()
    h.job("330", 8, running=[(0, 79, ("n1",))], pending=[], restarts=[])
    h.spell(CHECKPOINT_METRIC, 10, 79, at(10), job_id="330", instance="n1", writer="alice")
    h.spell(CHECKPOINT_METRIC, 50, 79, at(50), job_id="330", instance="n1", writer="mallory")
    h.job("331", 8, running=[(0, 79, ("n2",))], pending=[], restarts=[])
    h.spell(CHECKPOINT_METRIC, 20, 79, at(20), job_id="331", instance="n2")
    h.job("332", 8, running=[(0, 79, ("n3",))], pending=[], restarts=[])
    h.spell(CHECKPOINT_METRIC, 40, 79, at(40), job_id="332", instance="n3", writer="mallory")
    # Written by uid: the node's exporter had not found the user's name yet (a slow user database).
    h.job("333", 8, running=[(0, 79, ("n4",))], pending=[], restarts=[])
    h.spell(CHECKPOINT_METRIC, 30, 79, at(30), job_id="333", instance="n4", writer=ALICE_UID)
    h.job("334", 8, running=[(0, 79, ("n5",))], pending=[], restarts=[])
    h.spell(CHECKPOINT_METRIC, 30, 79, at(30), job_id="334", instance="n5", writer="1002")
    client = LocalQueryClient(Engine(h.store()))
    jobs = {"330": ["n1"], "331": ["n2"], "332": ["n3"], "333": ["n4"], "334": ["n5"]}
    assert queries.checkpoint_times(client, jobs, at(60)) == {"330": at(10), "331": at(20), "333": at(30)}


def test_a_clock_step_back_does_not_lengthen_the_checkpoint_wait():
    """The server's clock is set back an hour (a VM restored from a snapshot, NTP stepping at boot)
    while the engine waits for a checkpoint: the wait restarts from the step, so the requeue comes
    at most the class's timeout later, not an hour and the timeout; the step is on the case."""
    h = harness()
    h.receive(alert(gpu="3"))
    h.step(300)
    assert executed(h)[-1] == ("signal", JOB)
    h.step(-3600)
    h.step(590)
    assert executed(h)[-1] == ("signal", JOB), "the wait restarted from the step back"
    h.step(20)
    assert executed(h)[-1] == ("requeue", JOB)
    [(_, _, went_back)] = audit(h, "clock_went_back")
    assert "3300s" in went_back
