"""The guards a disruptive step must pass, each a small function over the scheduler's snapshot
and the case store, returning ``None`` (go) or the reason it may not happen now.

Budget counts nodes drained or down by anyone, because an operator's maintenance and a
ClusterWatch drain take capacity away alike; rate and cooldown count ClusterWatch's own steps.
A refusal is not a failure: the step waits and is tried again at the next evaluation, and the
refusal is an audit record ("not done: budget exhausted").
"""
from __future__ import annotations

from dataclasses import dataclass

from remediation.ladder import RESOLVED
from remediation.policy import Guards
from remediation.store import RemediationStore
from scheduler.model import Node, SchedulerSnapshot

HOUR = 3600.0
# "signal": the checkpoint step's request to a job (the audit's action name for it).
RATE_LIMITED_STEPS = ("drain", "signal", "requeue", "reboot", "reset", "resume")
RESTARTING_STEPS = ("reboot", "reset")


def out_of_service(node: Node) -> bool:
    return node.drain or node.state in ("DOWN", "FUTURE") or node.has_flag("REBOOT_ISSUED")


@dataclass(frozen=True)
class Budget:
    """Nodes that may still be drained: overall, and the tightest of the node's partitions."""

    drained: int
    remaining: int
    detail: str


def budget(guards: Guards, snapshot: SchedulerSnapshot, node: str | None = None,
           extra: frozenset[str] = frozenset()) -> Budget:
    """``extra``: nodes to count as drained although the scheduler does not show them so (a
    dry-run's would-be drains), so that dry-run decides as auto would."""
    out = {n.name for n in snapshot.nodes if out_of_service(n)} | (extra & set(snapshot.nodes_by_name))
    remaining = guards.max_drained_nodes - len(out)
    detail = f"{len(out)} of {len(snapshot.nodes)} nodes out of service, at most {guards.max_drained_nodes}"
    target = snapshot.node(node) if node else None
    for partition in (target.partitions if target else ()):
        members = [n for n in snapshot.nodes if partition in n.partitions]
        # A partition smaller than 100/percent nodes would round to 0 and could never drain a
        # failing node; one node out at a time is always allowed (the node-count budget still holds).
        allowed = max(1, int(len(members) * guards.max_drained_percent / 100)) if guards.max_drained_percent > 0 else 0
        drained = sum(1 for n in members if n.name in out)
        if allowed - drained < remaining:
            remaining = allowed - drained
            detail = (f"partition {partition}: {drained} of {len(members)} nodes out of service, "
                      f"at most {guards.max_drained_percent:g}% = {allowed}")
    return Budget(len(out), remaining, detail)


def check_budget(guards: Guards, snapshot: SchedulerSnapshot, node: str,
                 extra: frozenset[str] = frozenset()) -> str | None:
    current = snapshot.node(node)
    if current is not None and out_of_service(current) or node in extra:
        return None  # already out of service: draining it again takes nothing more
    result = budget(guards, snapshot, node, extra)
    return None if result.remaining >= 1 else f"budget exhausted: {result.detail}"


def check_rate(guards: Guards, store: RemediationStore, now: float) -> str | None:
    used = store.actions_since(now - HOUR, RATE_LIMITED_STEPS)
    if used >= guards.actions_per_hour:
        return f"rate limit: {used} actions in the last hour, at most {guards.actions_per_hour}"
    return None


def check_cooldown(guards: Guards, store: RemediationStore, node: str, now: float) -> str | None:
    last = store.last_action_time(node, RESTARTING_STEPS)
    if last is not None and now - last < guards.node_cooldown:
        return f"cooldown: {node} was rebooted or reset {now - last:.0f}s ago, wait {guards.node_cooldown:.0f}s"
    return None


def is_lemon(guards: Guards, store: RemediationStore, node: str, now: float) -> bool:
    """The node failed again within the lemon window after ClusterWatch returned it to service."""
    last = store.last_case_on_node(node, (RESOLVED,))
    return last is not None and last.owned and last.closed_at is not None \
        and now - last.closed_at < guards.lemon_window


def owns_drain(prefix: str, node: Node) -> bool:
    """ClusterWatch wrote this node's reason: the only drains it may undo."""
    return node.reason.startswith(prefix + " ") or node.reason == prefix
