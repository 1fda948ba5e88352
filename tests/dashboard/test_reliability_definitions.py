"""The goodput definitions (dashboard/goodput.py, docs/architecture.md#definitions) on one
hand-built history (tests/dashboard/reliability_data_set.py): wall, productive and lost time by
cause per job, interruptions with their cause or "unknown", redone work unknown without a
checkpoint signal, cluster ETTR, interruptions per day, MTBI and lemon nodes; and the recording
group in alerts/rules/reliability.yml is the module's."""
from __future__ import annotations

import promql_parser as pp
import pytest

from alerts.evaluator import load_rule_files
from alerts.evaluator.manager import RuleEvaluator
from dashboard import goodput
from dashboard.params import TimeRange
from dashboard.goodput import CLASSES, GROUP, INTERVAL_S, RELIABILITY_RULES, account, cause_class, redone_seconds
from scheduler.checkpoint import CHECKPOINT_METRIC
from tests.dashboard.reliability_data_set import (EXPECTED_CLUSTER_ETTR, EXPECTED_ETTR, EXPECTED_LOST_GPU_MINUTES,
                                                  RANGE, RULES, History, at, evaluated_history, history)
from tsdb.client import LocalQueryClient
from tsdb.promql.engine import Engine


@pytest.fixture(scope="module")
def accounting():
    return account(LocalQueryClient(Engine(evaluated_history())), RANGE)


def test_the_recording_group_is_the_definitions_module():
    [group] = load_rule_files([RULES / "reliability.yml"])
    assert group.name == GROUP and group.interval_s == INTERVAL_S
    assert {rule.name: str(pp.parse(rule.expr)) for rule in group.rules} == \
        {name: str(pp.parse(expr)) for name, expr in RELIABILITY_RULES.items()}


def test_lost_time_by_cause_per_job(accounting):
    lost = {job_id: {cause: None if v is None else round(v / 60, 6) for cause, v in job.lost_gpu_seconds.items()}
            for job_id, job in accounting.jobs.items()}
    assert lost == EXPECTED_LOST_GPU_MINUTES
    assert {job_id: round(job.ettr, 6) for job_id, job in accounting.jobs.items()} == \
        {job_id: round(v, 6) for job_id, v in EXPECTED_ETTR.items()}
    assert {job_id: job.wall_gpu_seconds / 60 for job_id, job in accounting.jobs.items()} == \
        {"201": 180 * 8, "202": 180 * 4, "203": 180 * 4, "204": 180 * 4}


def test_a_job_interrupted_twice_has_both_interruptions_each_with_its_cause(accounting):
    items = accounting.jobs["201"].interruptions
    assert [(i.ordinal, i.cause, i.node, i.nodes) for i in items] == [
        (1, "gpu", "n2", ("n1", "n2")), (2, "unknown", "", ("n3", "n4"))]
    # The XID 79 on n2 wins over the older NodeUnreachable on n1: the more specific cause.
    assert (items[0].evidence.alertname, items[0].evidence.xid) == ("GpuXidRebootRequired", "79")
    # The ECC error on n8 at the second interruption is on a node the job did not hold: no evidence.
    assert items[1].evidence is None
    assert [i.redone_seconds for i in items] == [600.0, 600.0]


def test_without_a_checkpoint_signal_redone_work_is_unknown_not_zero(accounting):
    job = accounting.jobs["202"]
    assert job.lost_gpu_seconds["redone_work"] is None and not job.redone_known
    assert job.interruptions[0].redone_seconds is None
    assert job.interruptions[0].cause == "hbm_ecc" and job.interruptions[0].state == "NODE_FAIL"
    # Jobs never interrupted have nothing to redo: known, 0.
    assert accounting.jobs["204"].lost_gpu_seconds["redone_work"] == 0.0 and accounting.jobs["204"].redone_known
    assert accounting.redone_unknown_jobs() == 1


def test_redone_work_counts_from_the_runs_start_when_its_last_checkpoint_is_older():
    """A run restarted (at 40 m) from a checkpoint of the earlier run (10 m) and interrupted at 60 m
    redid 20 minutes, not the 50 since the checkpoint: the 10 m-40 m were the earlier run's redone
    work and the restart wait, counted there."""
    h = History()
    h.job("301", 4, running=[(0, 29, ("n1",)), (40, 79, ("n2",))], pending=[(30, 39)], restarts=[(30, 79, 1)])
    h.spell(CHECKPOINT_METRIC, 10, 79, at(10), job_id="301", instance="n1")
    client = LocalQueryClient(Engine(h.store()))
    assert redone_seconds(client, "301", at(60)) == 20 * 60
    assert redone_seconds(client, "301", at(25)) == 15 * 60
    assert redone_seconds(client, "999", at(60)) is None


