"""The simulated cluster as Slurm shows it: ``squeue --json``, ``sinfo --json`` and ``scontrol``.

Output is shaped like Slurm 22.05's (OpenAPI v0.0.38; see tests/fixtures/slurm-22.05/), so the
scheduler adapter reads the simulator exactly as it reads a real slurmctld. ``scontrol`` takes an
argument vector, as the adapter passes it, and answers like scontrol: nothing on success, an
error line and exit status 1 on refusal.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from scheduler.checkpoint import SIGNALS, signal_name
from scheduler.hostlist import compress
from simulator.jobs import PENDING, RUNNING, SimJob
from simulator.scheduler import SchedulerError, SimNode, SimScheduler

CLUSTER = "simcluster"
SLURM_VERSION = {"major": 22, "micro": 8, "minor": 5}
META = {"plugin": {"type": "openapi/v0.0.38", "name": "Slurm OpenAPI v0.0.38"},
        "Slurm": {"version": SLURM_VERSION, "release": "22.05.8"}}
CPUS_PER_GPU = 28
NODE_CPUS, NODE_MEMORY_MB = 224, 2_063_000
USER_IDS = {"root": 0}


def index_ranges(indices: Sequence[int]) -> str:
    """``[0, 1, 2, 5]`` -> ``"0-2,5"`` as Slurm writes GRES indices."""
    parts, ordered = [], sorted(indices)
    start = prev = None
    for index in ordered + [None]:
        if start is not None and index is not None and index == prev + 1:
            prev = index
            continue
        if start is not None:
            parts.append(str(start) if start == prev else f"{start}-{prev}")
        start = prev = index
    return ",".join(parts)


def _uid(user: str) -> int:
    return USER_IDS.get(user, 1000 + sum(map(ord, user)) % 5000)


def job_json(job: SimJob) -> dict:
    running = job.state == RUNNING
    nodes = compress(job.nodes) if job.gpus else ""
    cpus = job.total_gpus * CPUS_PER_GPU
    limit_minutes = int(job.time_limit // 60)
    start = int(job.start_time or 0)
    return {
        "account": job.account, "accrue_time": int(job.submit_time), "admin_comment": "",
        "array_job_id": 0, "array_task_id": None, "array_max_tasks": 0, "array_task_string": "",
        "batch_flag": True, "batch_host": job.nodes[0] if job.gpus else "", "flags": [],
        "cluster": CLUSTER, "command": f"/home/{job.user}/jobs/{job.name}.sbatch", "comment": "",
        "derived_exit_code": 0, "eligible_time": int(job.submit_time),
        "end_time": int(job.end_time if job.end_time is not None else (start + job.time_limit if running else 0)),
        "exit_code": job.exit_code,
        "gres_detail": [f"gpu:{len(gpus)}(IDX:{index_ranges(gpus)})" for gpus in job.gpus.values()],
        "group_id": _uid(job.user), "group_name": job.account, "job_id": job.job_id,
        "job_resources": {
            "nodes": nodes, "allocated_cores": cpus, "allocated_hosts": len(job.gpus),
            "allocated_nodes": [{"nodename": node, "cpus_used": len(gpus) * CPUS_PER_GPU, "memory_used": 0,
                                 "memory_allocated": len(gpus) * 240_000} for node, gpus in job.gpus.items()],
        } if job.gpus else {},
        "job_state": job.state, "name": job.name, "nodes": nodes,
        "cpus": cpus, "node_count": job.num_nodes, "tasks": job.total_gpus,
        "partition": job.partition, "priority": 4294901759 - job.job_id, "qos": "normal",
        "requeue": job.requeue, "restart_cnt": job.restart_count,
        "start_time": start, "state_description": "", "state_reason": job.reason,
        "submit_time": int(job.submit_time), "time_limit": limit_minutes,
        "tres_per_node": f"gres:gpu:{job.gpus_per_node}",
        "tres_req_str": f"cpu={cpus},mem={job.total_gpus * 240}G,node={job.num_nodes},billing={cpus},gres/gpu={job.total_gpus}",
        "tres_alloc_str": f"cpu={cpus},node={job.num_nodes},billing={cpus},gres/gpu={job.total_gpus}" if job.gpus else "",
        "user_id": _uid(job.user), "user_name": job.user,
        "current_working_directory": f"/home/{job.user}/runs/{job.name}",
    }


def node_json(node: SimNode, now: float) -> dict:
    used = sorted(node.allocations)
    gres_used = f"gpu:{len(used)}(IDX:{index_ranges(used)})" if used else "gpu:0(IDX:N/A)"
    alloc_cpus = len(used) * CPUS_PER_GPU
    return {
        "architecture": "x86_64", "boards": 1, "boot_time": int(node.boot_time), "comment": "",
        "cores": 56, "cpu_binding": 0, "cpu_load": int(alloc_cpus * 90), "extra": "",
        "free_memory": NODE_MEMORY_MB - len(used) * 200_000, "cpus": NODE_CPUS,
        "last_busy": int(now if used else node.boot_time), "features": "h100,ib-ndr", "active_features": "h100,ib-ndr",
        "gres": f"gpu:{node.spec.gpus}", "gres_drained": "N/A", "gres_used": gres_used, "mcs_label": "",
        "name": node.name, "next_state_after_reboot": "invalid", "address": node.name, "hostname": node.name,
        "state": node.state, "state_flags": node.state_flags, "next_state_after_reboot_flags": [],
        "operating_system": "Linux 5.15.0-119-generic #129-Ubuntu SMP", "owner": None,
        "partitions": node.partitions, "port": 6818, "real_memory": NODE_MEMORY_MB,
        "reason": node.reason, "reason_changed_at": int(node.reason_time) if node.reason else 0,
        "reason_set_by_user": node.reason_set_by, "slurmd_start_time": int(node.boot_time),
        "sockets": 2, "threads": 2, "temporary_disk": 0, "weight": 1,
        "tres": f"cpu={NODE_CPUS},mem={NODE_MEMORY_MB}M,billing={NODE_CPUS},gres/gpu={node.spec.gpus}",
        "slurmd_version": "22.05.8", "alloc_memory": len(used) * 240_000, "alloc_cpus": alloc_cpus,
        "idle_cpus": NODE_CPUS - alloc_cpus, "tres_used": f"cpu={alloc_cpus},gres/gpu={len(used)}" if used else "",
        "tres_weighted": float(alloc_cpus),
    }


def squeue(scheduler: SimScheduler) -> dict:
    jobs = sorted(scheduler.jobs.values(), key=lambda job: job.job_id)
    return {"meta": META, "errors": [], "jobs": [job_json(job) for job in jobs]}


def sinfo(scheduler: SimScheduler) -> dict:
    return {"meta": META, "errors": [], "nodes": [node_json(node, scheduler.now) for node in scheduler.nodes.values()]}


@dataclass
class CommandResult:
    exit_code: int
    stdout: str = ""
    stderr: str = ""


def _key_values(args: Sequence[str]) -> tuple[dict[str, str], list[str]]:
    options, words = {}, []
    for arg in args:
        key, sep, value = arg.partition("=")
        if sep:
            options[key.lower()] = value
        else:
            words.append(arg)
    return options, words


def scontrol(scheduler: SimScheduler, argv: Sequence[str], user: str = "root") -> CommandResult:
    """Run ``scontrol ARGV`` against the simulated cluster."""
    if not argv:
        return CommandResult(1, stderr="scontrol: no command given\n")
    verb, args = argv[0].lower(), list(argv[1:])
    try:
        if verb == "update":
            _update(scheduler, args, user)
        elif verb == "requeue":
            for job_id in _job_ids(args):
                scheduler.requeue(job_id)
        elif verb == "reboot":
            options, words = _key_values(args)
            asap = any(word.upper() == "ASAP" for word in words)
            nodes = [w for w in words if w.upper() != "ASAP"]
            if len(nodes) != 1:
                raise SchedulerError("reboot needs exactly one node list")
            from scheduler.hostlist import expand

            scheduler.reboot(expand(nodes[0]), asap=asap, next_state=options.get("nextstate", ""),
                             reason=options.get("reason", ""), user=user)
        else:
            return CommandResult(1, stderr=f"invalid keyword: {argv[0]}\n")
    except SchedulerError as exc:
        return CommandResult(1, stderr=f"slurm_{verb}_error: {exc}\n")
    return CommandResult(0)


def scancel(scheduler: SimScheduler, argv: Sequence[str]) -> CommandResult:
    """``scancel JOB...`` cancels; ``scancel --signal=SIG --batch JOB`` asks the job to checkpoint
    (simulated jobs trap every signal of the contract's allow-list)."""
    options = [arg for arg in argv if arg.startswith("-")]
    signal = next((signal_name(arg.partition("=")[2]) or arg for arg in options if arg.startswith("--signal=")), None)
    unknown = [arg for arg in options if not arg.startswith("--signal=") and arg not in ("--batch", "-b")]
    if unknown or (signal is not None and signal not in SIGNALS):
        return CommandResult(1, stderr=f"scancel: error: unsupported option or signal: {' '.join(unknown or options)}\n")
    try:
        for job_id in _job_ids([arg for arg in argv if not arg.startswith("-")]):
            if signal is not None:
                scheduler.signal(job_id)
            else:
                scheduler.cancel(job_id)
    except SchedulerError as exc:
        return CommandResult(1, stderr=f"scancel: error: {exc}\n")
    return CommandResult(0)


def _job_ids(args: Sequence[str]) -> list[int]:
    if not args:
        raise SchedulerError("no job id given")
    try:
        return [int(arg) for arg in args]
    except ValueError:
        raise SchedulerError(f"Invalid job id specified: {' '.join(args)}") from None


def _update(scheduler: SimScheduler, args: list[str], user: str) -> None:
    from scheduler.hostlist import expand

    options, words = _key_values(args)
    if words or "nodename" not in options:
        raise SchedulerError("Update of this parameter is not supported: " + " ".join(args))
    state = options.get("state", "").upper()
    for node in expand(options["nodename"]):
        if state == "DRAIN":
            scheduler.drain(node, options.get("reason", ""), user)
        elif state == "RESUME":
            scheduler.resume(node, user)
        elif state == "DOWN":
            scheduler.set_down(node, options.get("reason", "") or "down by admin", user)
        else:
            raise SchedulerError(f"Invalid node state specified: {state or '(none)'}")
