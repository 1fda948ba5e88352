"""Checks every action argument before anything reaches the scheduler.

Arguments come from alert labels, policy files and operator forms, so they are untrusted. No
shell is ever used (argument vectors only), yet a value can still do harm inside an argument:
``scontrol update NodeName=X`` answers success for a node that does not exist, a hostlist such as
``gpu-[001-999]`` would act on a whole cluster, and a reason with newlines or control characters
would corrupt logs and the scheduler's state file. Hence: one node that the last poll saw, one job
id, reasons cleaned to short printable text, next states and signals from allow-lists.
"""
from __future__ import annotations

import re
import unicodedata

from scheduler.actions_model import DRAIN, REBOOT, REQUEUE, RESUME, SIGNAL, Action
from scheduler.checkpoint import SIGNALS, signal_name
from scheduler.errors import ActionRefused
from scheduler.model import SchedulerSnapshot

MAX_REASON = 128
MAX_ACTOR = 64
# Slurm's own node-name characters; brackets and commas (hostlists) are deliberately absent.
# Always applied with fullmatch: re.match with "$" also accepts a trailing newline ("gpu-001\n").
_NODE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
JOB_ID_PATTERN = r"[1-9][0-9]{0,9}(?:_[0-9]{1,7})?"  # a job (1234) or an array task (1234_5)
_JOB_ID = re.compile(JOB_ID_PATTERN)
# Characters that mean something to shells, to scontrol's own parser or to log readers; replaced
# by a space so the words around them stay readable.
_UNSAFE = set("\"'`\\$;|&<>(){}[]*?!#~\t")
NEXT_STATES = frozenset({"RESUME", "DOWN"})


def is_node_name(value: object) -> bool:
    """One node name in Slurm's characters, nothing before or after (no hostlist, no newline)."""
    return isinstance(value, str) and _NODE_NAME.fullmatch(value) is not None


def is_job_id(value: object) -> bool:
    """A job id (1234) or array task (1234_5), nothing before or after."""
    return isinstance(value, str) and _JOB_ID.fullmatch(value) is not None


def clean_text(value: object, limit: int) -> str:
    """Printable ASCII without quoting or shell metacharacters, spaces collapsed, cut to limit."""
    normalised = unicodedata.normalize("NFKC", str(value))
    kept = []
    for char in normalised:
        if char in _UNSAFE or not char.isprintable() or not char.isascii():
            kept.append(" ")
        else:
            kept.append(char)
    return " ".join("".join(kept).split())[:limit].strip()


def clean_actor(actor: object) -> str:
    cleaned = clean_text(actor, MAX_ACTOR) if actor is not None else ""
    if not cleaned:
        raise ActionRefused("every action needs an actor (who asked)")
    return cleaned


def clean_reason(reason: object, required: bool) -> str:
    cleaned = clean_text(reason, MAX_REASON) if reason is not None else ""
    if required and not cleaned:
        raise ActionRefused("a reason is required (printable text after cleaning)")
    return cleaned


def check_node(node: object, snapshot: SchedulerSnapshot | None) -> str:
    if not is_node_name(node):
        raise ActionRefused(f"not a single node name: {str(node)[:80]!r}")
    if snapshot is None:
        raise ActionRefused("no node list from the scheduler yet: cannot check that the node exists")
    if snapshot.node(node) is None:
        raise ActionRefused(f"node {node!r} is not in the last node list from the scheduler")
    return node


def check_job_id(job_id: object) -> str:
    text = str(job_id) if isinstance(job_id, (int, str)) and not isinstance(job_id, bool) else ""
    if not is_job_id(text):
        raise ActionRefused(f"not a job id (1234 or array task 1234_5): {str(job_id)[:40]!r}")
    return text


def check_next_state(next_state: object) -> str:
    state = str(next_state).upper() if isinstance(next_state, str) else ""
    if state not in NEXT_STATES:
        raise ActionRefused(f"next state must be one of {', '.join(sorted(NEXT_STATES))}, not {str(next_state)[:20]!r}")
    return state


def check_signal(signal: object) -> str:
    name = signal_name(signal)
    if name is None:
        raise ActionRefused(f"signal must be one of {', '.join(sorted(SIGNALS))}, not {str(signal)[:20]!r}")
    return name


def validate(kind: str, target: object, actor: object, snapshot: SchedulerSnapshot | None, *,
             reason: object = None, next_state: object = None, asap: bool = True, signal: object = None) -> Action:
    """An ``Action`` built only from checked values, or ``ActionRefused`` saying why not."""
    who = clean_actor(actor)
    if kind == DRAIN:
        return Action(DRAIN, check_node(target, snapshot), who, clean_reason(reason, required=True))
    if kind == RESUME:
        return Action(RESUME, check_node(target, snapshot), who, clean_reason(reason, required=False))
    if kind == REQUEUE:
        return Action(REQUEUE, check_job_id(target), who, clean_reason(reason, required=False))
    if kind == REBOOT:
        return Action(REBOOT, check_node(target, snapshot), who, clean_reason(reason, required=True),
                      next_state=check_next_state(next_state), asap=bool(asap))
    if kind == SIGNAL:
        return Action(SIGNAL, check_job_id(target), who, clean_reason(reason, required=False),
                      signal=check_signal(signal))
    raise ActionRefused(f"unknown action {kind!r}")