def test_a_checkpoint_mark_counts_only_from_a_node_the_job_holds():
    """The textfile directory is writable by every job on a node: another job on n9 writing job
    310's mark, newer than its real one (10 m on n1), must not shrink the work 310's interruption at
    60 m threw away (the remediation step holds marks to the same rule). A mark from elsewhere still
    says the job checkpoints, so with none from its own nodes it redoes the run since its start, not
    an unknown amount; and a job that ran before on another node keeps that run's mark, bounded by
    the new run's start."""
    h = History()
    h.job("310", 4, running=[(0, 79, ("n1",))], pending=[], restarts=[])
    h.spell(CHECKPOINT_METRIC, 10, 79, at(10), job_id="310", instance="n1")
    h.spell(CHECKPOINT_METRIC, 55, 79, at(55), job_id="310", instance="n9")
    h.job("311", 4, running=[(0, 79, ("n2",))], pending=[], restarts=[])
    h.spell(CHECKPOINT_METRIC, 20, 79, at(20), job_id="311", instance="n9")
    h.job("312", 4, running=[(0, 29, ("n3",)), (40, 79, ("n4",))], pending=[(30, 39)], restarts=[(30, 79, 1)])
    h.spell(CHECKPOINT_METRIC, 10, 79, at(10), job_id="312", instance="n3")
    h.spell(CHECKPOINT_METRIC, 45, 79, at(45), job_id="312", instance="n4")
    client = LocalQueryClient(Engine(h.store()))
    assert redone_seconds(client, "310", at(60)) == 50 * 60
    assert redone_seconds(client, "311", at(60)) == 60 * 60
    assert redone_seconds(client, "312", at(60)) == 15 * 60
    assert redone_seconds(client, "312", at(38)) == 28 * 60


def test_a_checkpoint_mark_counts_only_from_the_jobs_own_user_or_the_nodes_administration():
    """A node shared by jobs of several users: a job of mallory's writing the mark of alice's job
    320 (the exporter stamps it ``writer="mallory"``), newer than its real one, must not shrink the
    work 320's interruption threw away; alice's own mark counts, and one root or the exporter wrote
    (no writer) counts for any job. A job whose only mark is another user's has no checkpoint
    signal at all: unknown, not "redid everything"."""
    h = History()
    h.job("320", 4, running=[(0, 79, ("n1",))], pending=[], restarts=[])
    h.spell(CHECKPOINT_METRIC, 10, 79, at(10), job_id="320", instance="n1", writer="alice")
    h.spell(CHECKPOINT_METRIC, 55, 79, at(55), job_id="320", instance="n1", writer="mallory")
    h.job("321", 4, running=[(0, 79, ("n2",))], pending=[], restarts=[])
    h.spell(CHECKPOINT_METRIC, 30, 79, at(30), job_id="321", instance="n2")
    h.job("322", 4, running=[(0, 79, ("n3",))], pending=[], restarts=[])
    h.spell(CHECKPOINT_METRIC, 50, 79, at(50), job_id="322", instance="n3", writer="mallory")
    client = LocalQueryClient(Engine(h.store()))
    assert redone_seconds(client, "320", at(60)) == 50 * 60
    assert redone_seconds(client, "321", at(60)) == 30 * 60
    assert redone_seconds(client, "322", at(60)) is None


@pytest.mark.parametrize("mark, start", [(float("nan"), True), (float("-inf"), True), (-1e18, False), (0.0, False)])
def test_a_checkpoint_mark_that_is_no_plausible_time_is_no_signal(mark, start):
    """The mark is the job's own word: NaN, or a time decades before the interruption with no run
    start to bound it, is no checkpoint signal (redone work unknown), not a query the engine refuses,
    which took the reliability page and the report down for the whole cluster."""
    h = History()
    if start:
        h.job("309", 4, running=[(0, 79, ("n1",))], pending=[], restarts=[])
    h.interruption("309", 1, 60, "PENDING")
    h.spell(CHECKPOINT_METRIC, 10, 79, mark, job_id="309", instance="n1")
    client = LocalQueryClient(Engine(h.store()))
    assert redone_seconds(client, "309", at(60)) is None
    [item] = account(client, TimeRange(at(-1), at(79))).interruptions
    assert item.redone_seconds is None
    # A mark in the future, from a node the job holds, is as good as now: nothing to redo.
    h.spell(CHECKPOINT_METRIC, 80, 80, 1e300, job_id="309", instance="n1")
    assert redone_seconds(LocalQueryClient(Engine(h.store())), "309", at(80)) == (0.0 if start else None)


