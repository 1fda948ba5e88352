"""Test doubles for the remediation tests: a small mutable cluster behind the real scheduler
adapter (so validation and auditing run for real), a query client answering from a table, and
recorders for webhooks and commands. No tests here."""
from __future__ import annotations

from dataclasses import dataclass, field

from alerts.model import Alert
from alerts.notify.sqlite import Database
from remediation import policy as policy_module
from remediation.engine import RemediationEngine
from remediation.store import RemediationStore
from remediation.suppress import SilenceSuppressor
from alerts.silences import SilenceStore
from scheduler.actions_model import ACTIONS, Action, Answer
from scheduler.adapter import SchedulerAdapter
from scheduler.model import Job, Node, SchedulerSnapshot, SourceInfo
from tsdb.results import QueryResult, Series

T0 = 1_700_000_000.0


@dataclass
class FakeNode:
    name: str
    state: str = "IDLE"
    flags: set[str] = field(default_factory=set)
    reason: str = ""
    set_by: str = ""
    partitions: tuple[str, ...] = ("batch",)
    next_state: str = ""  # of a reboot asked for


class FakeCluster:
    """Slurm's node and job states, changed by the actions the adapter sends."""

    name = "fake"
    supported_actions = frozenset(ACTIONS)

    def __init__(self, nodes: int = 10, clock=lambda: T0) -> None:
        self.nodes = {f"gpu-{i:03d}": FakeNode(f"gpu-{i:03d}") for i in range(1, nodes + 1)}
        self.jobs: dict[str, Job] = {}
        self.executed: list[Action] = []
        self.clock = clock

    def fetch(self, timeout: float) -> SchedulerSnapshot:
        nodes = tuple(Node(n.name, n.state, tuple(sorted(n.flags)), n.reason, n.set_by, None, 8, 0, n.partitions)
                      for n in self.nodes.values())
        return SchedulerSnapshot(tuple(self.jobs.values()), nodes, self.clock(), SourceInfo("fake"))

    def execute(self, action: Action, timeout: float) -> Answer:
        self.executed.append(action)
        node = self.nodes.get(action.target)
        if action.kind == "drain":
            node.flags.add("DRAIN")
            node.reason, node.set_by = action.reason, "root"
        elif action.kind == "resume":
            node.flags.discard("DRAIN")
            node.reason = node.set_by = ""
            if node.state == "DOWN":
                node.state = "IDLE"
        elif action.kind == "reboot":
            node.flags.add("REBOOT_REQUESTED")
            node.next_state = action.next_state
        elif action.kind == "requeue":
            job = self.jobs[action.target]
            self.jobs[action.target] = Job(job.job_id, state="PENDING", nodes=())
        return Answer(True, "ok", 0, ("scontrol", action.kind, action.target))

    def finish_reboot(self, name: str) -> None:
        """The node is back, as Slurm 22.05 leaves it (seen on the suite's real Slurm): with
        nextstate=DOWN it is DOWN, its drain flag cleared, the reason kept with Slurm's notes
        appended; with nextstate=RESUME it is back in service."""
        node = self.nodes[name]
        node.flags -= {"REBOOT_REQUESTED", "REBOOT_ISSUED", "DRAIN"}
        if node.next_state == "DOWN":
            node.state = "DOWN"
            node.reason = f"{node.reason} : reboot issued : reboot complete"
        else:
            node.state, node.reason, node.set_by = "IDLE", "", ""

    def operator_drain(self, name: str, reason: str = "disk replacement") -> None:
        node = self.nodes[name]
        node.flags.add("DRAIN")
        node.reason, node.set_by = reason, "alice"

    def run_job(self, job_id: str, node: str, gpus: tuple[int, ...], state: str = "RUNNING",
                end_time: float | None = None) -> None:
        self.jobs[job_id] = Job(job_id, user="bob", state=state, nodes=(node,), gpu_indices={node: gpus},
                                gpus=len(gpus), end_time=end_time)
        if state == "RUNNING":
            self.nodes[node].state = "MIXED"

    def end_jobs(self, node: str) -> None:
        for job_id, job in list(self.jobs.items()):
            if node in job.nodes and job.state == "RUNNING":
                self.jobs[job_id] = Job(job.job_id, state="COMPLETED", nodes=job.nodes, end_time=self.clock())
        self.nodes[node].state = "IDLE"


