"""One definition of idle, hung, straggler, held-but-unused and low efficiency
(docs/architecture.md#definitions): on one data set, the job pages flag the same GPUs and jobs as
the rule pack fires on. The thresholds are one set of constants (dashboard/definitions.py) that
tests/alerts/test_rules_pack.py holds the rules' YAML to; this shows the page's functions read them
as the rules do. Several jobs sit where the page's former definitions disagreed with the rules."""
from __future__ import annotations

from pathlib import Path

import pytest

from alerts.evaluator import load_rule_files
from alerts.evaluator.manager import RuleEvaluator
from dashboard.context import DashboardContext
from dashboard.params import TimeRange
from dashboard.views.jobs import job, jobs
from tsdb.client import LocalQueryClient
from tsdb.promql.engine import Engine
from tsdb.store import Store

RULES = Path(__file__).resolve().parents[2] / "alerts" / "rules"
T0 = 1_700_000_000.0
STEP = 60.0
MINUTES = 150  # JobGpuEfficiencyLow holds for 2 hours
END = T0 + (MINUTES - 1) * STEP
GB = 1e9
BUSY = (0.8, 40 * GB, 1)  # utilisation, device memory used, processes

# job -> node, GPU -> (utilisation, memory, processes), constant over the whole data set.
JOBS: dict[str, tuple[str, dict[int, tuple[float, float, int]]]] = {
    # 0.625x the median: a straggler (the page used to flag below 0.5x only).
    "101": ("n1", {g: (0.5, 40 * GB, 1) if g == 3 else BUSY for g in range(8)}),
    # Two GPUs: too few for a straggler (the page used to flag any job of 2 or more).
    "102": ("n2", {0: BUSY, 1: (0.2, 40 * GB, 1)}),
    # Median 0.45, not above 0.5: the rest are not busy (the page used to want 0.3).
    "103": ("n2", {2: (0.45, 40 * GB, 1), 3: (0.45, 40 * GB, 1), 4: (0.45, 40 * GB, 1), 5: (0.1, 40 * GB, 1)}),
    # A straggler by every definition.
    "104": ("n3", {0: (0.9, 40 * GB, 1), 1: (0.9, 40 * GB, 1), 2: (0.9, 40 * GB, 1), 3: (0.3, 40 * GB, 1)}),
    # Hung: every GPU idle while holding 30 GB.
    "105": ("n4", {g: (0.0, 30 * GB, 1) for g in range(4)}),
    # Idle, holding half a GiB (a bare CUDA context): not hung (the page used to count any memory).
    "106": ("n4", {g: (0.0, 2**29, 1) for g in range(4, 8)}),
    # Two of four GPUs held without a process (and idle).
    "107": ("n5", {0: (0.9, 40 * GB, 1), 1: (0.9, 40 * GB, 1), 2: (0.0, 0.0, 0), 3: (0.0, 0.0, 0)}),
    # Efficiency 20% and 28%: both low (the job page's report used to say so below 25% only).
    "108": ("n6", {g: (0.2, 40 * GB, 1) for g in range(4)}),
    "109": ("n6", {g: (0.28, 40 * GB, 1) for g in range(4, 8)}),
}


def job_store() -> Store:
    store = Store(retention_s=1e9)
    stamps = [round((T0 + i * STEP) * 1000) for i in range(MINUTES)]

    def series(metric: str, value: float, **labels: str) -> None:
        key = tuple(sorted({"__name__": metric, **labels}.items()))
        store.append_series(key, stamps, [value] * MINUTES)

    for job_id, (node, gpus) in JOBS.items():
        series("slurm_job_info", 1.0, job_id=job_id, user="alice", account="acct", name="train",
               partition="gpu", state="RUNNING")
        series("slurm_job_start_time_seconds", T0 - 600, job_id=job_id)
        series("slurm_job_gpus", float(len(gpus)), job_id=job_id)
        for gpu, (utilization, memory, processes) in gpus.items():
            where = {"instance": node, "gpu": str(gpu)}
            series("slurm_job_gpu_info", 1.0, job_id=job_id, **where)
            series("gpu_utilization_ratio", utilization, uuid=f"GPU-{node}-{gpu}", **where)
            series("gpu_memory_used_bytes", memory, **where)
            series("gpu_processes", float(processes), **where)
    return store


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


def per_job(alerts) -> dict[str, int]:
    return {a.labels["job_id"]: int(a.value) for a in alerts}


def flagged(table, flag: str) -> dict[str, int]:
    return {job_id: row.flags[flag] for job_id, row in table.items() if row.flags.get(flag)}


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
