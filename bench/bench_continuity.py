"""A simulated month on the reference fleet: what each automation arm does to training continuity.

The same month is run once per arm: the same job stream (bench/continuity_workload.py: large
multi-node training runs of 64-512 GPUs lasting days, and small jobs) and the same fault stream
(bench/continuity_faults.py: Llama 3's published rate of unexpected interruptions per GPU-day and
its Table 5 cause mix, or three times the rate), both drawn from the seed before the run.

Every arm runs the real detection and response path at the real intervals, on the simulator's
explicit clock (bench/bench_remediation.py's ``Day``): every node's exporter and the scheduler
adapter's ``slurm_*`` metrics are scraped every 15 s (``clusterwatch serve``'s scrape configs
and the shipped pack are written for 15 s) into the embedded store; each rule group of the
shipped pack is evaluated at its own interval (15 s, 30 s, 1 m, 2 m) by the real evaluator
(``RuleEvaluator.run_due``), the alerts go through the notification pipeline built from the
shipped alerting configuration, and its ``remediation`` hook feeds the engine (every 30 s, the
policy's interval), which acts through the scheduler adapter on the simulator's Slurm face.

Arms:
- ``off``: nobody automates; an operator reads the alerts and carries out the runbook (the
  shipped ladders without the checkpoint step) after a delay: 30 minutes between 08:00 and 18:00
  (simulated time, UTC), 4 hours at night. Modelled as the engine receiving each notification
  that late.
- ``auto``: the shipped policy in auto, its ladders without the ``checkpoint`` step (automation
  as it was before that step).
- ``auto-checkpoint``: the shipped policy as it is, with the ``checkpoint`` step before every
  requeue (remediation/steps.py); reported as not available where the step is missing.
The simulated jobs checkpoint every 30 minutes of progress and on ``scancel --signal=USR1
--batch``; their marks reach the nodes' exporters through textfile directories, as on a node.

What is counted, per arm. With the shared goodput definitions (dashboard/goodput.py, what the
/reliability page and ``clusterwatch report`` show), applied to the arm's store in half-hour
windows: cluster ETTR, GPU-hours lost by cause, interruptions by class. Beside them, the ground
truth from the simulator's ledger (simulator/workload.py), each loss attributed to the Table 5
cause of the latest fault on the job's nodes during its run: ETTR = GPU-time of progress kept
(done less what interruptions threw away since the last checkpoint) / GPU-time of jobs running
or waiting to resume after an interruption (a crashed job nobody requeues counts until the run
ends); GPU-hours lost to faults (progress thrown away + allocation held with no progress);
interruptions (runs ended or hung by a fault). And: faulty nodes drained (nodes whose fault needs
a hardware action), healthy nodes drained (goal 0), fault-to-drain median and p95, work lost to
requeues. Where the two ETTRs differ, the page misses (or invents) something the ledger saw.

    .venv/bin/python -m bench.bench_continuity [--days 30] [--seed 1] [--rate published|stress] [--arms off,auto,auto-checkpoint] [--nodes 140] [--episode [hbm|lost-gpu]]

The table is printed with its SHA-256: the same arguments give the same table.
"""
from __future__ import annotations

import argparse
import hashlib
import math
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_remediation import T0, Day  # noqa: E402
from dashboard import goodput  # noqa: E402
from dashboard.params import TimeRange  # noqa: E402
from bench.common import percentile  # noqa: E402
from bench.continuity_faults import CAUSES, SOURCE, PlannedFault, draw_faults, expected_count  # noqa: E402
from bench.continuity_workload import month_stream  # noqa: E402
from remediation import policy as policy_module, steps as remediation_steps  # noqa: E402
from remediation.component import HOOK_NAME  # noqa: E402
from simulator.jobs import FAILED, PENDING, RUNNING, SimJob  # noqa: E402
from simulator.workload import WorkLedger  # noqa: E402

