"""An in-process query client that keeps every query and the label sets it answered, for tests of
what a page asks the engine and what comes back (tests/dashboard/test_overview_*.py,
test_job_view_large.py)."""
from __future__ import annotations

from tsdb.client import LocalQueryClient
from tsdb.promql.engine import Engine


class RecordingClient(LocalQueryClient):
    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self.answers: list[tuple[str, list[dict[str, str]]]] = []

    def instant(self, query, at=None):
        result = super().instant(query, at)
        self.answers.append((query, [s.labels for s in result.series]))
        return result

    def range(self, query, start, end, step):
        result = super().range(query, start, end, step)
        self.answers.append((query, [s.labels for s in result.series]))
        return result
