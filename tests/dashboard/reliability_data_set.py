"""One hand-built history for the goodput definitions (dashboard/goodput.py): three hours across a
UTC midnight, minute by minute, of what the scheduler adapter, the exporters and the rule pack's
alerts would have written, with the clusterwatch-reliability group evaluated over it.

- 201: 8 GPUs (n1, n2), checkpoints; interrupted twice: at 40 m beside an XID 79 on n2 (and an
  older NodeUnreachable on n1: the GPU fault is the more specific cause), waits 15 m, restarts on
  n3, n4; at 120 m with no alert on its nodes (a GpuEcc on n8, which it does not hold): unknown;
  waits 10 m. 10 minutes since its last checkpoint both times.
- 202: 4 GPUs (n5), no checkpoint signal; requeued after NODE_FAIL at 60 m beside an uncorrectable
  ECC error on n5; waits 10 m. Its redone work is unknown, its ETTR an upper bound.
- 203: 4 GPUs (n6), hung 75-120 m: JobHung active from 75 m, firing after its 15 m `for` at 90 m
  (its idle GPUs then not counted again), GPU 3 straggling at half the job's median 140-180 m.
- 204: 4 GPUs (n7), two GPUs idle 5-90 m: their 5-minute peak below the line from 10 m, so
  JobGpusIdle active from 10 m, firing after its 25 m `for` 35-90 m; JobHung pending 100-105 m and
  never firing (not hung).
"""
from __future__ import annotations

from pathlib import Path

from alerts.evaluator import load_rule_files
from alerts.evaluator.manager import RuleEvaluator
from cwkernel.series import STALE_NAN
from dashboard.params import TimeRange
from scheduler.checkpoint import CHECKPOINT_METRIC
from tsdb.store import Store

RULES = Path(__file__).resolve().parents[2] / "alerts" / "rules"
MIDNIGHT = 1_700_006_400.0  # 2023-11-15 00:00:00 UTC
T0 = MIDNIGHT - 90 * 60  # 22:30 UTC the day before
STEP = 60.0
MINUTES = 180
END = T0 + (MINUTES - 1) * STEP
RANGE = TimeRange(T0 - STEP, END)  # every sample of the history, three hours
NODES = tuple(f"n{i}" for i in range(1, 9))


def at(minute: float) -> float:
    return T0 + minute * STEP


ALICE_UID = "1001"  # the user every job of the data set runs as, and her uid

