"""squeue --json / slurmrestd ``GET /jobs`` to ``Job`` records."""
from __future__ import annotations

import math
from typing import Any, Iterable

from scheduler import gres
from scheduler.fields import dig, first, integer, number, text, timestamp, words
from scheduler.hostlist import expand
from scheduler.model import Job

# Base job states; every other word in job_state (COMPLETING, REQUEUED, ...) is a flag.
BASE_STATES = frozenset({
    "PENDING", "RUNNING", "SUSPENDED", "COMPLETED", "CANCELLED", "FAILED", "TIMEOUT",
    "NODE_FAIL", "PREEMPTED", "BOOT_FAIL", "DEADLINE", "OUT_OF_MEMORY",
})
# States in which the job holds (or held) an allocation, so nodes, GPUs and start time are real.
STARTED_STATES = frozenset(BASE_STATES - {"PENDING"})


def parse_jobs(document: dict) -> list[Job]:
    records = document.get("jobs") or []
    return [parse_job(record) for record in records if isinstance(record, dict)]


def split_state(state_words: Iterable[str], base_states: frozenset[str]) -> tuple[str, tuple[str, ...]]:
    """The base state and the remaining flag words, whatever order Slurm listed them in."""
    state_words = tuple(state_words)
    base = next((word for word in state_words if word in base_states), "")
    if not base and state_words:
        base = state_words[0]  # a state newer than this table: keep it rather than drop it
    return base, tuple(word for word in state_words if word != base)


def parse_job(record: dict) -> Job:
    state, flags = split_state(words(record.get("job_state")), BASE_STATES)
    started = state in STARTED_STATES
    nodes = tuple(expand(text(record.get("nodes")))) if started else ()
    per_node, indices = _gpu_allocation(record, nodes)
    array_job, array_task = _array_ids(record)
    reason = text(record.get("state_reason"))
    return Job(
        job_id=text(integer(record.get("job_id"))),
        name=text(record.get("name")),
        user=text(first(record, "user_name", "user")),
        user_id=text(integer(record["user_id"])) if record.get("user_id") is not None else "",
        account=text(record.get("account")),
        partition=text(record.get("partition")),
        state=state,
        state_flags=flags,
        reason="" if reason == "None" else reason,
        array_job_id=array_job,
        array_task_id=array_task,
        nodes=nodes,
        gpus_per_node=per_node,
        gpu_indices=indices,
        gpus=_job_gpus(record, per_node, started),
        submit_time=timestamp(record.get("submit_time")),
        start_time=timestamp(record.get("start_time")) if started else None,
        end_time=timestamp(record.get("end_time")) if started else None,
        time_limit_seconds=_minutes_to_seconds(record.get("time_limit")),
        exit_code=_exit_code(record.get("exit_code")),
        restart_count=max(0, integer(record.get("restart_cnt"))),
    )


def _array_ids(record: dict) -> tuple[str | None, str | None]:
    array_job = number(record.get("array_job_id"))
    array_task = number(record.get("array_task_id"))
    if not array_job or array_task is None or math.isinf(array_job) or math.isinf(array_task):
        return None, None
    return str(int(array_job)), str(int(array_task))


def _gpu_allocation(record: dict, nodes: tuple[str, ...]) -> tuple[dict[str, int], dict[str, tuple[int, ...]]]:
    """GPUs per node and their indices: gres_detail lists one entry per node, in node order."""
    if not nodes:
        return {}, {}
    detail = record.get("gres_detail")
    if isinstance(detail, str):
        detail = [detail]
    per_node: dict[str, int] = {}
    indices: dict[str, tuple[int, ...]] = {}
    if isinstance(detail, list) and len(detail) == len(nodes):
        for node, entry in zip(nodes, detail):
            count = gres.gpu_count(text(entry))
            if count:
                per_node[node] = count
            found = gres.gpu_indices(text(entry))
            if found:
                indices[node] = found
        return per_node, indices
    # No per-node detail (older release, or a backend that omits it): the per-node request is
    # what every node got.
    requested = gres.gpu_count(text(record.get("tres_per_node")))
    if requested:
        per_node = {node: requested for node in nodes}
    return per_node, indices


def _job_gpus(record: dict, per_node: dict[str, int], started: bool) -> int:
    if started:
        allocated = gres.tres_gpus(text(record.get("tres_alloc_str")))
        if allocated is not None:
            return allocated
        return sum(per_node.values())
    requested = gres.tres_gpus(text(record.get("tres_req_str")))
    if requested is not None:
        return requested
    per_job = gres.gpu_count(text(record.get("tres_per_job")))
    if per_job:
        return per_job
    node_count = integer(record.get("node_count"), default=1) or 1
    return gres.gpu_count(text(record.get("tres_per_node"))) * node_count


def _minutes_to_seconds(value: Any) -> float | None:
    minutes = number(value)
    if minutes is None or math.isinf(minutes):
        return None
    return float(minutes) * 60.0


def _exit_code(value: Any) -> int | None:
    # 22.05: a plain int; 23.02+: {"status": [...], "return_code": {set, infinite, number}, ...}.
    if isinstance(value, dict) and ("return_code" in value or "status" in value):
        value = dig(value, "return_code")
    result = number(value)
    if result is None or math.isinf(result):
        return None
    return int(result)
