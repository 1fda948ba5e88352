"""The steps a ladder can be made of, as data: what each one is and how a restart treats it.

A ladder is an ordered list of step names from the policy file; the engine walks it one step at
a time and records every step in SQLite before and after it runs. ``repeat_safe`` is what a
restart needs to know about a step found "started" but never finished: a drain or a resume can be
checked against the scheduler and done again, while a reboot, a reset command or a webhook may
already have happened, so those roll forward instead of running twice.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StepKind:
    name: str
    repeat_safe: bool  # may run again after a crash between "started" and "done"
    scheduler_action: bool  # counts against the rate limit and needs a validated node
    description: str


STEPS: dict[str, StepKind] = {s.name: s for s in (
    StepKind("evidence", True, False, "query GPU identity, XID history and the GPU's metric values"),
    StepKind("drain", True, True, "drain the node with a reason that starts with the policy's prefix"),
    StepKind("checkpoint", True, True, "ask the running jobs the requeue would kill to checkpoint (scancel "
                                       "--signal=USR1 --batch) and wait for their mark, at most checkpoint_timeout"),
    StepKind("requeue", False, True, "requeue the jobs on the node that crashed on (or hold) the faulty GPU"),
    StepKind("wait_idle", True, False, "wait until no job runs on the drained node"),
    StepKind("reboot", False, True, "scontrol reboot ASAP nextstate=RESUME|DOWN"),
    StepKind("reset", False, True, "run the configured reset/health-check command (argument vector)"),
    StepKind("wait_return", True, False, "wait until the node is back from its reboot"),
    StepKind("verify", True, False, "PromQL checks: the alert resolved and the GPU answers again"),
    StepKind("resume", True, True, "resume the node, only if ClusterWatch's reason is still on it"),
    StepKind("ticket", False, False, "open a repair ticket (webhook with the evidence); keep the node drained"),
    StepKind("notify", False, False, "send the case to the class's receiver (fabric team, job owner)"),
    StepKind("persist", True, False, "wait until the alert has been seen in N evaluations"),
)}

# Steps that change a node's service state: a case in dry-run or awaiting approval stops before them.
ACTING = frozenset({"drain", "checkpoint", "requeue", "reboot", "reset", "resume", "ticket", "notify"})

# Case states.
PENDING_APPROVAL = "pending_approval"
OPEN = "open"
RESOLVED = "resolved"  # node verified and back in service (or nothing left to do)
REPAIR = "repair"  # kept drained, ticket opened
REJECTED = "rejected"
PLANNED = "planned"  # dry-run: decisions recorded, nothing executed
CLOSED = "closed"  # the alert went away before anything had to be done
INCOMPLETE = "incomplete"  # the ladder ended, but a step could not act (e.g. no receiver configured)
OPEN_STATES = frozenset({PENDING_APPROVAL, OPEN, PLANNED})

# Step results.
DONE, FAILED, WAITING, SKIPPED, STARTED, WOULD = "done", "failed", "waiting", "skipped", "started", "would"
INTERRUPTED = "interrupted"  # found "started" after a restart; not repeated
NOT_DONE = "not done"  # the step could not act (nothing configured to act with); the ladder goes on