SCRAPE_S = 15.0  # the shipped scrape interval (clusterwatch scrape-config, alerts/rules/*.yml)
ENGINE_S = 30.0  # the shipped policy's evaluation_interval
ARMS = ("off", "auto", "auto-checkpoint")
# Causes whose fault needs no hardware action: draining their node would be a mistake.
NO_HARDWARE_ACTION = {"software bug", "silent data corruption", "dependency"}
UNATTRIBUTED = "unattributed"
# The shared goodput definitions (dashboard/goodput.py) are applied to the store in windows of
# ACCOUNT_S, each ACCOUNT_LAG_S behind the clock so that the alerts after an interruption that
# explain it are in (goodput.EVIDENCE_AFTER); the store keeps 2 h, enough for the hour before.
ACCOUNT_S = 1800.0
ACCOUNT_LAG_S = goodput.AFTER_S


EPISODE_AT = 300.0
# --episode KIND: (Table 5 cause, simulator fault request without its node and GPU).
EPISODES: dict[str, tuple[str, dict[str, Any]]] = {
    # The job keeps running on a GPU that needs a reset: the case for asking it to checkpoint first.
    "hbm": ("GPU HBM3 memory", {"kind": "row_remap", "state": "pending"}),
    # The GPU falls off the bus: the job is dead, so no arm may wait for a checkpoint.
    "lost-gpu": ("faulty GPU", {"kind": "xid", "xid": 79}),
}


def episode_faults(nodes: int, seed: int, stream, kind: str = "hbm") -> list[PlannedFault]:
    """``--episode KIND``: instead of the drawn stream, one fault 5 simulated minutes in, on a GPU
    of the largest job running then with an hour of work or more left (``EPISODES``: a pending HBM
    row remap, which leaves the job running until its GPU is reset, or XID 79, which hangs it): one
    interruption, at the real intervals on the full fleet, where a month cannot run. The job is
    found by running the same fleet and stream to that time in the arms' own steps (no arm acts
    before a fault, so every arm has it there)."""
    from simulator.fleet import Fleet
    from simulator.workload import Workload

    fleet = Fleet(nodes=nodes, seed=seed, speed=0, start=T0, warm=False)
    try:
        Workload(stream).attach(fleet)
        while fleet.clock.now() < T0 + EPISODE_AT:
            fleet.advance(SCRAPE_S)
        running = [job for job in fleet.scheduler.jobs.values() if job.state == RUNNING and job.gpus]
        job = max(running, key=lambda j: (j.run_seconds - j.progress >= 3600, j.total_gpus, -j.job_id))
        node = sorted(job.gpus)[0]
        cause, request = EPISODES[kind]
        return [PlannedFault(T0 + EPISODE_AT, cause, {**request, "node": node, "gpu": job.gpus[node][0]})]
    finally:
        fleet.stop()


def policy_without_checkpoint() -> dict[str, Any]:
    """The shipped ladders less their ``checkpoint`` step: automation as it was before it."""
    raw = policy_module.yaml.safe_load(policy_module.DEFAULT_POLICY.read_text())
    return {"ladders": {name: [step for step in steps if step != "checkpoint"] for name, steps in raw["ladders"].items()}}


def checkpoint_step_available() -> bool:
    """The arm needs the step and a shipped ladder that takes it; anything less is not that arm."""
    return hasattr(remediation_steps, "checkpoint") and "checkpoint" in policy_module.DEFAULT_POLICY.read_text()


def operator_delay(at: float) -> float:
    """How long the operator of the ``off`` arm takes to act on a notification sent at ``at``."""
    hour = (at % 86400) / 3600
    return 1800.0 if 8 <= hour < 18 else 4 * 3600.0


