"""The action API the automation and operator buttons call: drain, resume, requeue, reboot, signal.

Each call is validated against the last snapshot before anything runs, audited (who, why, what
the scheduler said), carried out by the backend as an argument vector or API request, and then
expires the poller's cache so the next read shows the effect instead of data up to a poll
interval old. Refusals raise ``ActionRefused``; a scheduler that says no is an ``ActionResult``
with ``ok=False``, because that answer is information the caller must record.
"""
from __future__ import annotations

import time
from typing import Callable

from scheduler import validation
from scheduler.actions_model import DRAIN, REBOOT, REQUEUE, RESUME, SIGNAL, Action
from scheduler.audit import DONE, FAILED, REFUSED, STARTED, AuditRecord, AuditSink, log_sink
from scheduler.backends.base import Backend
from scheduler.errors import ActionRefused, SchedulerError
from scheduler.model import ActionResult, SchedulerSnapshot


class ActionCounts:
    """Actions by kind and outcome, for the adapter's own metrics."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str], int] = {}

    def add(self, action: str, outcome: str) -> None:
        self.counts[(action, outcome)] = self.counts.get((action, outcome), 0) + 1


class Actions:
    def __init__(self, backend: Backend, snapshot: Callable[[], SchedulerSnapshot | None],
                 audit: AuditSink = log_sink, on_change: Callable[[], None] | None = None,
                 timeout: float = 30.0, wall_clock: Callable[[], float] = time.time) -> None:
        self.backend = backend
        self._snapshot = snapshot
        self._audit = audit
        self._on_change = on_change
        self.timeout = timeout
        self._wall_clock = wall_clock
        self.counts = ActionCounts()

    def drain(self, node: str, reason: str, actor: str) -> ActionResult:
        return self._run(DRAIN, node, actor, reason=reason)

    def resume(self, node: str, actor: str, reason: str = "") -> ActionResult:
        return self._run(RESUME, node, actor, reason=reason)

    def requeue(self, job_id: str | int, actor: str, reason: str = "") -> ActionResult:
        return self._run(REQUEUE, job_id, actor, reason=reason)

    def reboot(self, node: str, reason: str, next_state: str, actor: str, asap: bool = True) -> ActionResult:
        return self._run(REBOOT, node, actor, reason=reason, next_state=next_state, asap=asap)

    def signal(self, job_id: str | int, signal: str, actor: str, reason: str = "") -> ActionResult:
        """Send ``signal`` to the job's batch script only (``scancel --signal=USR1 --batch``): the
        checkpoint request of scheduler.checkpoint; the job keeps running."""
        return self._run(SIGNAL, job_id, actor, reason=reason, signal=signal)

    def _record(self, phase: str, action: Action, detail: str = "", command: tuple[str, ...] = ()) -> None:
        self._audit(AuditRecord(self._wall_clock(), phase, action.kind, action.target, action.actor,
                                action.reason, detail, command))

    def _run(self, kind: str, target: object, actor: object, **arguments: object) -> ActionResult:
        try:
            if kind not in self.backend.supported_actions:
                raise ActionRefused(f"the {self.backend.name} backend cannot {kind}")
            action = validation.validate(kind, target, actor, self._snapshot(), **arguments)  # type: ignore[arg-type]
        except ActionRefused as refusal:
            self.counts.add(kind, REFUSED)
            # The raw values go to the audit log cleaned, never verbatim: they are untrusted.
            self._audit(AuditRecord(
                self._wall_clock(), REFUSED, kind, validation.clean_text(target, 80),
                validation.clean_text(actor, validation.MAX_ACTOR) if actor is not None else "",
                validation.clean_text(arguments.get("reason") or "", validation.MAX_REASON), str(refusal)))
            raise
        self._record(STARTED, action)
        started = time.monotonic()
        try:
            answer = self.backend.execute(action, self.timeout)
        except SchedulerError as exc:
            self.counts.add(kind, FAILED)
            self._record(FAILED, action, str(exc))
            return ActionResult(kind, action.target, False, str(exc), action.actor, action.reason,
                                None, time.monotonic() - started)
        outcome = DONE if answer.ok else FAILED
        self.counts.add(kind, outcome)
        self._record(outcome, action, answer.message, answer.command)
        if answer.ok and self._on_change is not None:
            self._on_change()
        return ActionResult(kind, action.target, answer.ok, answer.message, action.actor, action.reason,
                            answer.returncode, time.monotonic() - started, answer.command)
