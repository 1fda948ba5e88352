"""The checkpoint contract between a training job and ClusterWatch, in one place.

A job says "my checkpoint finished" by writing one gauge line into the node exporter's textfile
directory, in its own file ``clusterwatch_job_checkpoint_<job>.prom``, written to a temporary
name and renamed into place (so a scrape never reads half a file), once the save has finished.
Its value is the time of the training state the checkpoint holds, which is when the save began:
work done after it (a trainer that saves in the background trains on) is not in the checkpoint,
and a requeue throws it away with the rest:

    # TYPE clusterwatch_job_checkpoint_timestamp_seconds gauge
    clusterwatch_job_checkpoint_timestamp_seconds{job_id="123"} 1733400000

No HELP line: the textfile collector counts two files with different HELP texts for one family as
an error, and every writer (a user's script, the simulator) writes the same two lines.

ClusterWatch asks a job to checkpoint now with ``scancel --signal=USR1 --batch <job>``: the
signal reaches the batch script's shell only, which traps it (the signal is configurable in the
remediation policy, from ``SIGNALS``). docs/operations.md "Checkpoint contract for training jobs"
is the user's side of it; the remediation step, the simulator's jobs and the goodput accounting
read the names from here.
"""
from __future__ import annotations

import re
from typing import Collection, Mapping

from cwkernel.jobmarks import WRITER_LABEL

CHECKPOINT_METRIC = "clusterwatch_job_checkpoint_timestamp_seconds"
JOB_LABEL = "job_id"
DEFAULT_SIGNAL = "USR1"
# Signals a checkpoint request may send. Never KILL or STOP: a request must leave the job running.
SIGNALS = frozenset({"USR1", "USR2", "TERM", "INT", "HUP", "URG"})
_FILE_SAFE = re.compile(r"[^0-9_]")


def signal_name(value: object) -> str | None:
    """``"SIGUSR1"``/``"usr1"`` -> ``"USR1"`` when it is an allowed signal, else None."""
    if not isinstance(value, str):
        return None
    name = value.strip().upper().removeprefix("SIG")
    return name if name in SIGNALS else None


def scancel_args(job_id: str, signal: str) -> list[str]:
    """The scancel argument vector that asks a job's batch script to checkpoint (no shell)."""
    return [f"--signal={signal}", "--batch", job_id]


MARK_NODE_LABEL = "instance"  # the node whose exporter exposed a mark


def newest_mark_on(marks: Mapping[str, float], nodes: Collection[str]) -> float | None:
    """A job's last finished checkpoint from its marks by node (``MARK_NODE_LABEL``): the newest
    from one of ``nodes``, the nodes it holds; None when none of them has one. The textfile
    directory is writable by every job on a node, so a mark from a node the job does not hold may
    be another job's forgery, newer than its real checkpoint: trusted, it would end a checkpoint
    wait early and understate the work a requeue throws away."""
    held = [value for node, value in marks.items() if node in nodes]
    return max(held) if held else None


def believed_marks(job_matcher: str, lookback: str) -> str:
    """PromQL: the newest sample within ``lookback`` of each mark series of the jobs
    ``job_matcher`` selects (``job_id="1"``, ``job_id=~"1|2"``) that is the job's own word: one the
    exporter saw written by root or by itself (no ``writer``), or by the job's own user (``writer``
    equal to the job's ``user`` in ``slurm_job_info``, or to its ``uid`` where the node's exporter
    has not found the user's name yet; without the scheduler adapter no user's mark is believed).
    A mark another user's job wrote into the shared directory is none: trusted, it would end a
    checkpoint wait early and understate the work a requeue throws away."""
    def marks(writer: str) -> str:
        return f'last_over_time({CHECKPOINT_METRIC}{{{job_matcher},{WRITER_LABEL}{writer}}}[{lookback}])'
    unstamped, stamped = marks('=""'), marks('!=""')
    users = f'last_over_time(slurm_job_info{{{job_matcher}}}[{lookback}])'

    def written_by(label: str) -> str:
        return f'(label_replace({stamped}, "{label}", "$1", "{WRITER_LABEL}", "(.+)") and on ({JOB_LABEL}, {label}) {users})'
    own = f'{written_by("user")} or {written_by("uid")}'
    return f'({unstamped} or ({own}))'


TEXTFILE_GLOB = "clusterwatch_job_checkpoint_*.prom"  # every job's file (textfile_name)


def textfile_name(job_id: str) -> str:
    """The file a job writes its line to (one per job, so jobs on a node never overwrite each other)."""
    return TEXTFILE_GLOB.replace("*", _FILE_SAFE.sub("_", job_id))


def textfile_line(job_id: str, state_at: float) -> str:
    """The whole file content for one finished checkpoint (the TYPE line and the sample), whose
    training state is that of ``state_at`` (when its save began)."""
    return f'# TYPE {CHECKPOINT_METRIC} gauge\n{CHECKPOINT_METRIC}{{{JOB_LABEL}="{job_id}"}} {state_at:.3f}\n'
