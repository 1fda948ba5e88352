"""Backends: command vectors (local and HTTP) and slurmrestd, against recorded shapes."""
import json
import sys
from pathlib import Path

import httpx
import pytest

from scheduler import build_scheduler
from scheduler.actions_model import Action
from scheduler.backends.runners import HttpRunner, LocalRunner
from scheduler.backends.slurm_commands import SlurmCommandBackend
from scheduler.backends.slurmrestd import SlurmRestBackend, newest_api_version
from scheduler.errors import SchedulerError, SchedulerTimeout

FIXTURES = Path(__file__).parent.parent / "fixtures"

# A stand-in Slurm client: prints a fixture for squeue/sinfo and its own argv for scontrol, so
# tests see exactly the argument vector that reached the program.
FAKE_TOOL = """
import json, sys
tool, fixture_dir, args = sys.argv[1], sys.argv[2], sys.argv[3:]
if tool == "scontrol":
    print(json.dumps(args))
    sys.exit(0 if args[0] != "requeue" else 1)
if tool == "slow":
    import time; time.sleep(10)
print(open(fixture_dir + "/" + tool + ".json").read())
"""


@pytest.fixture
def fake_tool(tmp_path):
    script = tmp_path / "fake_slurm.py"
    script.write_text(FAKE_TOOL)
    return script


def tool(script, name, folder="slurm-23.11"):
    return [sys.executable, str(script), name, str(FIXTURES / folder)]


def test_command_backend_reads_through_a_prefix(fake_tool):
    # The prefix is any argv that ends by running the command it is given ("env" here, nsenter
    # in the real-Slurm tests).
    runner = LocalRunner({"squeue": tool(fake_tool, "squeue"), "sinfo": tool(fake_tool, "sinfo")},
                         prefix=["env", "CW_PREFIXED=1"])
    assert runner.run("squeue", ["--json"], 20).command[:2] == ("env", "CW_PREFIXED=1")
    backend = SlurmCommandBackend(runner)
    snapshot = backend.fetch(timeout=20)
    assert {job.job_id for job in snapshot.jobs} == {"101", "205", "300", "99", "102"}
    assert snapshot.source.data_parser == "v0.0.40"
    assert len(snapshot.nodes) == 5


def test_scontrol_gets_an_argument_vector_not_a_shell_line(fake_tool):
    runner = LocalRunner({"scontrol": tool(fake_tool, "scontrol")})
    backend = SlurmCommandBackend(runner)
    answer = backend.execute(Action("drain", "gpu-001", "ops", reason="a b $(x) ; y"), timeout=20)
    assert answer.ok
    # The fake prints the args after its own two: the reason arrives as one untouched argument.
    assert json.loads(answer.message)[-4:] == ["update", "NodeName=gpu-001", "State=DRAIN", "Reason=a b $(x) ; y"]
    failed = backend.execute(Action("requeue", "7", "ops"), timeout=20)
    assert not failed.ok and failed.returncode == 1


def test_timeout_and_missing_binary(fake_tool):
    runner = LocalRunner({"squeue": tool(fake_tool, "slow")})
    with pytest.raises(SchedulerTimeout):
        SlurmCommandBackend(runner).fetch(timeout=0.5)
    with pytest.raises(SchedulerError, match="cannot run"):
        SlurmCommandBackend(LocalRunner({"squeue": ["/nonexistent/squeue"]})).fetch(timeout=5)


def test_nonzero_exit_is_an_error(fake_tool):
    runner = LocalRunner({"squeue": [sys.executable, "-c", "import sys; print('slurm_load_jobs error: Unable to contact slurm controller', file=sys.stderr); sys.exit(1)"]})
    with pytest.raises(SchedulerError, match="Unable to contact"):
        SlurmCommandBackend(runner).fetch(timeout=5)


def simulator_face(request: httpx.Request) -> httpx.Response:
    """The HTTP command protocol the simulator will serve (docs/scheduler.md)."""
    tool_name = request.url.path.rsplit("/", 1)[-1]
    args = json.loads(request.content)["args"]
    if tool_name == "scontrol":
        return httpx.Response(200, json={"returncode": 0, "stdout": "", "stderr": "", "echo": args})
    body = (FIXTURES / "slurm-22.05" / f"{tool_name}.json").read_text()
    return httpx.Response(200, json={"returncode": 0, "stdout": body, "stderr": ""})


def test_http_command_face_is_read_like_the_binaries():
    client = httpx.Client(transport=httpx.MockTransport(simulator_face))
    backend = SlurmCommandBackend(HttpRunner("http://127.0.0.1:1/slurm", client=client), name="simulator")
    snapshot = backend.fetch(timeout=5)
    assert [job.job_id for job in snapshot.jobs] == ["1", "2"]
    assert snapshot.nodes[0].name == "localhost"
    answer = backend.execute(Action("resume", "localhost", "ops"), timeout=5)
    assert answer.ok and answer.command[0] == "POST http://127.0.0.1:1/slurm/scontrol"


