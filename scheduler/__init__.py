"""The scheduler adapter: ClusterWatch's one door to the workload manager (Slurm).

Owns: polling jobs and nodes (squeue/sinfo JSON, slurmrestd, the simulator's face), the job and
node model, their metrics, and the validated actions (drain, resume, requeue, reboot).
Must not touch: alert rules or remediation policy (``alerts``, ``remediation``), nor the store
(``tsdb``); it executes actions, it does not decide them.

Public API: ``build_scheduler(kind, url, **options) -> SchedulerAdapter`` (``.poller``,
``.actions``, ``.collector``), the model (``Job``, ``Node``, ``SchedulerSnapshot``, ``ActionResult``),
``ActionRefused``, ``AuditRecord``, the metric table ``METRICS`` (for docs/metrics.md) and the id
checks the actions apply (``is_node_name``, ``is_job_id``), for callers that refuse early.
"""
from scheduler.adapter import SchedulerAdapter
from scheduler.audit import AuditRecord
from scheduler.errors import ActionRefused, SchedulerError, SchedulerTimeout
from scheduler.factory import KINDS, build_scheduler
from scheduler.metrics import METRICS, SchedulerCollector
from scheduler.model import ActionResult, Job, Node, SchedulerSnapshot
from scheduler.validation import JOB_ID_PATTERN, is_job_id, is_node_name

__all__ = [
    "KINDS", "METRICS", "ActionRefused", "ActionResult", "AuditRecord", "Job", "Node",
    "SchedulerAdapter", "SchedulerCollector", "SchedulerError", "SchedulerSnapshot", "SchedulerTimeout",
    "JOB_ID_PATTERN", "build_scheduler", "is_job_id", "is_node_name",
]