def recorded_account(h: History, job_id: str, minutes: int = 90):
    """One job's account of a history with the recording group evaluated every minute over it."""
    store = h.store()
    client = LocalQueryClient(Engine(store))
    evaluator = RuleEvaluator(load_rule_files([RULES / "reliability.yml"]), client, writer=store.append_rule_output)
    for minute in range(minutes):
        evaluator.evaluate(at(minute))
    return account(client, TimeRange(at(-1), at(minutes - 1)), job_id).jobs[job_id]


def test_a_job_still_running_on_a_lost_gpu_is_hung_until_it_is_requeued():
    """After XID 79 the GPU is off the bus and the job's rank never returns: the job holds its whole
    allocation with no progress although JobHung (all GPUs idle holding memory) never fires, since
    its other ranks spin in the collective. It is hung from the minute the GPU is lost (gpu_up 0 on
    a GPU the scheduler gave it) until it stops running, not productive."""
    h = History()
    h.job("302", 4, running=[(0, 59, ("n1",)), (70, 89, ("n2",))], pending=[(60, 69)], restarts=[(60, 89, 1)])
    h.spell("gpu_up", 0, 19, 1.0, instance="n1", gpu="2", uuid="GPU-n1-2")
    h.spell("gpu_up", 20, 89, 0.0, instance="n1", gpu="2", uuid="GPU-n1-2")
    h.spell("gpu_up", 0, 89, 1.0, instance="n1", gpu="3", uuid="GPU-n1-3")  # not lost: no effect
    h.spell("gpu_up", 0, 89, 0.0, instance="n9", gpu="0", uuid="GPU-n9-0")  # lost, but not the job's GPU
    job = recorded_account(h, "302")
    assert job.lost_gpu_seconds["hung"] == 40 * 4 * 60  # minutes 20-59, its four GPUs
    assert job.lost_gpu_seconds["idle_held"] == 0.0
    assert job.productive_gpu_seconds == (20 + 20) * 4 * 60  # minutes 0-19 and the run on n2


def test_a_job_hung_before_its_requeue_redoes_only_the_work_before_it_hung():
    """Hung from minute 40 (JobHung firing) until requeued at 60, its last checkpoint at 10: the
    requeue throws away the 30 minutes of work between the checkpoint and the hang, and the 20
    hung minutes are lost as hung, not counted again as work to redo (an operator who takes hours
    to requeue a hung job would otherwise be charged those hours twice)."""
    h = History()
    h.job("303", 4, running=[(0, 59, ("n1",)), (70, 89, ("n2",))], pending=[(60, 69)], restarts=[(60, 89, 1)])
    h.interruption("303", 1, 60, "PENDING")
    h.spell(CHECKPOINT_METRIC, 10, 89, at(10), job_id="303", instance="n1")
    h.alert("JobHung", 40, 59, job_id="303", severity="critical")
    job = recorded_account(h, "303")
    assert job.lost_gpu_seconds["hung"] == 20 * 4 * 60
    assert [i.redone_seconds for i in job.interruptions] == [30 * 60]
    assert job.lost_gpu_seconds["redone_work"] == 30 * 4 * 60


def test_a_hang_counts_from_the_minute_jobhung_became_active_once_it_fires():
    """JobHung fires 15 minutes (its `for`) after the job's GPUs went idle holding memory; the job
    was hung from the start, so those minutes are hung too, and not work to redo at the requeue
    (they counted as productive: up to 15 minutes short per hang). Active at 25, firing 40-59,
    checkpoint at 10, requeued at 60: hung 35 minutes, redone the 15 before it hung."""
    h = History()
    h.job("304", 4, running=[(0, 59, ("n1",)), (70, 89, ("n2",))], pending=[(60, 69)], restarts=[(60, 89, 1)])
    h.interruption("304", 1, 60, "PENDING")
    h.spell(CHECKPOINT_METRIC, 10, 89, at(10), job_id="304", instance="n1")
    h.hung("304", active=25, firing=40, last=59)
    job = recorded_account(h, "304")
    assert job.lost_gpu_seconds["hung"] == 35 * 4 * 60
    assert [i.redone_seconds for i in job.interruptions] == [15 * 60]
    assert job.productive_gpu_seconds == (25 - 15 + 20) * 4 * 60  # minutes 0-24 less the 15 redone, the run on n2


