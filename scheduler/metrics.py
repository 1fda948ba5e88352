"""Jobs, nodes and the adapter's own health as Prometheus families, from the cached snapshot.

``SchedulerCollector.collect()`` never asks Slurm: it renders whatever the poller holds, so a
scrape costs no slurmctld load and stays fast however slow squeue is. Job attribution is a join
(docs/architecture.md#the-gpu-to-job-join): ``slurm_job_gpu_info{job_id,instance,gpu}`` pairs with the exporter's
``gpu_job_info``; ``instance`` is the node name as Slurm knows it, so a Prometheus scraping this
endpoint must keep it (``honor_labels: true``).

Label cardinality: one series per job and per node, plus per (node, GPU) of running jobs. The only
free text is the job name and the node reason, both cut to ``MAX_LABEL`` characters.
"""
from __future__ import annotations

import time
from collections import Counter, defaultdict
from typing import Callable, Iterable, Iterator

from prometheus_client.core import Metric

from cwkernel.metrics import FamilySet, build_family, counter, gauge, metric_table
from scheduler.actions import ActionCounts
from scheduler.interruptions import Interruption
from scheduler.model import Job, Node
from scheduler.poller import PollStatus

MAX_LABEL = 64
# Node flags exposed as 0/1 series for every node (DRAINED/DRAINING derived from DRAIN + state).
NODE_FLAGS = ("drain", "drained", "draining", "down", "fail", "not_responding", "maint",
              "reboot_requested")

SQUEUE = "squeue --json / slurmrestd GET /jobs"
SINFO = "sinfo --json / scontrol / slurmrestd GET /nodes"
ADAPTER = "scheduler adapter (poller)"

METRICS = metric_table(
    gauge("slurm_job_info", "Job identity, value 1: join on job_id for per-job views.",
          ("job_id", "array_id", "user", "uid", "account", "partition", "name", "state", "reason"),
          source=f"{SQUEUE}: job_id, array ids, user_name, user_id, account, partition, name (cut to "
                 f"{MAX_LABEL}), job_state, state_reason"),
    gauge("slurm_job_gpus", "GPUs of the job: allocated once started, requested while pending.",
          ("job_id",), source=f"{SQUEUE}: tres_alloc_str / gres_detail / tres_req_str / tres_per_node"),
    gauge("slurm_job_nodes", "Nodes allocated to the job.", ("job_id",), source=f"{SQUEUE}: nodes"),
    gauge("slurm_job_submit_time_seconds", "When the job was submitted (Unix time).", ("job_id",),
          unit="seconds", source=f"{SQUEUE}: submit_time"),
    gauge("slurm_job_start_time_seconds", "When the job started (Unix time); absent while pending.",
          ("job_id",), unit="seconds", source=f"{SQUEUE}: start_time"),
    gauge("slurm_job_time_limit_seconds", "The job's time limit; absent when unlimited or unset.",
          ("job_id",), unit="seconds", source=f"{SQUEUE}: time_limit (minutes)"),
    gauge("slurm_job_exit_code", "Exit code of a finished job still listed by squeue.", ("job_id",),
          source=f"{SQUEUE}: exit_code"),
    gauge("slurm_job_restart_count", "Times Slurm restarted the job (each requeue adds one).", ("job_id",),
          source=f"{SQUEUE}: restart_cnt"),
    gauge("slurm_job_interruption_time_seconds", "When a running job was interrupted (Unix time): its restart "
          "count grew or it ended NODE_FAIL/BOOT_FAIL/PREEMPTED/FAILED/OUT_OF_MEMORY between two polls; "
          "interruption is its ordinal for the job, state what the poll saw.",
          ("job_id", "interruption", "state"), unit="seconds",
          source=f"{ADAPTER}: two successive {SQUEUE} snapshots (scheduler/interruptions.py)"),
    gauge("slurm_job_gpu_info", "GPU-to-job join, value 1: job_id runs on GPU index gpu of node instance.",
          ("job_id", "instance", "gpu"), source=f"{SQUEUE}: nodes + gres_detail IDX"),
    gauge("slurm_node_info", "Node identity and state, value 1.",
          ("instance", "state", "reason", "reason_set_by", "partitions"),
          source=f"{SINFO}: name, base state, reason (cut to {MAX_LABEL}), reason_set_by_user, partitions"),
    gauge("slurm_node_flag", "Node state flags as 0/1 series (drained = drain and idle/down; "
          "draining = drain with jobs still running).", ("instance", "flag"),
          source=f"{SINFO}: state, state_flags"),
    gauge("slurm_node_reason_time_seconds", "When the node's reason was set (Unix time).",
          ("instance",), unit="seconds", source=f"{SINFO}: reason_changed_at"),
    gauge("slurm_node_gpus", "GPUs configured on the node.", ("instance",), source=f"{SINFO}: gres"),
    gauge("slurm_node_gpus_allocated", "GPUs allocated to jobs on the node.", ("instance",),
          source=f"{SINFO}: gres_used"),
    gauge("slurm_node_cpus", "CPUs of the node.", ("instance",), source=f"{SINFO}: cpus"),
    gauge("slurm_node_cpus_allocated", "CPUs allocated on the node.", ("instance",),
          source=f"{SINFO}: alloc_cpus"),
    gauge("slurm_node_memory_bytes", "Memory of the node as configured in Slurm.", ("instance",),
          unit="bytes", source=f"{SINFO}: real_memory (MiB)"),
    gauge("slurm_node_memory_allocated_bytes", "Memory allocated on the node.", ("instance",),
          unit="bytes", source=f"{SINFO}: alloc_memory (MiB)"),
    gauge("slurm_partition_nodes", "Nodes of the partition by base state.", ("partition", "state"),
          source=f"{SINFO}: partitions, state"),
    gauge("slurm_partition_nodes_drain", "Nodes of the partition with a drain requested.", ("partition",),
          source=f"{SINFO}: partitions, state_flags"),
    gauge("slurm_partition_gpus", "GPUs configured in the partition.", ("partition",), source=f"{SINFO}: gres"),
    gauge("slurm_partition_gpus_allocated", "GPUs allocated in the partition.", ("partition",),
          source=f"{SINFO}: gres_used"),
    gauge("slurm_partition_jobs", "Jobs of the partition by state.", ("partition", "state"),
          source=f"{SQUEUE}: partition, job_state"),
    gauge("clusterwatch_scheduler_up", "1 when the last poll of the scheduler succeeded.", source=ADAPTER),
    gauge("clusterwatch_scheduler_data_age_seconds", "Age of the snapshot served (grows while polls fail).",
          unit="seconds", source=ADAPTER),
    gauge("clusterwatch_scheduler_poll_duration_seconds", "Duration of the last poll (squeue + sinfo).",
          unit="seconds", source=ADAPTER),
    gauge("clusterwatch_scheduler_last_success_time_seconds", "When a poll last succeeded (Unix time).",
          unit="seconds", source=ADAPTER),
    counter("clusterwatch_scheduler_polls_total", "Polls of the scheduler, failed ones included.", source=ADAPTER),
    counter("clusterwatch_scheduler_poll_errors_total", "Polls of the scheduler that failed.", source=ADAPTER),
    gauge("clusterwatch_scheduler_info", "The backend and what it reported of itself, value 1.",
          ("backend", "release", "data_parser"), source=f"{ADAPTER}: meta of the JSON answers"),
    counter("clusterwatch_scheduler_actions_total", "Actions by kind and outcome (refused, done, failed).",
            ("action", "outcome"), source="scheduler action API"),
)