class CauseLedger(WorkLedger):
    """The workload's ledger, with each loss attributed to a cause and the GPU-time jobs were
    scheduled for (the denominator of ETTR)."""

    def __init__(self, cause_of: Any) -> None:
        super().__init__()
        self.cause_of = cause_of  # (job) -> cause name
        self.by_cause: dict[str, float] = {}
        self.interruptions: dict[str, int] = {}
        self.requeue_lost_gpu_s = 0.0
        self._pending_loss: dict[int, float] = {}

    def _charge(self, job: SimJob, gpu_seconds: float) -> str:
        cause = self.cause_of(job)
        self.by_cause[cause] = self.by_cause.get(cause, 0.0) + gpu_seconds
        return cause

    def progress(self, job: SimJob, gained: float, dt: float) -> None:
        before = self.wasted_gpu_s
        super().progress(job, gained, dt)
        if self.wasted_gpu_s > before:
            self._charge(job, self.wasted_gpu_s - before)

    def stalled(self, job: SimJob, dt: float) -> None:
        super().stalled(job, dt)
        self._charge(job, dt * job.total_gpus)

    def lost(self, job: SimJob, gpu_seconds: float) -> None:
        super().lost(job, gpu_seconds)
        # A fault on the job's nodes during this run: its end is that fault's doing (a requeue of
        # a job still running on a faulty GPU, too, which the simulator does not mark as hit).
        if job.fault_hit or self.cause_of(job) != UNATTRIBUTED:
            cause = self._charge(job, gpu_seconds)
            self.interruptions[cause] = self.interruptions.get(cause, 0) + 1
        self._pending_loss[job.job_id] = gpu_seconds

    def requeued(self, job: SimJob) -> None:
        super().requeued(job)
        self.requeue_lost_gpu_s += self._pending_loss.pop(job.job_id, 0.0)


@dataclass
class ArmResult:
    arm: str
    available: bool = True
    ettr: float = float("nan")  # the shared definition (dashboard/goodput.py) over the store
    lost_gpu_h: dict[str, float] = field(default_factory=dict)  # ... its lost time by cause
    interruptions_by_class: dict[str, int] = field(default_factory=dict)  # ... its interruptions
    ettr_truth: float = float("nan")  # the simulator's ledger
    lost_by_cause_gpu_h: dict[str, float] = field(default_factory=dict)  # ledger, by Table 5 cause
    interruptions: int = 0  # ledger
    faulty_drained: tuple[int, int] = (0, 0)
    healthy_drained: list[str] = field(default_factory=list)
    fault_to_drain_s: tuple[float, float] | None = None  # median, p95
    requeue_lost_gpu_h: float = 0.0
    idle_out_of_service_gpu_h: float = 0.0
    faults_injected: list[tuple[float, str, str]] = field(default_factory=list)  # (time, node, kind)
    wall_s: float = 0.0


