"""Interruptions of running jobs, from two successive polls: requeues (restart_cnt grew) and
unplanned ends are recorded with their time and nodes; planned ends are not; the adapter exposes
each record as slurm_job_interruption_time_seconds."""
from __future__ import annotations

from dataclasses import replace

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from scheduler.adapter import SchedulerAdapter
from scheduler.interruptions import InterruptionLedger
from scheduler.model import Job, SchedulerSnapshot, SourceInfo
from scheduler.parsers import parse_jobs
from tests.scheduler.fakes import FakeBackend

RUNNING = Job("7", state="RUNNING", nodes=("gpu-001", "gpu-002"), start_time=100.0)


def snap(taken_at: float, *jobs: Job) -> SchedulerSnapshot:
    return SchedulerSnapshot(jobs=jobs, nodes=(), taken_at=taken_at, source=SourceInfo("fake"))


def ledger_after(*snapshots: SchedulerSnapshot) -> InterruptionLedger:
    ledger = InterruptionLedger()
    for snapshot in snapshots:
        ledger.observe(snapshot)
    return ledger


def test_restart_cnt_is_parsed_from_squeue_json():
    [job] = parse_jobs({"jobs": [{"job_id": 7, "job_state": ["PENDING"], "restart_cnt": 2}]})
    assert job.restart_count == 2
    [job] = parse_jobs({"jobs": [{"job_id": 8, "job_state": ["PENDING"]}]})
    assert job.restart_count == 0  # an older release without the field


def test_a_requeue_is_recorded_with_the_nodes_the_job_held():
    requeued = replace(RUNNING, state="PENDING", nodes=(), restart_count=1, reason="BeginTime")
    [record] = ledger_after(snap(1000.0, RUNNING), snap(1015.0, requeued)).records()
    assert (record.job_id, record.ordinal, record.time, record.state) == ("7", 1, 1015.0, "PENDING")
    assert record.nodes == ("gpu-001", "gpu-002")


def test_a_job_interrupted_twice_has_two_records():
    first = replace(RUNNING, state="PENDING", restart_count=1)
    again = replace(RUNNING, restart_count=1, nodes=("gpu-003",))
    second = replace(again, state="PENDING", restart_count=2)
    records = ledger_after(snap(1000, RUNNING), snap(1015, first), snap(1030, again), snap(1045, second)).records()
    assert [(r.ordinal, r.time, r.nodes) for r in records] == [(1, 1015, ("gpu-001", "gpu-002")), (2, 1045, ("gpu-003",))]


def test_a_node_failure_end_uses_slurms_end_time_and_planned_ends_are_not_interruptions():
    failed = replace(RUNNING, state="NODE_FAIL", end_time=1009.0)
    [record] = ledger_after(snap(1000, RUNNING), snap(1015, failed)).records()
    assert (record.time, record.ordinal, record.state) == (1009.0, 1, "NODE_FAIL")
    for planned in ("COMPLETED", "CANCELLED", "TIMEOUT"):
        assert ledger_after(snap(1000, RUNNING), snap(1015, replace(RUNNING, state=planned))).records() == ()


def test_a_failure_then_its_requeue_seen_on_the_next_poll_is_one_interruption_at_the_failure():
    failed = replace(RUNNING, state="NODE_FAIL", end_time=1009.0)
    requeued = replace(RUNNING, state="PENDING", nodes=(), restart_count=1)
    records = ledger_after(snap(1000, RUNNING), snap(1015, failed), snap(1030, requeued)).records()
    assert [(r.ordinal, r.time, r.state, r.nodes) for r in records] == [(1, 1009.0, "NODE_FAIL", ("gpu-001", "gpu-002"))]


def test_a_restart_count_seen_on_the_first_poll_is_not_given_an_invented_time():
    assert ledger_after(snap(1000, replace(RUNNING, restart_count=3))).records() == ()


def test_the_ledger_is_bounded():
    ledger = InterruptionLedger(max_records=3)
    jobs = [replace(RUNNING, job_id=str(i)) for i in range(5)]
    ledger.observe(snap(1000, *jobs))
    ledger.observe(snap(1015, *(replace(j, state="NODE_FAIL") for j in jobs)))
    assert [r.job_id for r in ledger.records()] == ["2", "3", "4"]


def test_the_adapter_exposes_each_interruption_and_the_restart_count():
    backend = FakeBackend(snap(1000.0, RUNNING))
    clock = [1000.0]
    adapter = SchedulerAdapter(backend, min_interval=1.0, monotonic=lambda: clock[0], wall_clock=lambda: clock[0])
    adapter.refresh()
    clock[0] = 1015.0
    backend.snapshot = snap(1015.0, replace(RUNNING, state="PENDING", restart_count=1))
    adapter.refresh()
    registry = CollectorRegistry()
    registry.register(adapter.collector)
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(generate_latest(registry).decode()) for s in family.samples}
    assert samples[("slurm_job_interruption_time_seconds",
                    (("interruption", "1"), ("job_id", "7"), ("state", "PENDING")))] == 1015.0
    assert samples[("slurm_job_restart_count", (("job_id", "7"),))] == 1


def test_the_simulators_node_failure_and_requeue_are_recorded_from_its_squeue_json():
    """The simulated Slurm face's squeue JSON (restart_cnt and all) through the real parser: a node
    that stops responding fails its job (NODE_FAIL, requeued at once): one interruption, on that node."""
    from simulator import slurm_face
    from simulator.jobs import TRAIN, JobGenerator, SimJob
    from simulator.scheduler import SimScheduler
    from simulator.topology import build_topology

    t0 = 1_800_000_000.0
    sim = SimScheduler(build_topology(2), JobGenerator(1, 2, 8), t0, queue_target=0)
    sim.jobs[1] = SimJob(1, "train", "alice", "llm", "batch", 8, 1, 86400.0, t0, 3600.0, TRAIN)
    ledger = InterruptionLedger()

    def poll(at: float) -> None:
        jobs = tuple(j for j in parse_jobs(slurm_face.squeue(sim)) if j.job_id == "1")
        ledger.observe(SchedulerSnapshot(jobs=jobs, nodes=(), taken_at=at, source=SourceInfo("simulator")))

    sim.tick(t0 + 1)
    poll(t0 + 1)
    node = sim.jobs[1].nodes[0]
    sim.set_responding(node, False)
    poll(t0 + 16)
    sim.tick(t0 + 20)
    poll(t0 + 31)
    [record] = ledger.records()
    assert (record.job_id, record.ordinal, record.nodes) == ("1", 1, (node,))
    assert t0 + 1 < record.time <= t0 + 16
