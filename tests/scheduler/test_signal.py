"""The checkpoint request: ``Actions.signal`` validates (job id, allowed signal) before anything
runs, and each backend sends the signal to the job's batch script only: ``scancel --signal=USR1
--batch <job>`` (an argument vector), slurmrestd's ``DELETE /job/<id>?signal=..&flags=BATCH_JOB``
from v0.0.40 on (refused with a clear error before), the simulator through its Slurm face."""
from __future__ import annotations

import json
import sys

import httpx
import pytest

from scheduler import build_scheduler
from scheduler.actions import Actions
from scheduler.actions_model import Action
from scheduler.audit import AuditRecord
from scheduler.backends.runners import LocalRunner
from scheduler.backends.slurm_commands import SlurmCommandBackend
from scheduler.backends.slurmrestd import SlurmRestBackend
from scheduler.errors import ActionRefused, SchedulerError
from tests.scheduler.fakes import FakeBackend

# A stand-in scancel that prints the argv it was given, so the test sees what reached the program.
ECHO_ARGV = "import json, sys; print(json.dumps(sys.argv[1:]))"


@pytest.fixture
def actions():
    backend = FakeBackend()
    records: list[AuditRecord] = []
    return Actions(backend, lambda: backend.snapshot, audit=records.append, wall_clock=lambda: 42.0), backend, records


@pytest.mark.parametrize("job_id,signal,message", [
    ("12; scancel 1", "USR1", "not a job id"),
    ("--user=root", "USR1", "not a job id"),
    ("101", "KILL", "signal must be one of"),
    ("101", "STOP", "signal must be one of"),
    ("101", "USR1 --full", "signal must be one of"),
    ("101", 9, "signal must be one of"),
])
def test_a_bad_job_id_or_signal_is_refused_before_anything_runs(actions, job_id, signal, message):
    adapter_actions, backend, records = actions
    with pytest.raises(ActionRefused, match=message):
        adapter_actions.signal(job_id, signal, "policy:gpu-reboot")
    assert backend.executed == []
    assert [r.phase for r in records] == ["refused"]


def test_signal_names_are_normalised_and_audited(actions):
    adapter_actions, backend, records = actions
    result = adapter_actions.signal("200_5", "SIGusr2", "policy:gpu-reboot", "checkpoint before requeue")
    assert result.ok
    [action] = backend.executed
    assert (action.kind, action.target, action.signal) == ("signal", "200_5", "USR2")
    assert [(r.phase, r.action, r.target) for r in records] == [("started", "signal", "200_5"),
                                                               ("done", "signal", "200_5")]


def test_slurm_cli_runs_scancel_to_the_batch_script_only(tmp_path):
    script = tmp_path / "scancel.py"
    script.write_text(ECHO_ARGV)
    backend = SlurmCommandBackend(LocalRunner({"scancel": [sys.executable, str(script)]}))
    answer = backend.execute(Action("signal", "4242", "ops", signal="USR1"), timeout=20)
    assert answer.ok
    assert json.loads(answer.message) == ["--signal=USR1", "--batch", "4242"]
    assert answer.command[-3:] == ("--signal=USR1", "--batch", "4242")


def test_slurm_cli_scancel_path_is_configurable(tmp_path):
    script = tmp_path / "scancel.py"
    script.write_text(ECHO_ARGV)
    adapter = build_scheduler("slurm-cli", scancel=[sys.executable, str(script)])
    assert adapter.backend.runner.commands["scancel"] == [sys.executable, str(script)]


class Restd:
    def __init__(self, errors: list | None = None) -> None:
        self.requests: list[httpx.Request] = []
        self.errors = errors or []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        status = 500 if self.errors else 200
        return httpx.Response(status, json={"meta": {}, "errors": self.errors, "warnings": []})


def test_slurmrestd_signals_the_batch_script_from_v0_0_40():
    fake = Restd()
    backend = SlurmRestBackend("http://127.0.0.1:6820", api_version="v0.0.40",
                               client=httpx.Client(transport=httpx.MockTransport(fake)))
    answer = backend.execute(Action("signal", "4242", "ops", signal="USR1"), timeout=5)
    assert answer.ok
    [request] = fake.requests
    assert request.method == "DELETE" and request.url.path == "/slurm/v0.0.40/job/4242"
    assert dict(request.url.params) == {"signal": "USR1", "flags": "BATCH_JOB"}

    refused = SlurmRestBackend("http://127.0.0.1:6820", api_version="v0.0.42", client=httpx.Client(
        transport=httpx.MockTransport(Restd([{"description": "Invalid job id specified"}]))))
    answer = refused.execute(Action("signal", "4242", "ops", signal="USR1"), timeout=5)
    assert not answer.ok and "Invalid job id" in answer.message


def test_slurmrestd_before_v0_0_40_refuses_instead_of_signalling_every_step():
    fake = Restd()
    backend = SlurmRestBackend("http://127.0.0.1:6820", api_version="v0.0.39",
                               client=httpx.Client(transport=httpx.MockTransport(fake)))
    with pytest.raises(SchedulerError, match="BATCH_JOB needs v0.0.40"):
        backend.execute(Action("signal", "4242", "ops", signal="USR1"), timeout=5)
    assert fake.requests == []
    # Through the action API the refusal is a failed result the caller records, not a crash.
    actions = Actions(backend, lambda: None, audit=lambda record: None)
    result = actions.signal("4242", "USR1", "ops")
    assert not result.ok and "slurm-cli backend" in result.message


def test_the_other_actions_of_slurmrestd_stay_refused():
    backend = SlurmRestBackend("http://127.0.0.1:6820", api_version="v0.0.42")
    actions = Actions(backend, lambda: None, audit=lambda record: None)
    with pytest.raises(ActionRefused, match="cannot requeue"):
        actions.requeue("4242", "ops")
