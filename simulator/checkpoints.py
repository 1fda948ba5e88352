"""Simulated jobs' checkpoint marks, written as the contract says a real job writes them.

When a simulated job's checkpoint finishes, its line (scheduler/checkpoint.py) is written into
the textfile directory of the job's batch host, to a temporary name and renamed into place, and
the node's real exporter exposes it through its textfile collector, as node_exporter would. The
file goes when the job ends (what a Slurm epilog does on a real node), so the directory holds one
file per job that may still resume from its checkpoint.

Only with a root directory (``Fleet(textfile_root=...)``): a benchmark's month of simulated jobs
need not touch the disk.
"""
from __future__ import annotations

import os
from pathlib import Path

from scheduler.checkpoint import textfile_line, textfile_name
from simulator.jobs import SimJob


class CheckpointFiles:
    """One textfile directory per node under ``root``; listens to the scheduler's job events."""

    def __init__(self, root: str | os.PathLike[str], node_names: list[str]) -> None:
        self.root = Path(root)
        self._written: dict[str, str] = {}  # job id -> the node whose directory holds its file
        for name in node_names:
            self.directory(name).mkdir(parents=True, exist_ok=True)

    def directory(self, node: str) -> Path:
        return self.root / node

    def on_event(self, event: str, job: SimJob) -> None:
        if event == "start" and job.nodes and job.start_time is not None:
            # The contract's first mark, at the run's start: it says the job answers the signal.
            self.write(job.nodes[0], str(job.job_id), job.start_time)
        elif event == "checkpoint" and job.nodes and job.checkpoint_at is not None:
            self.write(job.nodes[0], str(job.job_id), job.checkpoint_at)
        elif event == "end":
            self.remove(str(job.job_id))

    def write(self, node: str, job_id: str, state_at: float) -> None:
        if self._written.get(job_id, node) != node:
            self.remove(job_id)  # requeued and restarted elsewhere: one file per job
        final = self.directory(node) / textfile_name(job_id)
        partial = final.with_name(f".{final.name}.tmp")  # not *.prom: the collector never reads it
        partial.write_text(textfile_line(job_id, state_at))
        os.replace(partial, final)
        self._written[job_id] = node

    def remove(self, job_id: str) -> None:
        node = self._written.pop(job_id, None)
        if node is not None:
            (self.directory(node) / textfile_name(job_id)).unlink(missing_ok=True)
