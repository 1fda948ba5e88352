"""What each ladder step does, one method per step, given a case and a fresh snapshot.

A step returns an ``Outcome``: done (go on), waiting (try again at the next evaluation, e.g. the
node still runs jobs, or a guard said not now), skipped (nothing to do), failed, or ``repair``
(stop the ladder: keep the node drained and open a ticket). The engine records each outcome; the
steps never write to the store themselves except through the context they are given, so each
one can be tested with a case, a snapshot and fakes.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from remediation import guards, queries, validate
from remediation.ladder import DONE, FAILED, INTERRUPTED, NOT_DONE, SKIPPED, WAITING, WOULD
from remediation.outbound import OutboundError, Runner, Sender, command_argv
from remediation.policy import AlertClass, Policy
from remediation.store import Case, RemediationStore
from scheduler.checkpoint import scancel_args
from scheduler.errors import ActionRefused
from scheduler.model import ActionResult, Job, SchedulerSnapshot
from tsdb.client import QueryError

REBOOTING_FLAGS = ("REBOOT_REQUESTED", "REBOOT_ISSUED", "REBOOT", "NOT_RESPONDING")
CRASHED_STATES = ("FAILED", "NODE_FAIL")
# A crash shortly before the alert fired is the alert's crash: the XID is seen after the job died.
CRASH_WINDOW_SECONDS = 600.0
# What a drain held by the budget leaves open, said in the case: Slurm has no per-GPU drain
# (scontrol sets a node's GPU count only to zero, which is a drain; a reservation takes whole nodes).
# A GPU off the bus: the job on it is dead (its rank hangs in a CUDA call that never returns) and
# can write no checkpoint, so none is asked for and nothing waits.
GPU_LOST_ALERTS = frozenset({"GpuLost", "GpuCountDropped"})
GPU_LOST_XIDS = frozenset({"79"})
# A mark this much older than the request still answers it: node clocks differ from the server's,
# and a script's mark (date +%s) has whole seconds.
CHECKPOINT_CLOCK_SLACK = 5.0
# The audit action the engine records when the clock went back during a case's step; a checkpoint
# asked before it is waited for as if asked then.
CLOCK_WENT_BACK = "clock_went_back"
# Audit actions whose target is a job id rather than the case's node.
JOB_ACTIONS = frozenset({"requeue", "signal", "checkpoint"})
GPU_STAYS_SCHEDULABLE = ("GPU {gpu} stays schedulable until the drain: Slurm cannot take one GPU of a node out "
                         "of service (scontrol can set a node's GPU count only to zero, and a reservation takes "
                         "whole nodes)")


class SchedulerActions(Protocol):
    def drain(self, node: str, reason: str, actor: str) -> ActionResult: ...
    def resume(self, node: str, actor: str, reason: str = "") -> ActionResult: ...
    def requeue(self, job_id: str | int, actor: str, reason: str = "") -> ActionResult: ...
    def reboot(self, node: str, reason: str, next_state: str, actor: str, asap: bool = True) -> ActionResult: ...
    def signal(self, job_id: str | int, signal: str, actor: str, reason: str = "") -> ActionResult: ...


@dataclass
class Outcome:
    status: str  # done | waiting | skipped | failed | repair
    detail: str = ""
    actions: list[tuple[str, str, str]] = field(default_factory=list)  # (action, target, result) for the audit
    updates: dict[str, Any] = field(default_factory=dict)  # case fields to store


REPAIR = "repair"


@dataclass
class StepContext:
    policy: Policy
    alert_class: AlertClass
    case: Case
    snapshot: SchedulerSnapshot
    store: RemediationStore
    now: float
    actor: str
    execute: bool  # False in dry-run: decide, never act
    would_drain: frozenset[str]  # nodes open cases drained (or would have) that the snapshot may not show yet
    actions: SchedulerActions
    query: Any | None
    sender: Sender
    runner: Runner

    @property
    def target(self) -> validate.Target:
        return validate.Target(self.case.alertname, self.case.node, self.case.gpu, self.case.job_id)

    def values(self) -> dict[str, str | None]:
        return {"node": self.case.node, "gpu": self.case.gpu, "alertname": self.case.alertname,
                "job_id": self.case.job_id}


def _scheduler_call(action: Callable[[], ActionResult]) -> tuple[bool, str]:
    try:
        result = action()
    except ActionRefused as exc:
        return False, f"refused: {exc}"
    return result.ok, result.message or ("ok" if result.ok else "failed")


def _clock(at: float) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(at)) + " UTC"


def _guarded(ctx: StepContext, *checks: Callable[[], str | None]) -> str | None:
    for check in checks:
        refusal = check()
        if refusal:
            return refusal
    return None


def evidence(ctx: StepContext) -> Outcome:
    if ctx.query is None:
        return Outcome(NOT_DONE, "no query client configured: no evidence captured")
    try:
        cable = validate.cable(ctx.case.labels)
    except validate.LabelError as exc:
        return Outcome(FAILED, f"evidence: {exc}")
    if cable is not None:
        return _fabric_evidence(ctx, cable)
    captured = queries.evidence(ctx.query, ctx.case.node or "", ctx.case.gpu, ctx.now)
    captured["captured_at"] = ctx.now
    captured["alert_labels"] = ctx.case.labels
    series = len(captured["gpu_metrics"]) if isinstance(captured.get("gpu_metrics"), list) else 0
    return Outcome(DONE, f"{series} GPU series, serial {captured.get('serial') or '?'}, "
                         f"uuid {captured.get('uuid') or '?'}", updates={"evidence": captured})


def _fabric_evidence(ctx: StepContext, cable: validate.Cable) -> Outcome:
    """The repair crew's record: which cable (both ends, GUIDs), what each end counts, since when."""
    captured = queries.fabric_evidence(ctx.query, cable.labels, ctx.case.alertname, ctx.now)
    captured["captured_at"] = ctx.now
    captured["alert_labels"] = ctx.case.labels
    captured["since_timestamp"] = captured.get("since_timestamp", ctx.case.created_at)
    guids = " <-> ".join(captured.get(key) or "?" for key in ("switch_guid", "peer_guid")) if cable.peer else \
        captured.get("switch_guid") or "?"
    return Outcome(DONE, f"{cable} (GUIDs {guids}), {ctx.case.alertname} since {captured['since_timestamp']:.0f}",
                   updates={"evidence": captured})