def test_a_hang_seen_only_pending_or_already_counted_is_not_counted_again():
    """A JobHung that never fired is no hang; minutes already hung by a lost GPU count once; and a
    hang whose alert fires after the range's end (a range ending inside the pending minutes) counts
    those minutes once it has fired, not before."""
    h = History()
    h.job("305", 4, running=[(0, 89, ("n1",))], pending=[], restarts=[])
    h.hung("305", active=10, firing=None, last=20)  # pending 11 minutes, then the job moved on
    h.spell("gpu_up", 0, 49, 1.0, instance="n1", gpu="0", uuid="GPU-n1-0")
    h.spell("gpu_up", 50, 89, 0.0, instance="n1", gpu="0", uuid="GPU-n1-0")  # lost from 50
    h.hung("305", active=45, firing=60, last=89)  # and JobHung active from 45 as well
    job = recorded_account(h, "305")
    assert job.lost_gpu_seconds["hung"] == (89 - 45 + 1) * 4 * 60  # 45-89, once
    store = h.store()
    client = LocalQueryClient(Engine(store))
    evaluator = RuleEvaluator(load_rule_files([RULES / "reliability.yml"]), client, writer=store.append_rule_output)
    for minute in range(90):
        evaluator.evaluate(at(minute))
    early = account(client, TimeRange(at(-1), at(47)), "305").jobs["305"]
    assert early.lost_gpu_seconds["hung"] == (47 - 45 + 1) * 4 * 60  # fired at 60, after the range


@pytest.mark.parametrize("since, hung_minutes", [(float("nan"), 20), (at(0) - 365 * 86400, 60), (-1e18, None)])
def test_an_activation_time_that_is_no_plausible_time_counts_no_more_than_the_range(since, hung_minutes):
    """ALERTS_FOR_STATE comes back from the store (in a shared Prometheus, from anyone's rules): an
    activation time in the far past walked every minute since it (-1e18: a page that never
    answered). Its minutes count from the range's start at most; NaN, none."""
    h = History()
    h.job("310", 4, running=[(0, 89, ("n1",))], pending=[], restarts=[])
    h.alert("JobHung", 40, 59, job_id="310", severity="critical")
    h.spell("ALERTS_FOR_STATE", 20, 59, since, alertname="JobHung", job_id="310", severity="critical")
    hung = recorded_account(h, "310").lost_gpu_seconds["hung"] / (4 * 60)
    # Recorded while firing (40-59); before it, from the range's start (minute 0) for the far past.
    if hung_minutes is None:  # minutes of -1e18 + k x 60 s are not whole minutes in floating point
        assert 20 <= hung <= 60
    else:
        assert hung == hung_minutes


def test_idle_gpus_count_from_the_minute_jobgpusidle_became_active_once_it_fires():
    """JobGpusIdle fires 25 minutes (its `for`) after it became active, which is 5 minutes (the
    window its peak is taken over) after a job's GPUs went idle: those minutes are held but idle
    too, at the idle GPUs of each minute (before activation, those counted at it), except while the
    job was hung (hung already)."""
    h = History()
    h.job("306", 4, running=[(0, 89, ("n1",))], pending=[], restarts=[])
    h.spell("job_id:gpus_idle:count", 10, 39, 1.0, job_id="306")
    h.spell("job_id:gpus_idle:count", 40, 79, 2.0, job_id="306")
    h.hung("306", active=10, firing=35, last=79, alertname="JobGpusIdle")
    h.hung("306", active=20, firing=None, last=25, alertname="JobGpusIdle")  # an earlier label set, never fired
    h.hung("306", active=60, firing=75, last=79)  # JobHung active at 60: hung from 60, not idle
    job = recorded_account(h, "306")
    # 1 GPU for minutes 5-39 (5-9 before its activation), 2 for 40-59 (25 of them before it fired), then hung
    assert job.lost_gpu_seconds["idle_held"] == (35 * 1 + 20 * 2) * 60
    assert job.lost_gpu_seconds["hung"] == 20 * 4 * 60