class Month(Day):
    """One arm of the month: ``Day``'s fleet, store, evaluator, pipeline and engine, scraped every
    15 s with each rule group on its own interval."""

    def __init__(self, arm: str, nodes: int, seed: int, days: float, faults: list[PlannedFault], stream) -> None:
        # The jobs' checkpoint marks reach the exporters' textfile collectors through files, as on a node.
        self._textfiles = tempfile.TemporaryDirectory(prefix="cw-continuity-")
        super().__init__("auto", nodes=nodes, seed=seed, hours=days * 24, scrape=SCRAPE_S, engine_step=SCRAPE_S,
                         faults=(), stream=stream, textfile_root=self._textfiles.name,
                         policy_overrides=None if arm == "auto-checkpoint" else policy_without_checkpoint())
        self.arm = arm
        self.goodput = {"wall": 0.0, "productive": 0.0, "lost": {}, "classes": {}}
        self._accounted = T0  # the goodput windows cover [T0, _accounted)
        self.planned = faults
        for planned in faults:
            self.add_fault(planned.at, planned.request)
        self._cause_at = {(p.request["node"], p.at): p.cause for p in faults}
        ledger = CauseLedger(self._cause_of)
        ledger.now = self.workload.ledger.now
        self.workload.ledger = ledger
        self._next_engine = T0
        self._last = T0
        self._gpus: dict[int, int] = {}
        self.scheduled_gpu_s = 0.0
        self._operator: list[tuple[float, int, Any]] = []  # (deliver at, order, notification)
        if arm == "off":
            self.pipeline.register_hook(HOOK_NAME, self._to_operator)

    def _cause_of(self, job: SimJob) -> str:
        since = job.start_time or 0.0
        latest = None
        for fault in self.fleet.faults.all():
            if fault.node in job.gpus and fault.started_at >= since and (latest is None or fault.started_at >= latest.started_at):
                latest = fault
        if latest is None:
            return UNATTRIBUTED
        return self._cause_at.get((latest.node, latest.started_at), latest.kind)

    def _to_operator(self, notification: Any) -> None:
        now = self.fleet.clock.now()
        self._operator.append((now + operator_delay(now), len(self._operator), notification))

    def evaluate_rules(self, now: float) -> None:
        """Each group at its own interval, as ``serve`` runs them."""
        self.evaluator.run_due(now)

    def step(self, now: float) -> None:
        self.inject_due(now)
        self._account(now)
        self.scrape_if_due(now)
        self.pipeline.flush()
        self.pipeline.deliver()
        while self._operator and self._operator[0][0] <= now:
            self.engine.handle(self._operator.pop(0)[2])
        if now >= self._next_engine:
            self._next_engine += ENGINE_S
            self.engine.evaluate()
        self._count_out_of_service()
        if now - ACCOUNT_LAG_S >= self._accounted + ACCOUNT_S:
            self._account_goodput(self._accounted + ACCOUNT_S)

    def _account_goodput(self, until: float) -> None:
        """The shared definitions over [accounted, until): what the /reliability page would say."""
        window = goodput.account(self.engine.query, TimeRange(self._accounted, until))
        self._accounted = until
        for job in window.jobs.values():
            self.goodput["wall"] += job.wall_gpu_seconds
            self.goodput["productive"] += job.productive_gpu_seconds
        for cause, hours in window.lost_gpu_hours().items():
            self.goodput["lost"][cause] = self.goodput["lost"].get(cause, 0.0) + hours
        for cls, count in window.by_class().items():
            self.goodput["classes"][cls] = self.goodput["classes"].get(cls, 0) + count

    def run(self, progress: bool = False):
        result = super().run(progress)
        if self.now > self._accounted:
            self._account_goodput(self.now)  # the last window, its later evidence cut short
        return result

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._textfiles.cleanup()

    def _account(self, now: float) -> None:
        """GPU-time of jobs running or waiting to resume after an interruption (ETTR's denominator)."""
        dt, self._last = now - self._last, now
        stopped = self.workload.ledger.failed_by_fault
        for job in self.fleet.scheduler.jobs.values():
            self._gpus[job.job_id] = job.total_gpus
            if job.state == RUNNING or (job.state == PENDING and job.restart_count > 0) or \
                    (job.state == FAILED and job.job_id in stopped):
                self.scheduled_gpu_s += dt * job.total_gpus
        # A crashed job forgotten by the scheduler's listing is still a stopped run.
        for job_id in stopped:
            if job_id not in self.fleet.scheduler.jobs:
                self.scheduled_gpu_s += dt * self._gpus.get(job_id, 0)

    def outcome(self, wall_s: float) -> ArmResult:
        ledger: CauseLedger = self.workload.ledger
        result = self.result
        kept = ledger.done_gpu_s - sum(ledger.lost_gpu_s.values())
        causes = {(p.request["node"]): p.cause for p in self.planned}
        needs_action = {p.request["node"] for p in self.planned if p.cause not in NO_HARDWARE_ACTION}
        drained_faulty = [n for n in needs_action if n in result.drains]
        delays = sorted(result.drains[n] - result.fault_times[n] for n in drained_faulty if n in result.fault_times)
        wall = self.goodput["wall"]
        return ArmResult(
            arm=self.arm,
            ettr=self.goodput["productive"] / wall if wall else float("nan"),
            lost_gpu_h=dict(self.goodput["lost"]),
            interruptions_by_class={c: n for c, n in self.goodput["classes"].items() if n},
            ettr_truth=kept / self.scheduled_gpu_s if self.scheduled_gpu_s else float("nan"),
            lost_by_cause_gpu_h={cause: seconds / 3600 for cause, seconds in sorted(ledger.by_cause.items())},
            interruptions=sum(ledger.interruptions.values()),  # a job hung at the end was charged by finish()
            faulty_drained=(len(drained_faulty), len(needs_action)),
            healthy_drained=sorted(n for n in result.drains if n not in causes),
            fault_to_drain_s=(statistics.median(delays), percentile(delays, 95)) if delays else None,
            requeue_lost_gpu_h=ledger.requeue_lost_gpu_s / 3600,
            idle_out_of_service_gpu_h=sum(ledger.out_of_service_idle_gpu_s.values()) / 3600,
            faults_injected=[(f.started_at, f.node, f.kind) for f in self.fleet.faults.all()],
            wall_s=wall_s,
        )


