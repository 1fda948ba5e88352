"""The jobs list at scale (issue 17, item 2): from PER_JOB_FROM_GPUS GPUs held by running jobs it
reads one series per job, never one per GPU: the rule pack's recorded per-job series, or, where
they are not recorded, the engine's ``by (job_id)`` aggregations. On the data set of
tests/dashboard/test_definitions.py (the threshold lowered under its 38 GPUs) it lists the same
figures and flags as the per-GPU list and the rules."""
from __future__ import annotations

import pytest

from alerts.evaluator import load_rule_files
from alerts.evaluator.manager import RuleEvaluator
from dashboard.context import DashboardContext
from dashboard.params import TimeRange
from dashboard.views import jobs as jobs_view
from dashboard.views.jobs import jobs
from tests.dashboard.job_data_set import END, JOBS, MINUTES, RULES, STEP, T0, flagged, job_store, per_job
from tsdb.client import LocalQueryClient, QueryResult
from tsdb.promql.engine import Engine

HOUR = TimeRange(END - 3600, END)
GPU_FAMILIES = ("gpu_utilization_ratio", "gpu_sm_active_ratio", "gpu_memory_used_bytes", "gpu_power_watts", "gpu_processes",
                "slurm_job_gpu_info", "instance_gpu_job:")


class Counting:
    """A query client that keeps every query and the most series of one name its answer held."""

    concurrent_queries = False
    decodes_results = False

    def __init__(self, client: LocalQueryClient) -> None:
        self.client, self.asked = client, []

    def instant(self, query: str, at: float | None = None) -> QueryResult:
        result = self.client.instant(query, at)
        self.asked.append((query, _most_of_one_name(result)))
        return result

    def range(self, query: str, start: float, end: float, step: float) -> QueryResult:
        result = self.client.range(query, start, end, step)
        self.asked.append((query, _most_of_one_name(result)))
        return result


def _most_of_one_name(result: QueryResult) -> int:
    names = [s.labels.get("__name__", "") for s in result.series]
    return max((names.count(name) for name in set(names)), default=0)


def _evaluated(groups: tuple[str, ...]):
    store = job_store()
    client = LocalQueryClient(Engine(store))
    rules = [g for g in load_rule_files([RULES / "recording.yml", RULES / "jobs.yml"]) if g.name in groups]
    evaluator = RuleEvaluator(rules, client, writer=store.append_rule_output)
    for i in range(MINUTES):
        evaluator.evaluate(T0 + i * STEP)
    return client, evaluator


@pytest.fixture(scope="module")
def recorded():
    client, evaluator = _evaluated(("clusterwatch-recording", "clusterwatch-recording-jobs", "jobs"))
    return client, {rule.rule.name: rule.firing() for rule in evaluator.alerting_rules()}


def _lists(client: LocalQueryClient, monkeypatch: pytest.MonkeyPatch):
    ctx = DashboardContext(query=client, clock=lambda: END)
    small = jobs(ctx, HOUR)
    monkeypatch.setattr(jobs_view, "PER_JOB_FROM_GPUS", 30)
    counting = Counting(client)
    large = jobs(DashboardContext(query=counting, clock=lambda: END), HOUR)
    return small, large, counting.asked


def test_the_list_at_scale_reads_recorded_series_per_job(recorded, monkeypatch):
    client, fired = recorded
    small, large, asked = _lists(client, monkeypatch)
    assert small.source == "gpus" and large.source == "recorded"
    assert sum(len(gpus) for _, gpus in JOBS.values()) >= 30  # the data set is "at scale" for this test
    for query, series in asked:  # no query names a per-GPU series, no answer has a series per GPU
        assert not any(family in query for family in GPU_FAMILIES), query
        assert series <= len(JOBS), query
    table = {row.job_id: row for row in large.jobs}
    assert flagged(table, "idle") == per_job(fired["JobGpusIdle"]) == {"105": 4, "106": 4, "107": 2, "113": 2}
    assert flagged(table, "hung") == per_job(fired["JobHung"]) == {"105": 4, "113": 2}
    assert flagged(table, "held_but_unused") == per_job(fired["JobGpusHeldUnused"]) == {"107": 2}
    assert flagged(table, "straggler") == {"101": 1, "104": 1, "111": 1, "112": 1}
    _same_figures(small, large)


def test_without_recorded_series_the_engine_computes_them_per_job(monkeypatch):
    client, _ = _evaluated(())  # a Prometheus without the pack: nothing recorded
    small, large, asked = _lists(client, monkeypatch)
    assert large.source == "computed per job"
    assert all(series <= len(JOBS) for _, series in asked), asked
    assert {row.job_id: row.flags for row in large.jobs} == {row.job_id: row.flags for row in small.jobs}
    _same_figures(small, large)


def _same_figures(small, large) -> None:
    assert [row.job_id for row in large.jobs] == [row.job_id for row in small.jobs]
    for a, b in zip(small.jobs, large.jobs):
        assert b.nodes == a.nodes and b.gpus == a.gpus, a.job_id
        assert b.measure == a.measure, a.job_id
        assert b.mean_utilization == pytest.approx(a.mean_utilization, abs=1e-3), a.job_id
        assert b.efficiency == pytest.approx(a.efficiency, abs=1e-3), a.job_id
        assert b.memory_used_bytes == pytest.approx(a.memory_used_bytes), a.job_id