def drain(ctx: StepContext, what: str = "", budgeted: bool = True) -> Outcome:
    node = ctx.snapshot.node(ctx.case.node or "")
    if node is None:
        return Outcome(FAILED, f"node {ctx.case.node} is not in the scheduler's node list")
    if node.drain:
        if guards.owns_drain(ctx.policy.reason_prefix, node):
            return Outcome(DONE, f"already drained by ClusterWatch ({node.reason})", updates={"owned": True})
        return Outcome(SKIPPED, f"already drained by {node.reason_set_by or 'someone else'} ({node.reason}): "
                                "ClusterWatch will not resume it", updates={"owned": False})
    checks = [lambda: guards.check_rate(ctx.policy.guards, ctx.store, ctx.now)]
    if budgeted:
        checks.insert(0, lambda: guards.check_budget(ctx.policy.guards, ctx.snapshot, node.name, ctx.would_drain))
    refusal = _guarded(ctx, *checks)
    if refusal:
        left_open = f"; {GPU_STAYS_SCHEDULABLE.format(gpu=ctx.case.gpu)}" if ctx.case.gpu is not None else ""
        return Outcome(WAITING, f"not done: {refusal}{left_open}",
                       actions=[("drain", node.name, f"not done: {refusal}")])
    reason = validate.reason(ctx.policy.reason_prefix, ctx.target, ctx.case.id, what)
    if not ctx.execute:
        return Outcome(DONE, f"would drain: {reason}", actions=[("drain", node.name, "would")],
                       updates={"owned": True})
    ok, message = _scheduler_call(lambda: ctx.actions.drain(node.name, reason, ctx.actor))
    return Outcome(DONE if ok else FAILED, f"{reason}: {message}", actions=[("drain", node.name, "done" if ok else
                                                                            f"failed: {message}")],
                   updates={"owned": True} if ok else {})


def _affected_jobs(ctx: StepContext) -> list[Job]:
    node, gpu, since = ctx.case.node or "", ctx.case.gpu, ctx.case.created_at - CRASH_WINDOW_SECONDS
    jobs = []
    for job in ctx.snapshot.jobs:
        if node not in job.nodes:
            continue
        crashed = job.state in CRASHED_STATES and (job.end_time or 0) >= since
        indices = job.gpu_indices.get(node)
        # A job still running on the faulty GPU is hung on it (a lost GPU never answers again).
        on_gpu = job.state == "RUNNING" and gpu is not None and indices is not None and int(gpu) in indices
        if crashed or on_gpu:
            jobs.append(job)
    return jobs