def run_arm(arm: str, nodes: int, seed: int, days: float, faults: list[PlannedFault], stream,
            progress: bool = False) -> ArmResult:
    if arm == "auto-checkpoint" and not checkpoint_step_available():
        print("auto-checkpoint: checkpoint step not available (remediation/steps.py has none); arm not run",
              file=sys.stderr, flush=True)
        return ArmResult(arm, available=False)
    started = time.perf_counter()
    month = Month(arm, nodes, seed, days, faults, stream)
    try:
        month.run(progress)
        return month.outcome(time.perf_counter() - started)
    finally:
        month.close()


def run_month(arms: list[str], nodes: int = 140, seed: int = 1, days: float = 30.0, rate: str = "published",
              faults: list[PlannedFault] | None = None, progress: bool = False,
              episode: str | None = None) -> dict[str, ArmResult]:
    """Every arm over the same streams; ``faults`` replaces the drawn stream (tests), as does
    ``episode`` (``episode_faults``)."""
    from simulator.topology import build_topology

    topology = build_topology(nodes)
    stream = month_stream(seed, nodes, T0, days * 86400)
    if episode:
        faults = episode_faults(nodes, seed, stream, episode)
    if faults is None:
        faults = draw_faults(seed, [s.name for s in topology], topology[0].gpus, topology[0].ib_ports, T0,
                             days * 86400, rate)
    return {arm: run_arm(arm, nodes, seed, days, faults, stream, progress) for arm in arms}


def measure_rounds(nodes: int, seed: int, rounds: int) -> str:
    """``--measure``: where one 15 s round of the auto arm goes (after a 5-minute warm-up, so
    that every node has caught up since its start), and what a month of them costs."""
    month = Month("auto", nodes, seed, 1.0, [], month_stream(seed, nodes, T0, 86400.0))
    parts = {"scrape": 0.0, "rules": 0.0}

    def timed(name: str, call: Any) -> Any:
        def run(now: float) -> Any:
            started = time.perf_counter()
            try:
                return call(now)
            finally:
                parts[name] += time.perf_counter() - started
        return run

    month.scrape, month.evaluate_rules = timed("scrape", month.scrape), timed("rules", month.evaluate_rules)
    try:
        month.advance_to(T0 + 300)
        parts.update(scrape=0.0, rules=0.0)
        first, started = month.result.cycles, time.perf_counter()
        month.advance_to(T0 + 300 + rounds * SCRAPE_S)
        wall, done = time.perf_counter() - started, month.result.cycles - first
    finally:
        month.close()
    per = wall / done
    return (f"{nodes} nodes: {done} rounds of {SCRAPE_S:g} s in {wall:.1f} s = {per:.2f} s per round (scrape "
            f"{parts['scrape'] / done:.2f} s, rule groups {parts['rules'] / done:.3f} s, the rest "
            f"{(wall - parts['scrape'] - parts['rules']) / done:.3f} s); 30 days = {30 * 86400 / SCRAPE_S:,.0f} rounds: "
            f"{per * 30 * 86400 / SCRAPE_S / 3600:.0f} h per arm")


def _hours(value: float) -> str:
    return f"{value:,.1f}"


