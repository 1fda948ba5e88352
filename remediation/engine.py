"""The remediation engine: alerts in, cases out, ladders walked one evaluation at a time.

Alerts arrive as the notification pipeline's hook (``handle``) or directly (``receive``). Each
firing alert of a policy class opens a case (one open case per node: a second alert about a node
joins the case already working on it), validated against the scheduler's node list before
anything else. ``evaluate`` then advances every open case as far as it can go: a step that must
wait (jobs still running, a guard saying not now, a node still rebooting) keeps the case where it
is until the next evaluation. Every step is recorded before and after it runs, every decision is
an audit record, and ``recover`` (run at start) settles steps that a crash interrupted.

Modes: ``auto`` acts per class (``auto``, ``approve``: wait for an operator, ``off``); ``dry-run``
walks the same decisions with the same guards and records them as "would", acting on nothing.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable, Iterable, Protocol

from alerts.model import Alert
from cwkernel.loopwatch import LoopWatch
from remediation import guards, steps, validate
from remediation.ladder import (CLOSED, DONE, FAILED, INCOMPLETE, INTERRUPTED, NOT_DONE, OPEN, PENDING_APPROVAL,
                                PLANNED, REJECTED, REPAIR, RESOLVED, SKIPPED, STEPS, WAITING, WOULD)
from remediation.outbound import Runner, Sender, run_command, send_webhook
from remediation.policy import AlertClass, Policy
from remediation.store import AuditEntry, AuditUnavailable, Case, RemediationStore
from remediation.suppress import SETTLE_SECONDS, Suppressor
from scheduler.model import SchedulerSnapshot

log = logging.getLogger(__name__)

NODE_STEPS = frozenset({"drain", "checkpoint", "requeue", "wait_idle", "reboot", "reset", "wait_return", "verify", "resume"})
# Steps a dry-run may walk through (they decide, or only read); it stops before the others.
DRY_RUN_STEPS = frozenset({"evidence", "drain", "checkpoint", "requeue", "ticket", "notify", "persist"})
MAX_FAILURES = 3
MAX_STEPS_PER_EVALUATION = 32
RESTARTING_STEPS = frozenset({"reboot", "reset"})
# Alert firings already given their intake audit line (a repeat notification adds none); bounded,
# oldest forgotten first, so an alert storm cannot grow it without limit.
INTAKE_MEMORY = 50_000


class Scheduler(Protocol):
    actions: steps.SchedulerActions

    def snapshot(self) -> SchedulerSnapshot | None: ...

    def refresh(self, wait: bool = False) -> Any: ...


class CaseError(Exception):
    """An approval or rejection that does not apply (unknown case, not pending)."""


class RemediationEngine:
    def __init__(self, policy: Policy, scheduler: Scheduler, store: RemediationStore, query: Any | None = None,
                 mode: str | None = None, clock: Callable[[], float] = time.time, sender: Sender = send_webhook,
                 runner: Runner = run_command, suppressor: Suppressor | None = None) -> None:
        self.policy = policy
        self.mode = mode or policy.mode
        self.scheduler = scheduler
        self.store = store
        self.query = query
        self.clock = clock
        self.sender = sender
        self.runner = runner
        self.suppressor = suppressor
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.loops = LoopWatch()
        # Loop health for /metrics: missing data is never healthy.
        self.evaluations = 0
        self.evaluation_errors = 0
        self.last_success: float | None = None
        self.last_duration = 0.0
        self.last_snapshot: SchedulerSnapshot | None = None
        self._unseen_drains: set[str] = set()  # drained since the current snapshot was taken
        self._audited_firings: dict[tuple[str, float, str], None] = {}  # (fingerprint, startsAt, status)

    # ---- intake -----------------------------------------------------------------------------

    def handle(self, notification: Any) -> None:
        """The pipeline's hook (``alerts.notify.integrations.hook.Notification``)."""
        self.receive(notification.alerts)

    def receive(self, alerts: Iterable[Alert]) -> None:
        if self.mode == "off":
            return
        with self._lock:
            snapshot = self._snapshot()
            for alert in alerts:
                self._intake(alert, snapshot)
            self._advance_all(snapshot)

    def _intake(self, alert: Alert, snapshot: SchedulerSnapshot | None) -> None:
        """Open, join or update a case for one alert. Every alert handed to the engine leaves an
        audit line the first time it is seen in a state (firing, resolved), whatever comes of it:
        opened a case, joined one, was refused, or no class handles it."""
        now = self.clock()
        labels = dict(alert.labels)
        name = labels.get("alertname", "?")[:64]
        first_sight = self._first_sight(alert)
        alert_class = self.policy.classify(labels)
        if alert_class is None:
            if first_sight and alert.status == "firing":
                self._audit(now, None, name, "intake", "not handled: no class for this alert",
                            _describe(labels), node=_label(labels, "instance"), actor="policy")
            return
        node_scoped = bool(NODE_STEPS & set(alert_class.ladder))
        try:
            target = validate.target(labels, snapshot, needs_node=node_scoped)
        except validate.LabelError as exc:
            if first_sight:
                self._audit(now, None, name, "intake", "refused", str(exc), node=None,
                            actor=f"policy:{alert_class.name}")
            return
        key = f"node:{target.node}" if node_scoped else f"{alert_class.name}:{target.job_id or alert.fingerprint}"
        case = self.store.open_case(key)
        if alert.status == "resolved":
            if case is not None and case.alertname == target.alertname:
                self._alert_resolved(case, now)
            return
        if case is None:
            handled = self._already_handled(key, target.alertname, alert.starts_at)
            if handled is None:
                self._open(alert_class, target, labels, key, now)
            elif first_sight:
                self._audit(now, handled, target.alertname, "intake", "already handled",
                            f"the same firing as case {handled.id} ({handled.state}: {handled.detail})"[:1000])
            return
        if case.alertname != target.alertname:
            if first_sight:
                self._audit(now, case, target.alertname, "intake", "joined", f"case {case.id} already works on "
                            f"{target.node or target.job_id} for {case.alertname}")
        elif not case.alert_active:
            self.store.update_case(case.id, now, alert_active=True)

    def _first_sight(self, alert: Alert) -> bool:
        """Whether this firing (or its resolution) reaches the engine for the first time: repeat
        notifications of it add no audit lines."""
        key = (alert.fingerprint, alert.starts_at, alert.status)
        if key in self._audited_firings:
            return False
        self._audited_firings[key] = None
        if len(self._audited_firings) > INTAKE_MEMORY:
            del self._audited_firings[next(iter(self._audited_firings))]
        return True

    def _already_handled(self, key: str, alertname: str, starts_at: float) -> Case | None:
        """The finished case that handled this same firing (kept drained for repair, resolved,
        handed over), if any: an XID alert fires for an hour after the reboot that fixed it, and a
        node in repair stays alerting until it is replaced; neither is a new fault."""
        last = self.store.last_closed_case(key, alertname)
        return last if last is not None and last.closed_at is not None and starts_at <= last.closed_at else None

    def _open(self, alert_class: AlertClass, target: validate.Target, labels: dict[str, str], key: str,
              now: float) -> None:
        actor = f"policy:{alert_class.name}"
        if alert_class.mode == "off":  # in dry-run too: a dry-run shows what auto would do
            self._audit(now, None, target.alertname, "case", "not done: class is off", node=target.node,
                        job_id=target.job_id, actor=actor)
            return
        lemon = target.node is not None and guards.is_lemon(self.policy.guards, self.store, target.node, now)
        ladder = alert_class.ladder
        if lemon:
            # Failed again soon after ClusterWatch returned it: no second round of reboots.
            ladder = tuple(s for s in ("evidence", "drain", "checkpoint", "requeue", "ticket"))
        state = PLANNED if self.mode == "dry-run" else PENDING_APPROVAL if alert_class.mode == "approve" else OPEN
        case = self.store.create_case(key, alert_class.name, target.alertname, target.node, target.gpu,
                                      target.job_id, labels, self.mode, state, ladder, now, lemon=lemon)
        result = {PLANNED: "planned (dry-run)", PENDING_APPROVAL: "proposed: waiting for approval",
                  OPEN: "opened"}[state]
        if state == PLANNED and alert_class.mode == "approve":
            result = "planned (dry-run): would be proposed and wait for approval"
        self._audit(now, case, target.alertname, "case", result + (": lemon node, kept drained for repair"
                                                                   if lemon else ""), " -> ".join(ladder))

    def _alert_resolved(self, case: Case, now: float) -> None:
        self.store.update_case(case.id, now, alert_active=False)
        acted = any(s.status == DONE and s.name in steps.RUNNERS and s.name != "persist" and s.name != "evidence"
                    for s in self.store.steps(case.id))
        if case.state in (PENDING_APPROVAL, PLANNED) or not acted:
            self._close(case, CLOSED, now, "alert resolved before anything was done" if not acted
                        else "alert resolved")

    # ---- operators --------------------------------------------------------------------------

    def approve(self, case_id: int, operator: str) -> Case:
        return self._decide(case_id, operator, approve=True)

    def reject(self, case_id: int, operator: str) -> Case:
        return self._decide(case_id, operator, approve=False)

    def _decide(self, case_id: int, operator: str, approve: bool) -> Case:
        with self._lock:
            case = self.store.case(case_id)
            if case is None:
                raise CaseError(f"no case {case_id}")
            if case.state != PENDING_APPROVAL:
                raise CaseError(f"case {case_id} is {case.state}, not waiting for approval")
            now = self.clock()
            actor = f"operator:{operator}"
            if approve:
                self.store.update_case(case.id, now, state=OPEN, approved_by=operator)
                self._audit(now, case, case.alertname, "approve", "approved", actor=actor)
                self._advance_all(self._snapshot())
            else:
                self._audit(now, case, case.alertname, "reject", "rejected", actor=actor)
                self._close(case, REJECTED, now, f"rejected by {operator}")
            return self.store.case(case_id)  # type: ignore[return-value]

    # ---- evaluation -------------------------------------------------------------------------

    def evaluate(self) -> None:
        """One evaluation: count persisting alerts, advance every open case."""
        started = time.monotonic()
        with self._lock:
            try:
                snapshot = self._snapshot()
                now = self.clock()
                for case in self.store.open_cases():
                    if case.alert_active:
                        self.store.update_case(case.id, now, seen=case.seen + 1)
                self._advance_all(snapshot)
                self.last_success = now
            except AuditUnavailable as exc:
                # A known, reported state (the store's health hook says remediation_paused), not
                # a bug: one line per evaluation, no traceback.
                self.evaluation_errors += 1
                log.warning("remediation paused: %s", exc)
                raise
            except Exception:
                self.evaluation_errors += 1
                log.exception("remediation evaluation failed")
                raise
            finally:
                self.evaluations += 1
                self.last_duration = time.monotonic() - started

    def recover(self) -> None:
        """Settle steps a crash left "started": repeat what is safe to repeat, roll the rest
        forward (a reboot, a reset command or a webhook that may have happened is never redone)."""
        with self._lock:
            now = self.clock()
            for case in self.store.open_cases():
                name = case.current_step
                unfinished = self.store.unfinished_step(case.id, case.step) if name else None
                if unfinished is None:
                    continue
                if STEPS[name].repeat_safe:
                    self.store.step_ended(unfinished.id, FAILED, "interrupted by a restart: done again", now)
                    self._audit(now, case, case.alertname, name, "interrupted: will be done again")
                else:
                    self.store.step_ended(unfinished.id, INTERRUPTED, "interrupted by a restart: not repeated", now)
                    self.store.update_case(case.id, now, step=case.step + 1)
                    self._audit(now, case, case.alertname, name, "interrupted: rolled forward, not repeated")

    def _fresh_snapshot(self) -> SchedulerSnapshot | None:
        poller = getattr(self.scheduler, "poller", None)
        if poller is not None:
            poller.expire()
        return self._snapshot()

    def _snapshot(self) -> SchedulerSnapshot | None:
        try:
            self.scheduler.refresh(wait=True)
        except Exception:  # noqa: BLE001 - a failed poll keeps the last snapshot; the steps see its age
            log.exception("scheduler refresh failed")
        snapshot = self.scheduler.snapshot()
        if snapshot is not self.last_snapshot:
            self._unseen_drains.clear()  # a poll after those drains: the snapshot shows them now
        self.last_snapshot = snapshot
        return snapshot

    def _advance_all(self, snapshot: SchedulerSnapshot | None) -> None:
        if snapshot is None:
            return
        cases = self.store.open_cases()
        self._restart_waits_ahead_of_clock(cases, self.clock())
        for case in cases:
            if case.state in (OPEN, PLANNED):
                self._advance(case.id, snapshot)  # read afresh: an earlier case's steps may change it

    def _restart_waits_ahead_of_clock(self, cases: list[Case], now: float) -> None:
        """A case whose step began after ``now``: the clock went back (a VM restored from a
        snapshot, NTP stepping at boot). Its waits (a node's return, a verification, a checkpoint)
        are measured from when the step began, so they would last the step back longer: they
        restart from now, and the case's audit says so (the checkpoint step reads it there)."""
        for case in cases:
            if case.step_since > now:
                self.store.update_case(case.id, now, step_since=now)
                self._audit(now, case, case.alertname, steps.CLOCK_WENT_BACK,
                            f"the clock is {case.step_since - now:.0f}s behind the start of step "
                            f"{case.current_step or '-'}: its waits restart from now")

    def _not_yet_shown(self) -> frozenset[str]:
        """Nodes the budget counts although the scheduler's snapshot does not show them out of
        service: drained since the snapshot was taken, or, in dry-run, drains that would have been
        made. Anything else counts as the scheduler says: a node of an open case that is back in
        service (resumed by someone, or never drained) takes nothing from the budget."""
        would = frozenset(c.node for c in self.store.open_cases() if c.state == PLANNED and c.owned and c.node)
        return would | self._unseen_drains

    def _advance(self, case_id: int, snapshot: SchedulerSnapshot) -> None:
        execute = self.mode == "auto"
        case = self.store.case(case_id)
        if case is not None and case.state == PLANNED and self._needs_approval(case):
            return  # auto would wait for an operator here: dry-run walks none of its steps either
        for _ in range(MAX_STEPS_PER_EVALUATION):
            case = self.store.case(case_id)
            if case is None or case.state not in (OPEN, PLANNED):
                return
            name = case.current_step
            if name is None:
                self._finish(case)
                return
            if not execute and name not in DRY_RUN_STEPS:
                if not any(s.name == name and s.status == WOULD for s in self.store.steps(case.id)):
                    rest = " -> ".join(case.ladder[case.step:])
                    self._audit(self.clock(), case, case.alertname, name, f"would: {rest}")
                    self.store.step_ended(self.store.step_started(case.id, case.step, name, "dry-run",
                                                                  self.clock()), WOULD, rest, self.clock())
                return
            if execute and name in ("drain", "resume"):
                # Never act on a view older than the action: an operator may have drained the node
                # since the last poll, and a drain over theirs would take their reason away.
                snapshot = self._fresh_snapshot() or snapshot
            outcome = self._run_step(case, name, snapshot, execute)
            if outcome.status == WAITING:
                return
            if outcome.status == FAILED:
                failures = sum(1 for s in self.store.steps(case.id) if s.position == case.step and s.status == FAILED)
                if failures >= MAX_FAILURES:
                    self._to_repair(case, snapshot, f"{name} failed {failures} times: {outcome.detail}")
                return
            if outcome.status == steps.REPAIR:
                self._to_repair(case, snapshot, outcome.detail)
                return
            self.store.update_case(case.id, self.clock(), step=case.step + 1)
            if execute and name in RESTARTING_STEPS and outcome.status == DONE:
                self._hold_expected_alerts(case, name)
                return  # this evaluation's snapshot predates the reboot: watch it from the next one
            if name in ("wait_return", "verify") and outcome.status == DONE:
                self._lift_expected_alerts(case, self.clock() + SETTLE_SECONDS)
            if name == "drain" and outcome.status == SKIPPED:
                # Someone else's drain: ClusterWatch never reboots or resumes a node it does not own.
                self._hand_over(case, outcome.detail)
                return

    def _needs_approval(self, case: Case) -> bool:
        alert_class = next((c for c in self.policy.classes if c.name == case.alert_class), None)
        return alert_class is not None and alert_class.mode == "approve" and not case.approved_by

    def _actor(self, case: Case, alert_class: AlertClass | None) -> str:
        if case.approved_by:
            return validate.validation.clean_text(f"operator:{case.approved_by}", 64)
        return f"policy:{alert_class.name if alert_class else case.alert_class}"

    def _context(self, case: Case, snapshot: SchedulerSnapshot, execute: bool) -> steps.StepContext:
        alert_class = next((c for c in self.policy.classes if c.name == case.alert_class), None)
        if alert_class is None:
            # A case opened under an older policy whose class is gone: finish it with neutral settings.
            alert_class = AlertClass(case.alert_class, frozenset(), {}, case.ladder, "auto")
        return steps.StepContext(
            policy=self.policy, alert_class=alert_class, case=case, snapshot=snapshot, store=self.store,
            now=self.clock(), actor=self._actor(case, alert_class), execute=execute,
            would_drain=self._not_yet_shown(), actions=self.scheduler.actions,
            query=self.query, sender=self.sender, runner=self.runner)

    def _run_step(self, case: Case, name: str, snapshot: SchedulerSnapshot, execute: bool,
                  runner: Callable[[steps.StepContext], steps.Outcome] | None = None) -> steps.Outcome:
        ctx = self._context(case, snapshot, execute)
        step_id = self.store.step_started(case.id, case.step, name, ctx.actor, ctx.now)
        try:
            outcome = (runner or steps.RUNNERS[name])(ctx)
        except Exception as exc:  # noqa: BLE001 - a broken step fails its case, not the engine
            log.exception("step %s of case %s failed", name, case.id)
            outcome = steps.Outcome(FAILED, f"{type(exc).__name__}: {exc}")
        now = self.clock()
        if outcome.updates:
            self.store.update_case(case.id, now, **outcome.updates)
        self._unseen_drains.update(target for action, target, result in outcome.actions
                                   if action == "drain" and result in (DONE, WOULD))
        previous = self.store.steps(case.id)
        repeat_wait = outcome.status == WAITING and len(previous) >= 2 and previous[-2].position == case.step \
            and previous[-2].status == WAITING and previous[-2].detail == outcome.detail
        if repeat_wait:
            # The same wait as last time: one record per change keeps the trail readable.
            self.store.step_ended(previous[-2].id, WAITING, outcome.detail, now)
            self.store.delete_step(step_id)
        else:
            self.store.step_ended(step_id, outcome.status, outcome.detail, now)
            for action, target, result in outcome.actions or [(name, None, outcome.status)]:
                # A job action names its job; without one (skipped: no job) the case's, never the node.
                job = target if action in steps.JOB_ACTIONS and target is not None else case.job_id
                self._audit(now, case, case.alertname, action, result, outcome.detail, node=case.node, job_id=job,
                            actor=ctx.actor)
        return outcome

    def _to_repair(self, case: Case, snapshot: SchedulerSnapshot, detail: str) -> None:
        """Stop the ladder: make sure the node stays out of service, open a ticket."""
        case = self.store.case(case.id)  # type: ignore[assignment]
        execute = self.mode == "auto"
        if case.node and "drain" in case.ladder:
            node = snapshot.node(case.node)
            if node is not None and not node.drain:
                self._run_step(case, "drain", snapshot, execute,
                               lambda ctx: steps.drain(ctx, "repair", budgeted=False))
        case = self.store.case(case.id)  # type: ignore[assignment]
        self.store.update_case(case.id, self.clock(), detail=detail)
        self._run_step(self.store.case(case.id), "ticket", snapshot, execute,  # type: ignore[arg-type]
                       lambda ctx: steps.ticket(ctx, detail))
        self._close(case, REPAIR, self.clock(), detail)

    def _hand_over(self, case: Case, detail: str) -> None:
        self._close(case, CLOSED, self.clock(), f"left to whoever drained the node: {detail}")

    def _finish(self, case: Case) -> None:
        if case.state == PLANNED:
            return  # dry-run: stays planned (its would-be drain counts in the budget) until the alert resolves
        records = self.store.steps(case.id)
        done = {s.name for s in records if s.status == DONE}
        not_done = "; ".join(f"{s.name} not done: {s.detail}" for s in records if s.status == NOT_DONE)
        kept_drained = case.owned and "resume" not in done and case.node is not None
        if kept_drained or case.lemon:
            self._close(case, REPAIR, self.clock(), "kept drained for repair" + (f" ({not_done})" if not_done else ""))
        elif not_done:
            # A ladder whose step could not act has not done its job: say so, never "complete".
            self._close(case, INCOMPLETE, self.clock(), f"ladder ended, but {not_done}")
        else:
            self._close(case, RESOLVED, self.clock(), "ladder complete")

    def _close(self, case: Case, state: str, now: float, detail: str) -> None:
        self.store.update_case(case.id, now, state=state, closed_at=now, detail=detail)
        self._audit(now, case, case.alertname, "case", state, detail)
        # Back and verified: let the node's scrapes settle; anything else: the alerts page at once.
        self._lift_expected_alerts(case, now + SETTLE_SECONDS if state == RESOLVED else now)

    def _hold_expected_alerts(self, case: Case, step: str) -> None:
        """Silence, on the case's node, the alerts the reboot or reset just issued will cause, until
        the node should have been back; visible (and expirable) on the alerts page."""
        alertnames = self.policy.expected_alerts.get(step, ())
        if self.suppressor is None or not case.node or not alertnames:
            return
        now = self.clock()
        until = now + self.policy.guards.return_timeout
        why = (f"ClusterWatch {'rebooted' if step == 'reboot' else 'reset a GPU of'} {case.node} "
               f"({case.alertname}); alerts the {step} causes are held until it is back, at most "
               f"{self.policy.guards.return_timeout:.0f}s")
        self.suppressor.hold(case.id, case.node, alertnames, until, why)
        self._audit(now, case, case.alertname, "suppress", "done", f"{', '.join(alertnames)} on {case.node} "
                    f"held until {time.strftime('%H:%M:%S', time.gmtime(until))} UTC (silence by ClusterWatch)")

    def _lift_expected_alerts(self, case: Case, at: float) -> None:
        if self.suppressor is not None:
            self.suppressor.lift(case.id, at)

    def _audit(self, now: float, case: Case | None, alert: str, action: str, result: str, detail: str = "",
               node: str | None = None, job_id: str | None = None, actor: str | None = None) -> None:
        self.store.audit(AuditEntry(
            time=now, alert=alert, action=action, mode=self.mode, actor=actor or (self._actor(case, None) if case
                                                                               else "policy"),
            result=result, node=node if node is not None else (case.node if case else None),
            job_id=job_id if job_id is not None else (case.job_id if case else None),
            case_id=case.id if case else None, detail=detail[:1000]))

    # ---- loop -------------------------------------------------------------------------------

    def start(self) -> None:
        self.recover()

        interval = self.policy.evaluation_interval

        def loop() -> None:
            while True:
                # A step's commands and calls end by their timeouts (minutes at most): a quarter of
                # an hour past three intervals is an evaluation wedged.
                self.loops.tick("remediation", 3 * interval + 900)
                if self._stop.wait(interval):
                    return
                try:
                    self.evaluate()
                except Exception:  # noqa: BLE001 - logged and counted in evaluate; keep evaluating
                    pass

        self._thread = threading.Thread(target=loop, name="remediation", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=10)
        self.loops.stopped()

    def budget(self) -> guards.Budget | None:
        snapshot = self.last_snapshot or self.scheduler.snapshot()
        return guards.budget(self.policy.guards, snapshot, extra=self._not_yet_shown()) if snapshot else None


def _label(labels: dict[str, str], name: str) -> str | None:
    value = labels.get(name)
    return validate.validation.clean_text(value, 64) if value else None


def _describe(labels: dict[str, str]) -> str:
    """The alert's identifying labels, cleaned and short, for an audit line."""
    shown = ("instance", "gpu", "job_id", "action", "severity")
    return ", ".join(f"{k}={validate.validation.clean_text(labels[k], 64)}" for k in shown if labels.get(k))