def _gpu_lost(ctx: StepContext) -> str | None:
    if ctx.case.alertname in GPU_LOST_ALERTS:
        return f"{ctx.case.alertname}: the GPU is off the bus"
    if (ctx.case.labels or {}).get("xid") in GPU_LOST_XIDS:
        return "XID 79: the GPU fell off the bus"
    return None


def checkpoint(ctx: StepContext) -> Outcome:
    """Before the requeue kills the jobs still running on the faulty GPU: ask each to checkpoint
    (the policy's signal to its batch script), then wait, one evaluation at a time, until every
    mark newer than its request is seen or the class's checkpoint_timeout has passed. The requests
    are read back from the case's audit, so a later evaluation (or a restart) never asks twice."""
    timeout = ctx.alert_class.checkpoint_timeout
    jobs = [job for job in _affected_jobs(ctx) if job.state == "RUNNING"]
    if timeout <= 0:
        return Outcome(SKIPPED, f"checkpoint_timeout is 0 for class {ctx.alert_class.name}: no checkpoint asked")
    asked = _checkpoint_requests(ctx)
    running = {job.job_id for job in jobs}
    ended = [job_id for job_id, (_, took, _) in asked.items() if took and job_id not in running]
    if not jobs and ended:
        # USR1's default action ends a process: a batch script that does not trap it dies of it.
        return Outcome(DONE, f"job {', '.join(ended)} ended after the checkpoint request (a batch script that does "
                             f"not trap {ctx.policy.checkpoint_signal} is killed by it)",
                       actions=[("checkpoint", job_id, "ended after the request") for job_id in ended])
    if not jobs:
        return Outcome(SKIPPED, "no running job on the faulty GPU: nothing to checkpoint")
    names = ", ".join(job.job_id for job in jobs)
    lost = _gpu_lost(ctx)
    if lost:
        return Outcome(SKIPPED, f"{lost}: job {names} on it is dead and can write no checkpoint; not waiting",
                       actions=[("checkpoint", job.job_id, "skipped: GPU lost") for job in jobs])
    if ctx.query is None:
        return Outcome(NOT_DONE, "no query client configured: a checkpoint could not be seen landing, none asked",
                       actions=[("checkpoint", job.job_id, "not done: no query client") for job in jobs])
    unasked = [job for job in jobs if job.job_id not in asked]
    if unasked:
        return _ask_contract_jobs(ctx, unasked, timeout, waiting=[job for job in jobs if job.job_id in asked])
    return _wait_checkpoint(ctx, [job for job in jobs if asked[job.job_id][1]], asked, timeout)


def _ask_contract_jobs(ctx: StepContext, jobs: list[Job], timeout: float, waiting: list[Job]) -> Outcome:
    """Ask only the jobs that have written the contract's mark (at their start, then after each
    checkpoint): a batch script that does not trap the signal is killed by it (USR1's default
    action), which would turn a requeue into a lost job."""
    try:
        marked = queries.checkpoint_times(ctx.query, {job.job_id: job.nodes for job in jobs}, ctx.now)
    except (QueryError, OSError) as exc:
        # Who honours the contract cannot be known, nor a mark be seen landing: go on as without the step.
        return Outcome(DONE, f"checkpoint marks could not be read ({exc}): no job asked, going on",
                       actions=[("checkpoint", job.job_id, "not asked: marks unreadable") for job in jobs])
    strangers = [job for job in jobs if job.job_id not in marked]
    skipped = [("checkpoint", job.job_id, "skipped: no checkpoint mark, the job does not follow the contract")
               for job in strangers]
    contract = [job for job in jobs if job.job_id in marked]
    if not contract:
        if waiting:
            return Outcome(WAITING, "", actions=skipped)
        return Outcome(SKIPPED, f"job {', '.join(job.job_id for job in strangers)} never wrote a checkpoint mark: "
                                f"not signalled (a script that does not trap {ctx.policy.checkpoint_signal} dies "
                                "of it)", actions=skipped)
    outcome = _ask_checkpoint(ctx, contract, timeout)
    outcome.actions += skipped
    if strangers:
        outcome.detail += f"; job {', '.join(job.job_id for job in strangers)} not signalled: no checkpoint mark"
    return outcome