def _duration(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def table(results: dict[str, ArmResult]) -> str:
    """The per-arm table (markdown); deterministic for a seed (no wall times in it)."""
    arms = list(results)
    causes = sorted({c for r in results.values() for c in r.lost_by_cause_gpu_h},
                    key=lambda c: ([x.name for x in CAUSES] + [c]).index(c))

    def row(name: str, cell) -> str:
        return "| " + name + " | " + " | ".join(cell(results[a]) if results[a].available else "not available"
                                                for a in arms) + " |"

    classes = sorted({c for r in results.values() for c in r.interruptions_by_class})
    percent = lambda value: "-" if math.isnan(value) else f"{100 * value:.2f} %"  # noqa: E731
    lines = ["| figure | " + " | ".join(arms) + " |", "|---|" + "---|" * len(arms),
             row("cluster ETTR (dashboard/goodput.py over the store, as /reliability shows it)", lambda r: percent(r.ettr))]
    lines += [row(f"  GPU-hours lost: {goodput.CAUSES[cause]}", lambda r, c=cause: _hours(r.lost_gpu_h.get(c, 0.0)))
              for cause in goodput.CAUSES]
    lines += [row("interruptions by class (goodput: the alert that explains each)",
                  lambda r: ", ".join(f"{c} {r.interruptions_by_class[c]}" for c in classes
                                      if c in r.interruptions_by_class) or "0")]
    lines += [row("cluster ETTR, ground truth (the simulator's ledger)", lambda r: percent(r.ettr_truth)),
              row("GPU-hours lost to faults, ground truth (all causes)", lambda r: _hours(sum(r.lost_by_cause_gpu_h.values())))]
    lines += [row(f"  lost to {cause}", lambda r, c=cause: _hours(r.lost_by_cause_gpu_h.get(c, 0.0))) for cause in causes]
    lines += [
        row("interruptions, ground truth (job runs ended or hung by a fault)", lambda r: str(r.interruptions)),
        row("faulty nodes drained (of those needing hardware action)", lambda r: f"{r.faulty_drained[0]} of {r.faulty_drained[1]}"),
        row("healthy nodes drained (goal 0)", lambda r: str(len(r.healthy_drained))),
        row("fault to drain, median / p95", lambda r: "-" if r.fault_to_drain_s is None else
            f"{_duration(r.fault_to_drain_s[0])} / {_duration(r.fault_to_drain_s[1])}"),
        row("work lost to requeues (GPU-hours)", lambda r: _hours(r.requeue_lost_gpu_h)),
        row("idle GPU-hours on drained or down nodes", lambda r: _hours(r.idle_out_of_service_gpu_h)),
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rate", choices=("published", "stress"), default="published")
    parser.add_argument("--arms", default=",".join(ARMS))
    parser.add_argument("--nodes", type=int, default=140)
    parser.add_argument("--episode", nargs="?", const="hbm", choices=sorted(EPISODES),
                        help="one fault 5 minutes in on the largest job, instead of the stream: hbm (a pending row "
                             "remap, the default) or lost-gpu (XID 79)")
    parser.add_argument("--measure", type=int, metavar="ROUNDS",
                        help="only time ROUNDS rounds of the auto arm and project a month from them")
    args = parser.parse_args()
    if args.measure:
        print(measure_rounds(args.nodes, args.seed, args.measure))
        return 0
    arms = args.arms.split(",")
    unknown = sorted(set(arms) - set(ARMS))
    if unknown:
        parser.error(f"unknown arm(s) {', '.join(unknown)}; known: {', '.join(ARMS)}")
    gpus = args.nodes * 8
    print(f"{args.nodes} nodes x 8 GPUs, {args.days:g} days, seed {args.seed}, rate {args.rate} ({SOURCE}): "
          f"{expected_count(args.rate, gpus, args.days):.1f} unexpected interruptions expected", flush=True)
    started = time.perf_counter()
    results = run_month(arms, args.nodes, args.seed, args.days, args.rate, progress=True, episode=args.episode)
    first = next((r for r in results.values() if r.available), None)
    if first is not None:
        print(f"faults drawn: {len(first.faults_injected)}; same stream in every arm: "
              f"{all(r.faults_injected == first.faults_injected for r in results.values() if r.available)}")
    text = table(results)
    print(text)
    print(f"table sha256: {hashlib.sha256(text.encode()).hexdigest()}")
    for result in results.values():
        if result.available:
            print(f"{result.arm}: {result.wall_s:.0f} s wall; healthy nodes drained: {result.healthy_drained or 'none'}")
    print(f"wall time: {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
