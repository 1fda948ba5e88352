"""What ClusterWatch knows about the workload manager: jobs, nodes, and one poll's snapshot.

The model is scheduler-neutral on purpose (a Kubernetes backend can fill the same classes): times
are Unix seconds or None, durations are seconds, states are Slurm's upper-case words. Slurm's JSON
shapes are handled by the parsers, never here.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping


@dataclass(frozen=True)
class Job:
    job_id: str
    name: str = ""
    user: str = ""
    user_id: str = ""  # the numeric uid as text, "" when not reported
    account: str = ""
    partition: str = ""
    state: str = ""
    # Extra state words beside the base state (Slurm 23.02+ lists e.g. ["RUNNING", "COMPLETING"]).
    state_flags: tuple[str, ...] = ()
    reason: str = ""
    array_job_id: str | None = None
    array_task_id: str | None = None
    nodes: tuple[str, ...] = ()
    # Node name -> GPU count allocated there; node name -> GPU indices where Slurm reports them.
    gpus_per_node: Mapping[str, int] = field(default_factory=dict)
    gpu_indices: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    # GPUs of the whole job: allocated for a started job, requested for a pending one.
    gpus: int = 0
    submit_time: float | None = None
    start_time: float | None = None
    end_time: float | None = None
    time_limit_seconds: float | None = None  # None: no limit (INFINITE) or not reported
    exit_code: int | None = None
    # Times Slurm restarted the job (``restart_cnt``): each requeue, by an operator, the automation
    # or Slurm itself after a node failure, adds one.
    restart_count: int = 0

    @property
    def array_id(self) -> str:
        """``1234_5`` for an array task, ``""`` otherwise (the form operators type)."""
        if self.array_job_id is None or self.array_task_id is None:
            return ""
        return f"{self.array_job_id}_{self.array_task_id}"


# State flags a resume clears (slurmctld 22.05-24.05; MAINT and REBOOT_ISSUED in some releases).
RESUMABLE_FLAGS = frozenset({"DRAIN", "FAIL", "REBOOT_REQUESTED", "REBOOT_ISSUED", "POWERING_DOWN", "MAINT",
                             "MAINTENANCE"})


@dataclass(frozen=True)
class Node:
    name: str
    state: str = ""  # base state: IDLE, ALLOCATED, MIXED, DOWN, ...
    state_flags: tuple[str, ...] = ()  # DRAIN, NOT_RESPONDING, REBOOT_REQUESTED, ...
    reason: str = ""
    reason_set_by: str = ""
    reason_time: float | None = None
    gpus: int = 0
    gpus_allocated: int = 0
    partitions: tuple[str, ...] = ()
    cpus: int = 0
    cpus_allocated: int = 0
    memory_bytes: int = 0
    memory_allocated_bytes: int = 0

    def has_flag(self, flag: str) -> bool:
        return flag in self.state_flags

    @property
    def drain(self) -> bool:
        return "DRAIN" in self.state_flags

    @property
    def drained(self) -> bool:
        """Drain requested and nothing left running: safe to reboot or repair."""
        return self.drain and self.state in ("IDLE", "DOWN")

    @property
    def draining(self) -> bool:
        """Drain requested while jobs still run on it."""
        return self.drain and not self.drained

    @property
    def resumable(self) -> bool:
        """Whether Slurm takes ``State=RESUME`` for it (slurmctld's ``_valid_node_state_change``):
        down or future, or drained, failed, with a reboot pending, powering down or in maintenance.
        Any other node has nothing to resume (Slurm: "Invalid node state specified"). A node whose
        state the scheduler did not give is taken as resumable: only Slurm can say."""
        return not self.state or self.state in ("DOWN", "FUTURE") or not RESUMABLE_FLAGS.isdisjoint(self.state_flags)


@dataclass(frozen=True)
class SourceInfo:
    """Who answered: the backend, and the Slurm release / data parser version it reported."""

    backend: str
    release: str = ""
    data_parser: str = ""


@dataclass(frozen=True)
class SchedulerSnapshot:
    """One successful poll: every job and node, and when it was taken (Unix seconds)."""

    jobs: tuple[Job, ...]
    nodes: tuple[Node, ...]
    taken_at: float
    source: SourceInfo

    def node(self, name: str) -> Node | None:
        return self.nodes_by_name.get(name)

    @property
    def nodes_by_name(self) -> dict[str, Node]:
        cached = self.__dict__.get("_nodes_by_name")
        if cached is None:
            cached = {node.name: node for node in self.nodes}
            object.__setattr__(self, "_nodes_by_name", cached)
        return cached


@dataclass(frozen=True)
class ActionResult:
    """The scheduler's answer to one action, as the automation and the audit log record it."""

    action: str
    target: str
    ok: bool
    message: str
    actor: str
    reason: str = ""
    returncode: int | None = None  # exit status (CLI) or HTTP status (REST)
    duration_seconds: float = 0.0
    command: tuple[str, ...] = ()  # the argument vector or request line that ran