class TableQuery:
    """PromQL answers by substring: the first key found in the query decides."""

    def __init__(self, healthy: bool = True) -> None:
        self.healthy = healthy
        self.queries: list[str] = []

    def instant(self, query: str, at: float | None = None) -> QueryResult:
        self.queries.append(query)
        if query.startswith("gpu_info"):
            return QueryResult("vector", [Series({"__name__": "gpu_info", "serial": "1650924060001",
                                                  "uuid": "GPU-abc", "gpu": "3"}, [at or T0], [1.0])])
        if "gpu_" in query and not query.startswith(("min", "absent")):
            return QueryResult("vector", [Series({"__name__": "gpu_temperature_celsius", "gpu": "3"}, [T0], [70.0])])
        return QueryResult("vector", [Series({}, [at or T0], [1.0])] if self.healthy else [])

    def range(self, query: str, start: float, end: float, step: float) -> QueryResult:
        raise NotImplementedError


class Clock:
    def __init__(self, start: float = T0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def alert(name: str = "GpuXidRebootRequired", node: str = "gpu-001", gpu: str | None = "3",
          resolved: bool = False, **labels: str) -> Alert:
    base = {"alertname": name, "instance": node, "severity": "critical", **labels}
    if gpu is not None:
        base["gpu"] = gpu
    return Alert(base, starts_at=T0, ends_at=T0 + 1 if resolved else None)


def make_policy(mode: str = "auto", **guards: object) -> policy_module.Policy:
    raw = policy_module.yaml.safe_load(policy_module.DEFAULT_POLICY.read_text())
    raw["mode"] = mode
    raw["guards"].update(guards)
    raw["receivers"] = {"repair": {"url": "http://tickets.test/hook"}, "fabric": {"url": "http://fabric.test/hook"},
                        "job_owner": {"url": "http://owners.test/hook"}}
    for entry in raw["classes"]:
        if entry["name"] in ("fabric", "straggler"):
            entry["mode"] = "auto"
    return policy_module.parse(raw, "test-policy.yml")


class Harness:
    """An engine over a FakeCluster with recorders; ``step()`` advances time and evaluates."""

    def __init__(self, mode: str = "auto", nodes: int = 10, policy: policy_module.Policy | None = None,
                 db: str = ":memory:", healthy: bool = True, **guards: object) -> None:
        self.clock = Clock()
        self.cluster = FakeCluster(nodes, self.clock)
        self.adapter = SchedulerAdapter(self.cluster, min_interval=1, wall_clock=self.clock, monotonic=self.clock)
        self.adapter.refresh(wait=True)
        self.query = TableQuery(healthy)
        self.sent: list[tuple[str, dict, str]] = []
        self.commands: list[list[str]] = []
        self.db = db
        self.policy = policy or make_policy(mode, **guards)
        self.store = RemediationStore(db)
        self.silences = SilenceStore(Database(), self.clock)  # the pipeline's, where the engine holds alerts
        self.engine = self.build()

    def build(self, mode: str | None = None) -> RemediationEngine:
        return RemediationEngine(self.policy, self.adapter, self.store, self.query, mode=mode, clock=self.clock,
                                 sender=lambda r, body, key: self.sent.append((r.url, body, key)),
                                 runner=lambda argv, timeout: (self.commands.append(argv), (0, "ok"))[1],
                                 suppressor=SilenceSuppressor(self.silences))

    def receive(self, *alerts) -> None:
        """As the hook would: the cluster changed since the last poll, so read it afresh."""
        self.adapter.poller.expire()
        self.engine.receive(list(alerts))

    def step(self, seconds: float = 30) -> None:
        self.clock.advance(seconds)
        self.engine.evaluate()

    def results(self, action: str) -> list[str]:
        return [e.result for e in reversed(self.store.audit_entries()) if e.action == action]

    def case(self, case_id: int = 1):
        return self.store.case(case_id)