class History:
    def __init__(self) -> None:
        self.series: dict[tuple, tuple[list[int], list[float]]] = {}

    def spell(self, metric: str, first: int, last: int, value: float | None = None, values=None, **labels: str) -> None:
        """The series from minute ``first`` to ``last`` inclusive, then a staleness marker (as the
        scraper writes when a series goes away)."""
        stamps = [round(at(i) * 1000) for i in range(first, last + 1)]
        points = list(values) if values is not None else [value] * len(stamps)
        if last + 1 < MINUTES:
            stamps.append(round(at(last + 1) * 1000))
            points.append(STALE_NAN)
        old = self.series.setdefault(tuple(sorted({"__name__": metric, **labels}.items())), ([], []))
        old[0].extend(stamps)
        old[1].extend(points)

    def store(self) -> Store:
        store = Store(retention_s=1e9)
        for key, (stamps, points) in self.series.items():
            store.append_series(key, stamps, points)
        return store

    def job(self, job_id: str, gpus: int, running: list[tuple[int, int, tuple[str, ...]]],
            pending: list[tuple[int, int]], restarts: list[tuple[int, int, int]]) -> None:
        self.spell("slurm_job_gpus", 0, MINUTES - 1, float(gpus), job_id=job_id)
        for first, last, nodes in running:
            self.spell("slurm_job_info", first, last, 1.0, job_id=job_id, state="RUNNING", user="alice",
                       uid=ALICE_UID)
            self.spell("slurm_job_start_time_seconds", first, last, at(first), job_id=job_id)
            for node in nodes:
                for gpu in range(gpus // len(nodes)):
                    self.spell("slurm_job_gpu_info", first, last, 1.0, job_id=job_id, instance=node, gpu=str(gpu))
        for first, last in pending:
            self.spell("slurm_job_info", first, last, 1.0, job_id=job_id, state="PENDING", user="alice",
                       uid=ALICE_UID)
        self.spell("slurm_job_restart_count", 0, MINUTES - 1,
                   values=[next((n for a, b, n in restarts if a <= i <= b), 0) for i in range(MINUTES)], job_id=job_id)

    def interruption(self, job_id: str, ordinal: int, minute: int, state: str) -> None:
        self.spell("slurm_job_interruption_time_seconds", minute, MINUTES - 1, at(minute), job_id=job_id,
                   interruption=str(ordinal), state=state)

    def alert(self, alertname: str, first: int, last: int, **labels: str) -> None:
        self.spell("ALERTS", first, last, 1.0, alertname=alertname, alertstate="firing", **labels)

    def hung(self, job_id: str, active: int, firing: int | None, last: int, alertname: str = "JobHung",
             **extra: str) -> None:
        """JobHung (or ``alertname``, with its ``extra`` labels) as the evaluator writes it: pending
        from minute ``active``, firing from ``firing`` (None: never) to ``last``, with
        ALERTS_FOR_STATE holding the minute it became active."""
        labels = {"alertname": alertname, "job_id": job_id, "severity": "critical", **extra}
        end_pending = last if firing is None else firing - 1
        self.spell("ALERTS", active, end_pending, 1.0, alertstate="pending", **labels)
        if firing is not None:
            self.spell("ALERTS", firing, last, 1.0, alertstate="firing", **labels)
        self.spell("ALERTS_FOR_STATE", active, last, at(active), **labels)


def history() -> Store:
    h = History()
    for node in NODES:
        h.spell("slurm_node_gpus", 0, MINUTES - 1, 8.0, instance=node)
    h.job("201", 8, running=[(0, 39, ("n1", "n2")), (55, 119, ("n3", "n4")), (130, 179, ("n3", "n4"))],
          pending=[(40, 54), (120, 129)], restarts=[(40, 119, 1), (120, 179, 2)])
    h.interruption("201", 1, 40, "PENDING")
    h.interruption("201", 2, 120, "PENDING")
    h.spell(CHECKPOINT_METRIC, 30, 109, at(30), job_id="201", instance="n1")
    h.spell(CHECKPOINT_METRIC, 110, 179, at(110), job_id="201", instance="n3")
    h.alert("NodeUnreachable", 10, 15, instance="n1", severity="critical")
    h.alert("GpuXidRebootRequired", 38, 60, instance="n2", gpu="3", uuid="GPU-n2-3", xid="79", severity="critical")
    h.alert("GpuEccUncorrectableErrors", 115, 130, instance="n8", gpu="0", uuid="GPU-n8-0", severity="critical")

    h.job("202", 4, running=[(0, 59, ("n5",)), (70, 179, ("n5",))], pending=[(60, 69)], restarts=[(60, 179, 1)])
    h.interruption("202", 1, 60, "NODE_FAIL")
    h.alert("GpuEccUncorrectableErrors", 50, 65, instance="n5", gpu="1", uuid="GPU-n5-1", severity="critical")

    h.job("203", 4, running=[(0, 179, ("n6",))], pending=[], restarts=[])
    h.hung("203", active=75, firing=90, last=119)
    h.spell("job_id:gpus_idle:count", 85, 119, 4.0, job_id="203")
    h.alert("JobGpusIdle", 90, 119, job_id="203", severity="warning")
    h.spell("instance_gpu_job:gpu_activity:ratio", 0, MINUTES - 1, 0.4, instance="n6", gpu="3", job_id="203",
            measure="utilization")
    h.spell("job_id:gpu_activity:median", 0, MINUTES - 1, 0.8, job_id="203", measure="utilization")
    h.alert("GpuStragglerUtilization", 140, 179, instance="n6", gpu="3", uuid="GPU-n6-3", job_id="203",
            measure="utilization", severity="warning")

    h.job("204", 4, running=[(0, 179, ("n7",))], pending=[], restarts=[])
    h.spell("job_id:gpus_idle:count", 10, 89, 2.0, job_id="204")
    h.hung("204", active=10, firing=35, last=89, alertname="JobGpusIdle")
    h.hung("204", active=100, firing=None, last=105)
    return h.store()


def evaluated_history() -> Store:
    """The history with the clusterwatch-reliability group evaluated every minute over it."""
    from tsdb.client import LocalQueryClient
    from tsdb.promql.engine import Engine

    store = history()
    client = LocalQueryClient(Engine(store))
    groups = [g for g in load_rule_files([RULES / "reliability.yml"])]
    evaluator = RuleEvaluator(groups, client, writer=store.append_rule_output)
    for i in range(MINUTES):
        evaluator.evaluate(at(i))
    return store


# What the definitions make of it, in GPU-minutes (docstring above).
EXPECTED_LOST_GPU_MINUTES = {
    "201": {"restart_wait": 25 * 8, "redone_work": 20 * 8, "hung": 0, "straggler": 0, "idle_held": 0},
    "202": {"restart_wait": 10 * 4, "redone_work": None, "hung": 0, "straggler": 0, "idle_held": 0},
    "203": {"restart_wait": 0, "redone_work": 0, "hung": 45 * 4, "straggler": 40 * 2, "idle_held": 0},
    "204": {"restart_wait": 0, "redone_work": 0, "hung": 0, "straggler": 0, "idle_held": 85 * 2},
}
EXPECTED_ETTR = {"201": 135 / 180, "202": 170 / 180, "203": 460 / 720, "204": 550 / 720}
EXPECTED_CLUSTER_ETTR = (135 * 8 + 170 * 4 + 460 + 550) / (180 * 8 + 3 * 720)