def _checkpoint_requests(ctx: StepContext) -> dict[str, tuple[float, bool, float]]:
    """Job id -> (when it was asked, whether the scheduler took the signal, when its wait began),
    from the audit. The wait began when it was asked, or when the clock went back after that: only
    a mark newer than the request answers it, but the timeout runs from the step back."""
    found: dict[str, tuple[float, bool, float]] = {}
    for entry in reversed(ctx.store.audit_entries(case_id=ctx.case.id)):  # oldest first
        if entry.action == CLOCK_WENT_BACK:
            found = {job_id: (asked, took, min(since, entry.time)) for job_id, (asked, took, since) in found.items()}
        elif entry.action == "signal" and entry.job_id and (entry.result == DONE or entry.result.startswith(FAILED)):
            found.setdefault(entry.job_id, (entry.time, entry.result == DONE, entry.time))
    return found


def _ask_checkpoint(ctx: StepContext, jobs: list[Job], timeout: float) -> Outcome:
    signal = ctx.policy.checkpoint_signal
    refusal = guards.check_rate(ctx.policy.guards, ctx.store, ctx.now)
    if refusal:
        return Outcome(WAITING, f"not done: {refusal}", actions=[("signal", job.job_id, f"not done: {refusal}")
                                                                 for job in jobs])
    outcome = Outcome(WAITING)
    said = []
    for job in jobs:
        argv = " ".join(["scancel", *scancel_args(job.job_id, signal)])
        if not ctx.execute:
            # Dry-run: nothing is sent, so nothing can land: say what would be, and go on.
            outcome.status = DONE
            outcome.actions.append(("signal", job.job_id, WOULD))
            said.append(f"would run {argv} and wait up to {timeout:.0f}s for job {job.job_id}'s checkpoint")
            continue
        ok, message = _scheduler_call(lambda: ctx.actions.signal(job.job_id, signal, ctx.actor,
                                                                 f"checkpoint before requeue, case {ctx.case.id}"))
        outcome.actions.append(("signal", job.job_id, DONE if ok else f"failed: {message}"))
        said.append(f"{argv}: " + (f"asked job {job.job_id} to checkpoint, waiting until "
                                   f"{_clock(ctx.now + timeout)} at most" if ok else f"failed: {message}"))
    outcome.detail = "; ".join(said)
    return outcome


def _wait_checkpoint(ctx: StepContext, jobs: list[Job], asked: dict[str, tuple[float, bool, float]],
                     timeout: float) -> Outcome:
    """``jobs``: those that took the signal (one the scheduler refused is not waited for)."""
    if not jobs:
        return Outcome(DONE, "no job took the checkpoint signal: nothing to wait for")
    note = ""
    try:
        marks = queries.checkpoint_times(ctx.query, {job.job_id: job.nodes for job in jobs}, ctx.now)
    except (QueryError, OSError) as exc:
        marks, note = {}, f" (checkpoint query failed: {exc})"
    landed = {job.job_id: marks[job.job_id] for job in jobs
              if marks.get(job.job_id, 0.0) >= asked[job.job_id][0] - CHECKPOINT_CLOCK_SLACK}
    pending = [job.job_id for job in jobs if job.job_id not in landed]
    deadline = min(asked[job.job_id][2] for job in jobs) + timeout
    if pending and ctx.now < deadline:
        return Outcome(WAITING, f"waiting for the checkpoint of job {', '.join(pending)} (asked at "
                                f"{_clock(min(asked[j][0] for j in pending))}), at most until {_clock(deadline)}"
                                + note, actions=[("checkpoint", job_id, WAITING) for job_id in pending])
    actions = [("checkpoint", job_id, f"landed at {_clock(at)}") for job_id, at in landed.items()]
    actions += [("checkpoint", job_id, "timed out") for job_id in pending]
    said = [f"job {job_id}'s checkpoint landed at {_clock(at)}, {max(0.0, at - asked[job_id][0]):.0f}s after "
            "the request" for job_id, at in landed.items()]
    if pending:
        said.append(f"no checkpoint from job {', '.join(pending)} within {timeout:.0f}s of the request: "
                    "going on without it" + note)
    return Outcome(DONE, "; ".join(said), actions=actions)


