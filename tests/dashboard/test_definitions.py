"""One definition of idle, hung, straggler, held-but-unused and low efficiency
(docs/architecture.md#definitions): on one data set, the job pages flag the same GPUs and jobs as
the rule pack fires on, on GPUs with NVML GPM (SM activity) and without (utilisation) alike. The thresholds are one set of constants (dashboard/definitions.py) that
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
    recorded = {s.labels["job_id"]: (s.value, s.labels["measure"])
                for s in client.instant("job_id:gpu_efficiency:ratio1h", END).series}
    return fired, table, pages, recorded


def test_page_and_rule_flag_the_same_stragglers(judged):
    fired, table, pages, _ = judged
    rule = {(a.labels["instance"], int(a.labels["gpu"]), a.labels["job_id"]) for a in fired["GpuStragglerUtilization"]}
    page = {(g.node, g.gpu, job_id) for job_id, view in pages.items() for g in view.gpus if g.straggler}
    # 111: by SM activity (utilisation is 100% on all four); 112: by utilisation, two of its GPUs lacking GPM.
    assert page == rule == {("n1", 3, "101"), ("n3", 3, "104"), ("n8", 3, "111"), ("n9", 3, "112")}
    assert flagged(table, "straggler") == {"101": 1, "104": 1, "111": 1, "112": 1}
    assert {a.labels["job_id"]: a.labels["measure"] for a in fired["GpuStragglerUtilization"]} == {
        "101": "utilization", "104": "utilization", "111": "sm_active", "112": "utilization"}
    assert all(view.flags.get("straggler", 0) == sum(g.straggler for g in view.gpus) for view in pages.values())


def test_page_and_rule_count_the_same_idle_hung_and_held_but_unused_gpus(judged):
    fired, table, pages, _ = judged
    # 113: 5% utilisation (a kernel spinning) on idle SMs.
    assert flagged(table, "idle") == per_job(fired["JobGpusIdle"]) == {"105": 4, "106": 4, "107": 2, "113": 2}
    assert flagged(table, "hung") == per_job(fired["JobHung"]) == {"105": 4, "113": 2}
    assert flagged(table, "held_but_unused") == per_job(fired["JobGpusHeldUnused"]) == {"107": 2}
    assert all(pages[job_id].flags == row.flags for job_id, row in table.items())


def test_page_and_rule_find_the_same_jobs_of_low_efficiency(judged):
    fired, table, pages, recorded = judged
    rule = set(per_job(fired["JobGpuEfficiencyLow"]))
    report = {job_id for job_id, view in pages.items() if any("GPU efficiency below" in n for n in view.efficiency.notes)}
    assert report == rule == {"105", "106", "108", "109", "110", "113"}
    assert {job_id for job_id, view in pages.items() if view.efficiency.low} == rule  # the page's red figure
    for job_id, row in table.items():  # the same number: GPU-hour-weighted mean activity over the hour
        assert row.efficiency == pytest.approx(recorded[job_id][0], abs=1e-4), job_id
        assert pages[job_id].efficiency.gpu_efficiency == pytest.approx(recorded[job_id][0], abs=1e-4), job_id


def test_page_list_series_and_rule_name_the_same_measure(judged):
    """SM activity where every GPU of the job has GPM, else utilisation; every place that shows
    the efficiency says which: the recorded series' and the alert's measure label, the list's and
    the page's measure field, the page's text."""
    fired, table, pages, recorded = judged
    gpm_jobs = {"110", "111", "113"}
    expected = {job_id: "sm_active" if job_id in gpm_jobs else "utilization" for job_id in JOBS}
    assert {job_id: measure for job_id, (_, measure) in recorded.items()} == expected
    assert {job_id: row.measure for job_id, row in table.items()} == expected
    assert {job_id: view.efficiency.measure for job_id, view in pages.items()} == expected
    assert {job_id: view.measure for job_id, view in pages.items()} == expected
    assert {a.labels["job_id"]: a.labels["measure"] for a in fired["JobGpuEfficiencyLow"]} == {
        job_id: expected[job_id] for job_id in ("105", "106", "108", "109", "110", "113")}
    assert "GPU efficiency below 20% (SM activity): the job holds GPUs it barely uses" in pages["110"].efficiency.notes
    assert "GPU efficiency below 30% (utilisation): the job holds GPUs it barely uses" in pages["108"].efficiency.notes


def test_a_job_fully_utilised_at_low_sm_activity_is_low_efficiency(judged):
    """The point of reading SM activity: job 110's GPUs are 100% "utilised" (a kernel always
    running) while 10% of their SMs work. By utilisation it was efficient; by SM activity it is not."""
    fired, table, pages, recorded = judged
    assert recorded["110"] == (pytest.approx(0.1, abs=1e-4), "sm_active")
    assert table["110"].efficiency == pytest.approx(0.1, abs=1e-4)
    assert pages["110"].efficiency.gpu_efficiency == pytest.approx(0.1, abs=1e-4)
    assert all(g.utilization[-1] == 1.0 for g in pages["110"].gpus)
    assert "110" in per_job(fired["JobGpuEfficiencyLow"])
