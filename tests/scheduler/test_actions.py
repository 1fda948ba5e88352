"""Validation refuses before anything runs; every call is audited with who and why."""
import pytest

from scheduler.actions import Actions
from scheduler.actions_model import Answer
from scheduler.audit import AuditRecord
from scheduler.backends.slurm_commands import scontrol_args
from scheduler.errors import ActionRefused, SchedulerError
from scheduler.validation import clean_text
from tests.scheduler.fakes import FakeBackend, fixture_snapshot


@pytest.fixture
def setup():
    backend = FakeBackend()
    records: list[AuditRecord] = []
    changes: list[int] = []
    actions = Actions(backend, lambda: backend.snapshot, audit=records.append,
                      on_change=lambda: changes.append(1), wall_clock=lambda: 42.0)
    return actions, backend, records, changes


REFUSALS = [
    ("drain", dict(node="gpu-999", reason="x", actor="ops"), "not in the last node list"),
    ("drain", dict(node="gpu-[001-004]", reason="x", actor="ops"), "not a single node name"),
    ("drain", dict(node="gpu-001,gpu-002", reason="x", actor="ops"), "not a single node name"),
    ("drain", dict(node="-h", reason="x", actor="ops"), "not a single node name"),
    ("drain", dict(node="gpu-001", reason="", actor="ops"), "reason is required"),
    ("drain", dict(node="gpu-001", reason="\n\t;|`$", actor="ops"), "reason is required"),
    ("drain", dict(node="gpu-001", reason="x", actor=""), "needs an actor"),
    ("resume", dict(node="gpu-001 State=DOWN", actor="ops"), "not a single node name"),
    ("requeue", dict(job_id="12a", actor="ops"), "not a job id"),
    ("requeue", dict(job_id="0", actor="ops"), "not a job id"),
    ("requeue", dict(job_id="1234_", actor="ops"), "not a job id"),
    ("requeue", dict(job_id="1234 5678", actor="ops"), "not a job id"),
    ("requeue", dict(job_id=True, actor="ops"), "not a job id"),
    ("reboot", dict(node="gpu-001", reason="x", next_state="IDLE", actor="ops"), "next state must be"),
    ("reboot", dict(node="gpu-001", reason="x", next_state="RESUME;reboot", actor="ops"), "next state must be"),
]


@pytest.mark.parametrize("kind,arguments,message", REFUSALS)
def test_refusals_run_nothing_and_are_audited(setup, kind, arguments, message):
    actions, backend, records, changes = setup
    with pytest.raises(ActionRefused, match=message):
        getattr(actions, kind)(**arguments)
    assert backend.executed == [] and changes == []
    [record] = records
    assert record.phase == "refused" and record.action == kind and message in record.detail
    assert actions.counts.counts == {(kind, "refused"): 1}


def test_refused_without_a_snapshot():
    backend = FakeBackend()
    actions = Actions(backend, lambda: None, audit=lambda record: None)
    with pytest.raises(ActionRefused, match="no node list"):
        actions.drain("gpu-001", "x", "ops")
    assert backend.executed == []


def test_backend_without_the_action_refuses_first():
    backend = FakeBackend(supported=("drain", "resume"))
    actions = Actions(backend, lambda: backend.snapshot, audit=lambda record: None)
    with pytest.raises(ActionRefused, match="cannot reboot"):
        actions.reboot("gpu-001", "x", "RESUME", "ops")


def test_drain_runs_cleaned_and_is_audited_before_and_after(setup):
    actions, backend, records, changes = setup
    result = actions.drain("gpu-003", 'XID 79 "GPU 3";\nrm -rf / $(id) `x`', actor="policy:xid")
    [action] = backend.executed
    assert action.reason == "XID 79 GPU 3 rm -rf / id x"
    assert scontrol_args(action) == ["update", "NodeName=gpu-003", "State=DRAIN", "Reason=XID 79 GPU 3 rm -rf / id x"]
    assert result.ok and result.message == "ok" and result.actor == "policy:xid" and result.target == "gpu-003"
    assert [record.phase for record in records] == ["started", "done"]
    assert all(record.actor == "policy:xid" and record.reason == action.reason for record in records)
    assert changes == [1]  # the poller is told to refresh


def test_reason_is_length_limited(setup):
    actions, backend, _, _ = setup
    actions.drain("gpu-001", "x" * 1000, "ops")
    assert len(backend.executed[0].reason) == 128


def test_requeue_accepts_array_ids_and_ints(setup):
    actions, backend, _, _ = setup
    actions.requeue("200_5", "ops")
    actions.requeue(101, "ops")
    assert [scontrol_args(action) for action in backend.executed] == [["requeue", "200_5"], ["requeue", "101"]]


def test_reboot_arguments(setup):
    actions, backend, _, _ = setup
    actions.reboot("gpu-004", "XID 48", "resume", "ops")
    actions.reboot("gpu-004", "XID 48", "DOWN", "ops", asap=False)
    assert [scontrol_args(action) for action in backend.executed] == [
        ["reboot", "ASAP", "nextstate=RESUME", "reason=XID 48", "gpu-004"],
        ["reboot", "nextstate=DOWN", "reason=XID 48", "gpu-004"],
    ]


def test_scheduler_saying_no_is_a_result_not_an_exception(setup):
    actions, backend, records, changes = setup
    backend.answer = Answer(False, "Invalid job id specified", 1, ("scontrol", "requeue", "7"))
    result = actions.requeue("7", "ops")
    assert not result.ok and result.message == "Invalid job id specified" and result.returncode == 1
    assert [record.phase for record in records] == ["started", "failed"] and changes == []


def test_backend_failure_is_a_failed_result(setup):
    actions, backend, records, _ = setup

    def broken(action, timeout):
        raise SchedulerError("scontrol: no answer within 30.0s")

    backend.execute = broken
    result = actions.resume("gpu-003", "ops")
    assert not result.ok and "no answer" in result.message
    assert records[-1].phase == "failed"


def test_clean_text():
    assert clean_text("a\u00a0b\x00c  d\u202e", 50) == "a b c d"
    assert clean_text("ok: xid=79, gpu 3.", 50) == "ok: xid=79, gpu 3."


def test_fixture_node_existence_uses_the_snapshot():
    assert fixture_snapshot().node("gpu-003") is not None