def _cut(value: str) -> str:
    return value if len(value) <= MAX_LABEL else value[: MAX_LABEL - 1] + "…"


def _node_flags(node: Node) -> dict[str, bool]:
    return {
        "drain": node.drain,
        "drained": node.drained,
        "draining": node.draining,
        "down": node.state == "DOWN" or node.has_flag("DOWN"),
        "fail": node.has_flag("FAIL") or node.has_flag("FAILING"),
        "not_responding": node.has_flag("NOT_RESPONDING"),
        "maint": node.has_flag("MAINTENANCE") or node.has_flag("MAINT"),
        "reboot_requested": node.has_flag("REBOOT_REQUESTED") or node.has_flag("REBOOT_ISSUED"),
    }


def job_info_labels(job: Job) -> tuple[str, ...]:
    """Label values of ``slurm_job_info`` in table order.

    Built positionally because ``FamilySet.add(name, value, **labels)`` cannot take a label
    called ``name`` (it collides with its first parameter).
    """
    return (job.job_id, job.array_id, job.user, job.user_id, job.account, job.partition, _cut(job.name),
            job.state, _cut(job.reason))


# Job states in which the job still holds its GPUs (the join must not pair a GPU with a job that
# ended on it: the next job there would then match two jobs).
HOLDING_STATES = frozenset({"RUNNING", "COMPLETING", "SUSPENDED", "STOPPED"})


def add_job(families: FamilySet, job: Job) -> None:
    job_id = job.job_id
    families.add("slurm_job_gpus", job.gpus, job_id=job_id)
    families.add("slurm_job_nodes", len(job.nodes), job_id=job_id)
    if job.submit_time is not None:
        families.add("slurm_job_submit_time_seconds", job.submit_time, job_id=job_id)
    if job.start_time is not None:
        families.add("slurm_job_start_time_seconds", job.start_time, job_id=job_id)
    if job.time_limit_seconds is not None:
        families.add("slurm_job_time_limit_seconds", job.time_limit_seconds, job_id=job_id)
    families.add("slurm_job_restart_count", job.restart_count, job_id=job_id)
    if job.exit_code is not None and job.state not in ("PENDING", "RUNNING"):
        families.add("slurm_job_exit_code", job.exit_code, job_id=job_id)
    if job.state not in HOLDING_STATES and "COMPLETING" not in job.state_flags:
        return  # a finished job still listed by squeue keeps its gres_detail, but not its GPUs
    for node, indices in job.gpu_indices.items():
        for index in indices:
            families.add("slurm_job_gpu_info", 1, job_id=job_id, instance=node, gpu=index)