def test_a_straggler_counts_from_the_minute_its_alert_became_active_once_it_fires():
    """GpuStragglerUtilization fires 15 minutes (its `for`) after a GPU fell behind its job's median:
    the job ran that slow from the start, so those minutes are slowed too, at the straggler's
    shortfall of each minute (the slowest straggler's while several were), never while the job was
    hung, and not again where another straggler already firing counted them."""
    h = History()
    h.job("307", 4, running=[(0, 119, ("n1",))], pending=[], restarts=[])
    h.spell("job_id:gpu_activity:median", 0, 119, 0.8, job_id="307", measure="utilization")
    straggler = {"instance": "n1", "measure": "utilization"}
    h.spell("instance_gpu_job:gpu_activity:ratio", 0, 119, 0.4, job_id="307", gpu="1", **straggler)  # half the median
    h.spell("instance_gpu_job:gpu_activity:ratio", 0, 119, 0.6, job_id="307", gpu="2", **straggler)  # a quarter short
    h.spell("instance_gpu_job:gpu_activity:ratio", 0, 119, 0.2, job_id="307", gpu="3", **straggler)
    h.hung("307", active=10, firing=25, last=49, alertname="GpuStragglerUtilization", gpu="1", **straggler)
    h.hung("307", active=40, firing=55, last=69, alertname="GpuStragglerUtilization", gpu="2", **straggler)
    h.hung("307", active=60, firing=None, last=70, alertname="GpuStragglerUtilization", gpu="3", **straggler)
    h.hung("307", active=80, firing=95, last=110)  # JobHung: hung from 80, not slowed
    h.hung("307", active=85, firing=100, last=110, alertname="GpuStragglerUtilization", gpu="1", **straggler)
    job = recorded_account(h, "307", minutes=120)
    # GPU 1: minutes 10-49 at 0.5; GPU 2: 50-69 at 0.25 (40-49 counted at GPU 1's larger shortfall);
    # GPU 3 never fired; GPU 1's second episode (85-110) falls within the hang.
    assert job.lost_gpu_seconds["straggler"] == pytest.approx((40 * 0.5 + 20 * 0.25) * 4 * 60)
    assert job.lost_gpu_seconds["hung"] == 31 * 4 * 60


def test_straggler_episodes_beyond_the_bound_count_from_their_firing_and_say_so(monkeypatch):
    """Each episode read back is a query: past MAX_STRAGGLER_EPISODES in a range the rest count
    from their firing only, and the accounting's notes say so."""
    monkeypatch.setattr(goodput, "MAX_STRAGGLER_EPISODES", 1)
    h = History()
    h.job("308", 4, running=[(0, 59, ("n1",))], pending=[], restarts=[])
    h.spell("job_id:gpu_activity:median", 0, 59, 0.8, job_id="308", measure="utilization")
    for gpu, firing in (("1", 25), ("2", 45)):
        labels = {"instance": 'n1"} or vector(1) #', "gpu": gpu, "measure": "utilization"}  # escaped, not injected
        h.spell("instance_gpu_job:gpu_activity:ratio", 0, 59, 0.4, job_id="308", **labels)
        h.hung("308", active=firing - 15, firing=firing, last=firing + 4, alertname="GpuStragglerUtilization", **labels)
    store = h.store()
    client = LocalQueryClient(Engine(store))
    evaluator = RuleEvaluator(load_rule_files([RULES / "reliability.yml"]), client, writer=store.append_rule_output)
    for minute in range(60):
        evaluator.evaluate(at(minute))
    found = account(client, TimeRange(at(-1), at(59)), "308")
    # GPU 1 from its activation (10-29), GPU 2 from its firing (45-49), at half the median
    assert found.jobs["308"].lost_gpu_seconds["straggler"] == pytest.approx((20 + 5) * 0.5 * 4 * 60)
    assert any("2 straggler episodes" in note for note in found.notes)


def test_a_record_with_a_malformed_job_id_is_skipped_not_queried(accounting):
    """An interruption record whose job id is not one (a foreign series in a shared Prometheus) would
    go into the queries that explain it: a quote in it broke them, and the page with them."""
    store = evaluated_history()
    for job_id in ('1"} or vector(1) #', ""):
        store.append_series(tuple(sorted({"__name__": "slurm_job_interruption_time_seconds", "job_id": job_id,
                                          "interruption": "1", "state": "FAILED"}.items())),
                            [round(at(100) * 1000)], [at(100)])
    found = account(LocalQueryClient(Engine(store)), RANGE)
    assert [(i.job_id, i.time) for i in found.interruptions] == [(i.job_id, i.time) for i in accounting.interruptions]