def test_http_command_face_errors():
    client = httpx.Client(transport=httpx.MockTransport(lambda request: httpx.Response(503, text="down")))
    with pytest.raises(SchedulerError, match="HTTP 503"):
        HttpRunner("http://127.0.0.1:1", client=client).run("squeue", ["--json"], 5)
    client = httpx.Client(transport=httpx.MockTransport(lambda request: httpx.Response(200, text="{}")))
    with pytest.raises(SchedulerError, match="not a command answer"):
        HttpRunner("http://127.0.0.1:1", client=client).run("squeue", ["--json"], 5)


class FakeRestd:
    """slurmrestd answering with the 24.11 shapes; records requests."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        if path == "/openapi/v3":
            paths = {f"/slurm/{version}/{kind}/": {} for version in ("v0.0.40", "v0.0.41", "v0.0.42")
                     for kind in ("jobs", "nodes")}
            paths["/slurm/v0.0.43/jobs/"] = {}  # incomplete version: not chosen
            return httpx.Response(200, json={"paths": paths})
        if path == "/slurm/v0.0.42/jobs":
            return httpx.Response(200, text=(FIXTURES / "slurm-24.11" / "squeue.json").read_text())
        if path == "/slurm/v0.0.42/nodes":
            return httpx.Response(200, text=(FIXTURES / "slurm-24.11" / "scontrol-show-nodes.json").read_text())
        if path.startswith("/slurm/v0.0.42/node/"):
            if path.endswith("/gpu-404"):
                return httpx.Response(500, json={"errors": [{"description": "Invalid node name specified"}]})
            return httpx.Response(200, json={"meta": {}, "errors": [], "warnings": []})
        return httpx.Response(404)


def test_slurmrestd_discovers_version_sends_jwt_and_reads():
    fake = FakeRestd()
    backend = SlurmRestBackend("http://127.0.0.1:6820", token="jwt-abc", user_name="clusterwatch",
                               client=httpx.Client(transport=httpx.MockTransport(fake)))
    snapshot = backend.fetch(timeout=5)
    assert backend.api_version == "v0.0.42"
    assert {node.name for node in snapshot.nodes} == {"gpu-001", "gpu-003", "gpu-004"}
    assert snapshot.source.release == "24.11.1"
    assert all(request.headers["X-SLURM-USER-TOKEN"] == "jwt-abc" for request in fake.requests)
    assert all(request.headers["X-SLURM-USER-NAME"] == "clusterwatch" for request in fake.requests)


def test_slurmrestd_drain_and_error_answer():
    fake = FakeRestd()
    backend = SlurmRestBackend("http://127.0.0.1:6820", api_version="v0.0.42",
                               client=httpx.Client(transport=httpx.MockTransport(fake)))
    answer = backend.execute(Action("drain", "gpu-003", "ops", reason="XID 79"), timeout=5)
    assert answer.ok and answer.returncode == 200
    assert json.loads(fake.requests[-1].content) == {"state": ["DRAIN"], "reason": "XID 79"}
    refused = backend.execute(Action("resume", "gpu-404", "ops"), timeout=5)
    assert not refused.ok and "Invalid node name" in refused.message


def test_newest_api_version():
    assert newest_api_version({"paths": {"/slurm/v0.0.9/jobs": {}, "/slurm/v0.0.9/nodes": {},
                                         "/slurm/v0.0.10/jobs": {}, "/slurm/v0.0.10/nodes": {}}}) == "v0.0.10"
    assert newest_api_version({"paths": {}}) is None


def test_build_scheduler_kinds_and_refusals(fake_tool):
    adapter = build_scheduler("slurm-cli", squeue=tool(fake_tool, "squeue"), sinfo=tool(fake_tool, "sinfo"),
                              command_prefix=["env"], min_interval=1.0)
    assert adapter.refresh().healthy
    assert adapter.poller.min_interval == 1.0 and adapter.backend.name == "slurm-cli"
    assert build_scheduler("simulator", "http://127.0.0.1:1").backend.name == "simulator"
    assert build_scheduler("slurmrestd", "http://127.0.0.1:1", token="t").backend.name == "slurmrestd"
    with pytest.raises(ValueError, match="unknown scheduler kind"):
        build_scheduler("pbs")
    with pytest.raises(ValueError, match="needs a url"):
        build_scheduler("slurmrestd")
    with pytest.raises(ValueError, match="unknown options"):
        build_scheduler("slurm-cli", sqeue="typo")
