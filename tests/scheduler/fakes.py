"""Test doubles: a backend that serves fixture snapshots and records what it was asked to do."""
from __future__ import annotations

from pathlib import Path

from scheduler.actions_model import ACTIONS, Action, Answer
from scheduler.model import SchedulerSnapshot
from scheduler.parsers import load_document, parse_jobs, parse_nodes, source_info

FIXTURES = Path(__file__).parent.parent / "fixtures"


def fixture_snapshot(folder: str = "slurm-23.11", taken_at: float = 1000.0) -> SchedulerSnapshot:
    jobs = load_document((FIXTURES / folder / "squeue.json").read_text(), "squeue")
    nodes = load_document((FIXTURES / folder / "sinfo.json").read_text(), "sinfo")
    return SchedulerSnapshot(tuple(parse_jobs(jobs)), tuple(parse_nodes(nodes)), taken_at, source_info(jobs, "fake"))


class FakeBackend:
    name = "fake"

    def __init__(self, snapshot: SchedulerSnapshot | None = None, answer: Answer | None = None,
                 supported: tuple[str, ...] = ACTIONS) -> None:
        self.snapshot = snapshot or fixture_snapshot()
        self.answer = answer or Answer(True, "ok", 0, ("scontrol",))
        self.supported_actions = frozenset(supported)
        self.executed: list[Action] = []
        self.fetches = 0
        self.fail_with: Exception | None = None

    def fetch(self, timeout: float) -> SchedulerSnapshot:
        self.fetches += 1
        if self.fail_with is not None:
            raise self.fail_with
        return self.snapshot

    def execute(self, action: Action, timeout: float) -> Answer:
        self.executed.append(action)
        return self.answer