def test_cluster_ettr_is_gpu_hour_weighted(accounting):
    assert accounting.ettr() == pytest.approx(EXPECTED_CLUSTER_ETTR)
    # An unweighted mean of the jobs' ETTRs would say otherwise: the 8-GPU job weighs double.
    assert accounting.ettr() != pytest.approx(sum(EXPECTED_ETTR.values()) / len(EXPECTED_ETTR))
    assert accounting.lost_gpu_hours() == pytest.approx(
        {"restart_wait": 240 / 60, "redone_work": 160 / 60, "hung": 180 / 60, "straggler": 80 / 60, "idle_held": 170 / 60})


def test_interruptions_per_day_by_class_mtbi_and_lemons(accounting):
    assert accounting.by_day() == {"2023-11-14": {"gpu": 1, "hbm_ecc": 1}, "2023-11-15": {"unknown": 1}}
    assert accounting.by_class() == {**{c: 0 for c in CLASSES}, "gpu": 1, "hbm_ecc": 1, "unknown": 1}
    assert accounting.fleet_gpus == 64
    assert accounting.mtbi_per_1000_gpus_hours() == pytest.approx(3 * 64 / 1000 / 3)
    assert accounting.lemons() == [("n2", 1, {"gpu": 1}), ("n5", 1, {"hbm_ecc": 1})]


def test_one_job_reads_only_its_own_series():
    client = LocalQueryClient(Engine(evaluated_history()))
    one = account(client, RANGE, "201")
    assert set(one.jobs) == {"201"} and len(one.interruptions) == 2
    with pytest.raises(ValueError):
        account(client, RANGE, '201"} or vector(1) #')


def test_without_the_recording_group_the_accounting_says_so():
    plain = account(LocalQueryClient(Engine(history())), RANGE)
    assert not plain.recorded and plain.ettr() is None
    assert any("clusterwatch-reliability" in note for note in plain.notes)
    assert len(plain.interruptions) == 3  # the scheduler's records and the alerts do not need the group


@pytest.mark.parametrize("alertname, labels, expected", [
    ("GpuXidNeedsInvestigation", {"xid": "48"}, "hbm_ecc"),
    ("GpuXidRebootRequired", {"xid": "79"}, "gpu"),
    ("GpuXidNeedsInvestigation", {"xid": "74"}, "nvlink"),
    ("GpuXidApplicationErrorsRepeated", {}, "software"),
    ("GpuRowRemapFailed", {}, "hbm_ecc"),
    ("GpuNvlinkLinkDown", {}, "nvlink"),
    ("InfinibandPortDown", {}, "infiniband"),
    ("FabricLinkDown", {}, "infiniband"),
    ("NodeUnreachable", {}, "host"),
    ("NodeDiskNearlyFull", {}, "storage"),
    ("NodeOomKills", {}, "software"),
    ("GpuLost", {}, "gpu"),
    ("JobHung", {}, None),
    ("ExporterDown", {}, None),
])
def test_alert_to_root_cause_class(alertname, labels, expected):
    assert cause_class(alertname, labels) == expected


def test_settled_interruptions_are_explained_once_and_recent_ones_each_time(monkeypatch):
    """A page refreshed every few seconds asked every interruption's two queries again each time;
    once an interruption's evidence is all in, its explanation is kept for the store."""
    asked = []
    real = goodput.explain
    monkeypatch.setattr(goodput, "explain", lambda client, *record: asked.append(record) or real(client, *record))
    client = LocalQueryClient(Engine(evaluated_history()))
    first = account(client, RANGE)
    explained = len(asked)
    assert explained == sum(len(job.interruptions) for job in first.jobs.values()) > 0
    assert account(client, RANGE).jobs == first.jobs and len(asked) == explained  # none asked again
    last = max(i.time for job in first.jobs.values() for i in job.interruptions)
    recent = TimeRange(RANGE.start, last + goodput.AFTER_S + 60)  # that one still settling
    account(client, recent)
    account(client, recent)
    assert [record[2] for record in asked[explained:]] == [last, last]
    assert account(LocalQueryClient(Engine(evaluated_history())), RANGE).jobs == first.jobs  # another store: its own
    assert len(asked) == 2 * explained + 2