def requeue(ctx: StepContext) -> Outcome:
    jobs = _affected_jobs(ctx)
    if not jobs:
        return Outcome(SKIPPED, "no crashed or hung job on the node")
    refusal = guards.check_rate(ctx.policy.guards, ctx.store, ctx.now)
    if refusal:
        return Outcome(WAITING, f"not done: {refusal}", actions=[("requeue", j.job_id, f"not done: {refusal}")
                                                                 for j in jobs])
    outcome = Outcome(DONE)
    for job in jobs:
        if not ctx.execute:
            outcome.actions.append(("requeue", job.job_id, "would"))
            continue
        ok, message = _scheduler_call(lambda: ctx.actions.requeue(job.job_id, ctx.actor, ctx.case.alertname))
        outcome.actions.append(("requeue", job.job_id, "done" if ok else f"failed: {message}"))
    outcome.detail = ", ".join(f"{target} {result}" for _, target, result in outcome.actions)
    return outcome


def wait_idle(ctx: StepContext) -> Outcome:
    node = ctx.snapshot.node(ctx.case.node or "")
    if node is None:
        return Outcome(FAILED, f"node {ctx.case.node} is not in the scheduler's node list")
    if not ctx.execute:
        return Outcome(WAITING, "dry-run: would wait until no job runs on the node")
    if node.drained:
        return Outcome(DONE, f"node is {node.state} and drained")
    return Outcome(WAITING, f"node still {node.state}: waiting for its jobs to end")


def _already_restarted(ctx: StepContext) -> bool:
    # "interrupted": a crash between asking and recording; the scheduler may well have rebooted.
    return any(s.name in ("reboot", "reset") and s.status in (DONE, INTERRUPTED)
               for s in ctx.store.steps(ctx.case.id))


def _restart_held(ctx: StepContext, action: str, done_word: str, node: str) -> Outcome | None:
    """Why a reboot or reset must not run now (done already in this case, cooldown, rate), or None."""
    if _already_restarted(ctx):
        return Outcome(DONE, f"already {done_word} in this case: never repeated")
    refusal = _guarded(ctx, lambda: guards.check_cooldown(ctx.policy.guards, ctx.store, node, ctx.now),
                       lambda: guards.check_rate(ctx.policy.guards, ctx.store, ctx.now))
    if refusal:
        return Outcome(WAITING, f"not done: {refusal}", actions=[(action, node, f"not done: {refusal}")])
    return None


def reboot(ctx: StepContext) -> Outcome:
    node = ctx.case.node or ""
    held = _restart_held(ctx, "reboot", "rebooted", node)
    if held:
        return held
    reason = validate.reason(ctx.policy.reason_prefix, ctx.target, ctx.case.id, "reboot")
    ok, message = _scheduler_call(lambda: ctx.actions.reboot(node, reason, ctx.policy.reboot_next_state, ctx.actor,
                                                             asap=True))
    if not ok:
        return Outcome(REPAIR, f"reboot failed: {message}", actions=[("reboot", node, f"failed: {message}")])
    return Outcome(DONE, f"{reason} nextstate={ctx.policy.reboot_next_state}", actions=[("reboot", node, "done")])


def reset(ctx: StepContext) -> Outcome:
    node = ctx.case.node or ""
    held = _restart_held(ctx, "reset", "reset", node)
    if held:
        return held
    argv = command_argv(ctx.policy.commands[ctx.alert_class.command or ""], ctx.values())
    code, output = ctx.runner(argv, ctx.policy.guards.verify_timeout)
    if code != 0:
        return Outcome(REPAIR, f"{argv[0]} exited {code}: {output}", actions=[("reset", node, f"failed: exit {code}")])
    return Outcome(DONE, f"{' '.join(argv)}: exit 0", actions=[("reset", node, "done")])


def wait_return(ctx: StepContext) -> Outcome:
    """Back from the reboot: the scheduler shows it without reboot flags, out of service (DOWN,
    ``nextstate=DOWN``) until ``resume`` after verification."""
    node = ctx.snapshot.node(ctx.case.node or "")
    if node is not None and not any(node.has_flag(f) for f in REBOOTING_FLAGS):
        return Outcome(DONE, f"node back: {node.state} {'+'.join(node.state_flags)}".strip())
    if ctx.now - ctx.case.step_since > ctx.policy.guards.return_timeout:
        return Outcome(REPAIR, f"node did not come back from its reboot within "
                               f"{ctx.policy.guards.return_timeout:.0f}s")
    return Outcome(WAITING, "waiting for the node to come back from its reboot")