def add_node(families: FamilySet, node: Node) -> None:
    name = node.name
    families.add("slurm_node_info", 1, instance=name, state=node.state, reason=_cut(node.reason),
                 reason_set_by=node.reason_set_by, partitions=",".join(node.partitions))
    for flag, value in _node_flags(node).items():
        families.add("slurm_node_flag", 1 if value else 0, instance=name, flag=flag)
    if node.reason_time is not None:
        families.add("slurm_node_reason_time_seconds", node.reason_time, instance=name)
    families.add("slurm_node_gpus", node.gpus, instance=name)
    families.add("slurm_node_gpus_allocated", node.gpus_allocated, instance=name)
    families.add("slurm_node_cpus", node.cpus, instance=name)
    families.add("slurm_node_cpus_allocated", node.cpus_allocated, instance=name)
    families.add("slurm_node_memory_bytes", node.memory_bytes, instance=name)
    families.add("slurm_node_memory_allocated_bytes", node.memory_allocated_bytes, instance=name)


def add_partitions(families: FamilySet, nodes: tuple[Node, ...], jobs: tuple[Job, ...]) -> None:
    by_state: Counter[tuple[str, str]] = Counter()
    drain: Counter[str] = Counter()
    gpus: Counter[str] = Counter()
    allocated: Counter[str] = Counter()
    for node in nodes:
        for partition in node.partitions:
            by_state[(partition, node.state)] += 1
            drain[partition] += node.drain
            gpus[partition] += node.gpus
            allocated[partition] += node.gpus_allocated
    for (partition, state), count in by_state.items():
        families.add("slurm_partition_nodes", count, partition=partition, state=state)
    for partition in gpus:
        families.add("slurm_partition_nodes_drain", drain[partition], partition=partition)
        families.add("slurm_partition_gpus", gpus[partition], partition=partition)
        families.add("slurm_partition_gpus_allocated", allocated[partition], partition=partition)
    job_states: dict[tuple[str, str], int] = defaultdict(int)
    for job in jobs:
        job_states[(job.partition, job.state)] += 1
    for (partition, state), count in job_states.items():
        families.add("slurm_partition_jobs", count, partition=partition, state=state)


def add_interruptions(families: FamilySet, records: Iterable[Interruption]) -> None:
    for record in records:
        families.add("slurm_job_interruption_time_seconds", record.time, job_id=record.job_id,
                     interruption=str(record.ordinal), state=record.state)


def add_health(families: FamilySet, status: PollStatus, now: float, backend: str,
               actions: ActionCounts | None) -> None:
    families.add("clusterwatch_scheduler_up", 1 if status.healthy else 0)
    age = status.age(now)
    if age is not None:
        families.add("clusterwatch_scheduler_data_age_seconds", age)
    if status.last_duration is not None:
        families.add("clusterwatch_scheduler_poll_duration_seconds", status.last_duration)
    if status.last_success is not None:
        families.add("clusterwatch_scheduler_last_success_time_seconds", status.last_success)
    families.add("clusterwatch_scheduler_polls_total", status.polls)
    families.add("clusterwatch_scheduler_poll_errors_total", status.errors)
    source = status.snapshot.source if status.snapshot is not None else None
    families.add("clusterwatch_scheduler_info", 1, backend=backend,
                 release=source.release if source else "", data_parser=source.data_parser if source else "")
    for (action, outcome), count in sorted((actions.counts if actions else {}).items()):
        families.add("clusterwatch_scheduler_actions_total", count, action=action, outcome=outcome)


class SchedulerCollector:
    """A prometheus_client collector over a poller's status (register it on any registry)."""

    def __init__(self, status: Callable[[], PollStatus], backend: str,
                 actions: ActionCounts | None = None, wall_clock: Callable[[], float] = time.time,
                 interruptions: Callable[[], Iterable[Interruption]] | None = None) -> None:
        self._status = status
        self._interruptions = interruptions
        self._backend = backend
        self._actions = actions
        self._wall_clock = wall_clock

    def collect(self) -> Iterator[Metric]:
        status = self._status()
        families = FamilySet(METRICS)
        snapshot = status.snapshot
        job_info: list[tuple[tuple[str, ...], float]] = []
        if snapshot is not None:
            for job in snapshot.jobs:
                job_info.append((job_info_labels(job), 1.0))
                add_job(families, job)
            for node in snapshot.nodes:
                add_node(families, node)
            add_partitions(families, snapshot.nodes, snapshot.jobs)
        if self._interruptions is not None:
            add_interruptions(families, self._interruptions())
        add_health(families, status, self._wall_clock(), self._backend, self._actions)
        if job_info:
            yield build_family(METRICS["slurm_job_info"], job_info)
        yield from families

    def describe(self) -> Iterator[Metric]:
        # Declaring no families up front keeps registration from calling collect() (and reading a
        # possibly empty cache) at import time.
        return iter(())
