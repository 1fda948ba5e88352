"""One definition of idle, hung, straggler, held-but-unused and low efficiency
(docs/architecture.md#definitions): on one data set, the job pages flag the same GPUs and jobs as
the rule pack fires on. The thresholds are one set of constants (dashboard/definitions.py) that
tests/alerts/test_rules_pack.py holds the rules' YAML to; this shows the page's functions read them
as the rules do. Several jobs sit where the page's former definitions disagreed with the rules."""
from __future__ import annotations

import pytest

from alerts.evaluator import load_rule_files
from alerts.evaluator.manager import RuleEvaluator
from dashboard.context import DashboardContext
from dashboard.params import TimeRange
from dashboard.views.jobs import job, jobs
from tests.dashboard.job_data_set import END, JOBS, MINUTES, RULES, STEP, T0, flagged, job_store, per_job
from tsdb.client import LocalQueryClient
from tsdb.promql.engine import Engine


@pytest.fixture(scope="module")
def judged():
    """The rule pack's job rules evaluated every minute over the data set, and the pages at its end."""
    store = job_store()
    client = LocalQueryClient(Engine(store))
    groups = [g for g in load_rule_files([RULES / "recording.yml", RULES / "jobs.yml"])
              if g.name in ("clusterwatch-recording", "clusterwatch-recording-jobs", "jobs")]
    evaluator = RuleEvaluator(groups, client, writer=store.append_rule_output)
    for i in range(MINUTES):
        evaluator.evaluate(T0 + i * STEP)
    fired = {rule.rule.name: rule.firing() for rule in evaluator.alerting_rules()}
    ctx = DashboardContext(query=client, clock=lambda: END)
    hour = TimeRange(END - 3600, END)
    table = {row.job_id: row for row in jobs(ctx, hour).jobs}
    pages = {job_id: job(ctx, hour, job_id) for job_id in JOBS}
    recorded = {s.labels["job_id"]: s.value for s in client.instant("job_id:gpu_efficiency:ratio1h", END).series}
    return fired, table, pages, recorded


def test_page_and_rule_flag_the_same_stragglers(judged):
    fired, table, pages, _ = judged
    rule = {(a.labels["instance"], int(a.labels["gpu"]), a.labels["job_id"]) for a in fired["GpuStragglerUtilization"]}
    page = {(g.node, g.gpu, job_id) for job_id, view in pages.items() for g in view.gpus if g.straggler}
    assert page == rule == {("n1", 3, "101"), ("n3", 3, "104")}
    assert flagged(table, "straggler") == {"101": 1, "104": 1}
    assert all(view.flags.get("straggler", 0) == sum(g.straggler for g in view.gpus) for view in pages.values())


def test_page_and_rule_count_the_same_idle_hung_and_held_but_unused_gpus(judged):
    fired, table, pages, _ = judged
    assert flagged(table, "idle") == per_job(fired["JobGpusIdle"]) == {"105": 4, "106": 4, "107": 2}
    assert flagged(table, "hung") == per_job(fired["JobHung"]) == {"105": 4}
    assert flagged(table, "held_but_unused") == per_job(fired["JobGpusHeldUnused"]) == {"107": 2}
    assert all(pages[job_id].flags == row.flags for job_id, row in table.items())


def test_page_and_rule_find_the_same_jobs_of_low_efficiency(judged):
    fired, table, pages, recorded = judged
    rule = set(per_job(fired["JobGpuEfficiencyLow"]))
    report = {job_id for job_id, view in pages.items() if any("GPU efficiency below 30%" in n for n in view.efficiency.notes)}
    assert report == rule == {"105", "106", "108", "109"}
    for job_id, row in table.items():  # the same number: GPU-hour-weighted mean utilisation over the hour
        assert row.efficiency == pytest.approx(recorded[job_id], abs=1e-4), job_id
        assert pages[job_id].efficiency.gpu_efficiency == pytest.approx(recorded[job_id], abs=1e-4), job_id