def verify(ctx: StepContext) -> Outcome:
    if ctx.query is None:
        return Outcome(REPAIR, "no query client configured: the node cannot be verified")
    ok, detail = queries.verify(ctx.query, ctx.policy.verify, ctx.values(), ctx.now)
    if ok:
        return Outcome(DONE, detail)
    if ctx.now - ctx.case.step_since > ctx.policy.guards.verify_timeout:
        return Outcome(REPAIR, f"verification failed for {ctx.policy.guards.verify_timeout:.0f}s: {detail}")
    return Outcome(WAITING, detail)


def resume(ctx: StepContext) -> Outcome:
    node = ctx.snapshot.node(ctx.case.node or "")
    if node is None:
        return Outcome(FAILED, f"node {ctx.case.node} is not in the scheduler's node list")
    if not node.drain and node.state != "DOWN":
        return Outcome(DONE, f"already in service ({node.state})")
    if not ctx.case.owned or not guards.owns_drain(ctx.policy.reason_prefix, node):
        return Outcome(SKIPPED, f"not resumed: drained by {node.reason_set_by or 'someone else'} ({node.reason})",
                       actions=[("resume", node.name, "not done: drained by someone else")])
    refusal = guards.check_rate(ctx.policy.guards, ctx.store, ctx.now)
    if refusal:
        return Outcome(WAITING, f"not done: {refusal}", actions=[("resume", node.name, f"not done: {refusal}")])
    ok, message = _scheduler_call(lambda: ctx.actions.resume(node.name, ctx.actor))
    return Outcome(DONE if ok else FAILED, message, actions=[("resume", node.name, "done" if ok else
                                                              f"failed: {message}")])


def _send(ctx: StepContext, kind: str, body: dict[str, Any]) -> Outcome:
    name = ctx.alert_class.receiver or "repair"
    receiver = ctx.policy.receivers.get(name)
    target = ctx.case.node or ctx.case.job_id or ""
    if receiver is None:
        return Outcome(NOT_DONE, f"no receiver {name!r} configured",
                       actions=[(kind, target, "not done: no receiver configured")])
    if not ctx.execute:
        return Outcome(DONE, f"would send to {name}", actions=[(kind, target, "would")])
    try:
        ctx.sender(receiver, body, f"clusterwatch-case-{ctx.case.id}-{kind}")
    except OutboundError as exc:
        return Outcome(FAILED, str(exc), actions=[(kind, target, f"failed: {exc}")])
    return Outcome(DONE, f"sent to {name}", actions=[(kind, target, "done")])


def _case_body(ctx: StepContext, kind: str, detail: str = "") -> dict[str, Any]:
    return {"kind": kind, "case": ctx.case.id, "class": ctx.case.alert_class, "alertname": ctx.case.alertname,
            "node": ctx.case.node, "gpu": ctx.case.gpu, "job_id": ctx.case.job_id, "labels": ctx.case.labels,
            "lemon": ctx.case.lemon, "detail": detail or ctx.case.detail, "evidence": ctx.case.evidence,
            "steps": [{"name": s.name, "status": s.status, "detail": s.detail, "at": s.started_at}
                      for s in ctx.store.steps(ctx.case.id)]}


def ticket(ctx: StepContext, detail: str = "") -> Outcome:
    return _send(ctx, "ticket", _case_body(ctx, "repair_ticket", detail))


def notify(ctx: StepContext) -> Outcome:
    body = _case_body(ctx, "notification")
    job = next((j for j in ctx.snapshot.jobs if j.job_id == ctx.case.job_id), None) if ctx.case.job_id else None
    if job is not None:
        body["job"] = {"job_id": job.job_id, "name": job.name, "user": job.user, "account": job.account,
                       "partition": job.partition, "state": job.state, "nodes": list(job.nodes), "gpus": job.gpus,
                       "start_time": job.start_time, "time_limit_seconds": job.time_limit_seconds}
    return _send(ctx, "notify", body)


def persist(ctx: StepContext) -> Outcome:
    need = ctx.alert_class.persist_evaluations
    if ctx.case.seen >= need:
        return Outcome(DONE, f"seen in {ctx.case.seen} evaluations (needs {need})")
    return Outcome(WAITING, f"seen in {ctx.case.seen} of {need} evaluations")


RUNNERS: dict[str, Callable[[StepContext], Outcome]] = {
    "evidence": evidence, "drain": drain, "checkpoint": checkpoint, "requeue": requeue, "wait_idle": wait_idle, "reboot": reboot,
    "reset": reset, "wait_return": wait_return, "verify": verify, "resume": resume, "ticket": ticket,
    "notify": notify, "persist": persist,
}
