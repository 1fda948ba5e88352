"""A simulated day of GPU faults on 5% of the nodes, with the remediation engine in auto, in
dry-run and off, on the same fixed job stream: what automation saves in GPU-hours.

Each run is the same simulated day: the simulator's fleet fed by one job stream drawn from the
seed before the run (simulator/workload.py: submit times, shapes and GPU-hours of work fixed,
whatever automation does), the same faults at the same times, and a ledger of what the faults
cost (work lost since the last checkpoint, allocation held by hung or crashing jobs, idle GPUs on
nodes out of service).

The alerts come from the real rule evaluator running the shipped rule pack over the embedded
store, as ``clusterwatch serve`` wires them: every ``--scrape`` seconds of simulated time every
node's exporter is scraped (plus the scheduler adapter's ``slurm_*`` metrics, as its LocalSource
does) and every rule group is evaluated; the evaluator's alerts go through the notification
pipeline built from the shipped alerting configuration (alerts/notify/default.yml), whose
``remediation`` hook hands them to the engine. The pipeline (group_wait, outbox delivery) and
the engine run every ``--engine-step`` seconds (the policy's evaluation_interval). Everything is
on the simulator's explicit clock. The engine acts through the real scheduler adapter on the
simulator's Slurm face over HTTP. With automation off nobody acts on the alerts, so that run
skips the scrapes and the evaluator (dry-run, which evaluates them, must show the same fleet).

    .venv/bin/python -m bench.bench_remediation [--nodes 60] [--seed 7] [--scrape 240] [--hours 24] [--modes auto,dry-run,off]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import re
import statistics
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from alerts.evaluator.component import build_evaluator  # noqa: E402
from alerts.notify.component import build_pipeline  # noqa: E402
from remediation import policy as policy_module  # noqa: E402
from remediation.component import HOOK_NAME  # noqa: E402
from remediation.engine import RemediationEngine  # noqa: E402
from remediation.store import RemediationStore  # noqa: E402
from remediation.suppress import SilenceSuppressor  # noqa: E402
from scheduler import build_scheduler  # noqa: E402
from simulator.fleet import Fleet  # noqa: E402
from simulator.server import SimulatorHTTPServer  # noqa: E402
from simulator.workload import JobSpec, Workload, fixed_stream  # noqa: E402
from tsdb.client import LocalQueryClient  # noqa: E402
from tsdb.local import PageScraper  # noqa: E402
from tsdb.promql.engine import Engine  # noqa: E402
from tsdb.store import Store  # noqa: E402

T0 = 1_700_000_000.0
RETENTION_S = 7200.0  # the XID rules look back an hour (offset 1h, [1h]); two bound the memory
# (hour of the day, fault); the day uses the first 5% of the nodes' worth of them (at least one),
# one node each, from faulty_nodes(). XID 79 and a lost GPU hang the job on the GPU; XID 48 and a
# row-remap failure crash it (simulator/workload.py).
FAULTS = (
    (2.0, {"kind": "xid", "gpu": 3, "xid": 79}),
    (8.0, {"kind": "xid", "gpu": 1, "xid": 48}),
    (14.0, {"kind": "row_remap", "gpu": 6, "state": "failure"}),
    (19.0, {"kind": "gpu_lost", "gpu": 5}),
)
MODES = ("auto", "dry-run", "off")


def faulty_nodes(nodes: int, count: int | None = None) -> list[str]:
    count = count or max(1, round(nodes * 0.05))
    stride = max(1, nodes // count)
    return [f"gpu-{1 + i * stride:03d}" for i in range(count)]


def fault_schedule(nodes: int, faults=None) -> list[tuple[float, dict]]:
    if faults is None:
        faults = FAULTS[:max(1, round(nodes * 0.05))]
    targets = faulty_nodes(nodes, len(faults)) if faults else []
    return sorted((T0 + hour * 3600, {**fault, "node": node}) for (hour, fault), node in zip(faults, targets))


@dataclass
class Result:
    mode: str
    faulty: list[str]
    ledger: dict[str, Any] = field(default_factory=dict)
    submitted: list[tuple[int, float, float]] = field(default_factory=list)  # (job id, submit time, GPU-hours)
    fault_times: dict[str, float] = field(default_factory=dict)  # node -> when its fault started
    drains: dict[str, float] = field(default_factory=dict)  # node -> first drain (done or would)
    cw_drained_at_end: list[str] = field(default_factory=list)
    max_out_of_service: int = 0
    max_out_percent: float = 0.0
    budget: tuple[int, int] = (0, 0)
    cases: list[dict[str, Any]] = field(default_factory=list)
    decisions: list[tuple[str, str, str, str, str]] = field(default_factory=list)  # (alert, node, action, result, reason)
    requeued_by_engine: list[str] = field(default_factory=list)
    alerts_fired: dict[str, int] = field(default_factory=dict)
    cycles: int = 0
    seconds: float = 0.0

    @property
    def healthy_drained(self) -> list[str]:
        return sorted(set(self.drains) - set(self.faulty))

    def node_outcomes(self) -> dict[str, str]:
        """Per faulty node, where its last case ended: resumed (verified), repair (kept drained,
        ticket), or the state and step it was still in when the day ended."""
        outcomes = {}
        first = first_drains(self)
        for case in self.cases:
            # The case of the fault's own alert (a later straggler alert on the node has its own).
            if case["node"] in self.faulty and case["alert"] == first.get(case["node"], ("",))[0]:
                state = case["state"]
                outcomes[case["node"]] = {"resolved": "verified and resumed", "repair": "kept drained for repair"}.get(
                    state, f"{state} at {case['step']}")
        return outcomes

    def summary(self) -> dict[str, Any]:
        delays = [self.drains[n] - self.fault_times[n] for n in self.faulty if n in self.drains and n in self.fault_times]
        states: dict[str, int] = {}
        for case in self.cases:
            states[case["state"]] = states.get(case["state"], 0) + 1
        return {
            **self.ledger,
            "faulty_nodes_drained": f"{sum(1 for n in self.faulty if n in self.drains)} of {len(self.faulty)}",
            "healthy_nodes_drained": self.healthy_drained,
            "fault_to_drain_s": {"median": statistics.median(delays), "max": max(delays)} if delays else None,
            "max_out_of_service": self.max_out_of_service,
            "max_out_of_service_percent": round(self.max_out_percent, 1),
            "budget": {"max_drained_nodes": self.budget[0], "max_drained_percent": self.budget[1]},
            "jobs_requeued_by_engine": len(set(self.requeued_by_engine)),
            "first_drains": {node: list(decision) for node, decision in sorted(first_drains(self).items())},
            "cases_by_state": states,
            "faulty_node_outcomes": self.node_outcomes(),
            "cases": self.cases,
            "alerts_fired": self.alerts_fired,
            "cycles": self.cycles, "run_seconds": round(self.seconds, 1),
        }


class Day:
    """One simulated day in one automation mode."""

    def __init__(self, mode: str, nodes: int = 80, seed: int = 7, hours: float = 24.0, scrape: float = 120.0,
                 engine_step: float = 30.0, load: float = 0.8, faults=None,
                 policy_overrides: dict[str, Any] | None = None, stream: list[JobSpec] | None = None,
                 textfile_root: str | None = None) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        self.mode, self.hours, self.scrape_s, self.engine_step = mode, hours, scrape, engine_step
        self.schedule = fault_schedule(nodes, faults)
        # textfile_root: the jobs' checkpoint marks, read by the nodes' exporters (simulator/checkpoints.py).
        self.fleet = Fleet(nodes=nodes, seed=seed, speed=0, start=T0, warm=False, textfile_root=textfile_root)
        # ``stream``: another bench's job stream (bench/bench_continuity.py), drawn from its seed too.
        self.workload = Workload(stream if stream is not None else fixed_stream(seed, nodes, T0, hours * 3600, load=load)
                                 ).attach(self.fleet)
        self.server = SimulatorHTTPServer(("127.0.0.1", 0), self.fleet)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.result = Result(mode, sorted({request["node"] for _, request in self.schedule}))
        raw = policy_module.yaml.safe_load(policy_module.DEFAULT_POLICY.read_text())
        for key, value in (policy_overrides or {}).items():
            section, _, name = key.partition(".")
            if name:
                raw[section][name] = value
            else:
                raw[section] = value
        self.policy = policy_module.parse(raw, "bench")
        self.result.budget = (self.policy.guards.max_drained_nodes, self.policy.guards.max_drained_percent)
        self.engine: RemediationEngine | None = None
        self.now = self._next_scrape = T0
        self.evaluator = self.pipeline = self.adapter = None
        if mode == "off":
            return
        clock = self.fleet.clock.now
        self.adapter = build_scheduler("simulator", f"{self.server.base_url}/slurm", min_interval=15,
                                       wall_clock=clock, monotonic=clock)
        self.store = Store(retention_s=RETENTION_S, clock=clock)  # its appends are stamped in simulated time
        self.scraper = PageScraper(self.store, self.fleet)
        query = LocalQueryClient(Engine(self.store))
        self.evaluator = build_evaluator(None, query, self.store.append_scrape, None, scrape)
        self.pipeline = build_pipeline(None, None, clock=clock)
        self._fired: set[tuple[str, str]] = set()  # (alertname, fingerprint) of every alert that fired

        def notify(alerts: list) -> None:
            self._fired.update((a.labels["alertname"], a.fingerprint) for a in alerts if a.status == "firing")
            self.pipeline.notify(alerts)

        self.evaluator.notify = notify
        self.engine = RemediationEngine(self.policy, self.adapter, RemediationStore(), query, mode=mode, clock=clock,
                                        suppressor=SilenceSuppressor(self.pipeline.silences))
        self.pipeline.register_hook(HOOK_NAME, self.engine.handle)

    def add_fault(self, at: float, request: dict) -> None:
        """One more fault (its node named) at simulated time ``at``."""
        self.schedule = sorted([*self.schedule, (at, request)], key=lambda item: item[0])
        self.result.faulty = sorted({*self.result.faulty, request["node"]})

    # ---- the day ------------------------------------------------------------------------------

    def scrape(self, now: float) -> None:
        stamp = int(now * 1000)
        self.scraper.scrape(stamp)  # a rebooting node does not answer: up 0
        # The scheduler's own metrics (slurm_job_info, ...), as serve's LocalSource ingests them.
        self.adapter.refresh()
        rows = []
        for family in self.adapter.collector.collect():
            for sample in family.samples:
                rows.append((tuple(sorted({**sample.labels, "__name__": sample.name, "job": "slurm"}.items())),
                             float(sample.value)))
        self.store.append_scrape("scheduler", stamp, rows)

    def step(self, now: float) -> None:
        self.inject_due(now)
        if self.engine is not None:
            self.scrape_if_due(now)
            self.pipeline.flush()
            self.pipeline.deliver()
            self.engine.evaluate()
        self._count_out_of_service()

    def inject_due(self, now: float) -> None:
        while self.schedule and self.schedule[0][0] <= now:
            fault = self.fleet.inject(self.schedule.pop(0)[1])
            self.result.fault_times.setdefault(fault.node, fault.started_at)

    def scrape_if_due(self, now: float) -> None:
        if now >= self._next_scrape:
            self._next_scrape += self.scrape_s
            self.scrape(now)
            self.evaluate_rules(now)
            self.result.cycles += 1
            if self.result.cycles % 10 == 0:
                self.store.apply_retention(int(now * 1000))

    def evaluate_rules(self, now: float) -> None:
        """Every group at every scrape (``--scrape`` stands for all their intervals here)."""
        self.evaluator.evaluate(now)

    def _count_out_of_service(self) -> None:
        nodes = self.fleet.scheduler.nodes.values()
        out = [n for n in nodes if n.drain or n.state == "down"]
        self.result.max_out_of_service = max(self.result.max_out_of_service, len(out))
        for partition in {p for n in nodes for p in n.partitions}:
            members = [n for n in nodes if partition in n.partitions]
            share = 100.0 * sum(1 for n in out if partition in n.partitions) / len(members)
            # The guard lets a partition smaller than 100/percent nodes lose one node.
            if len(members) * self.policy.guards.max_drained_percent >= 100:
                self.result.max_out_percent = max(self.result.max_out_percent, share)

    def advance_to(self, end: float, progress: bool = False) -> None:
        started = time.perf_counter()
        while self.now < end:
            hour = int((self.now - T0) // 3600)
            self.now = self.fleet.advance(self.engine_step)
            self.step(self.now)
            if progress and int((self.now - T0) // 3600) != hour:
                print(f"{self.mode}: simulated hour {hour + 1} after {self.result.seconds + time.perf_counter() - started:.0f} s",
                      file=sys.stderr, flush=True)
        self.result.seconds += time.perf_counter() - started

    def run(self, progress: bool = False) -> Result:
        self.advance_to(T0 + self.hours * 3600, progress)
        self.fleet.tick()
        self._collect()
        return self.result


    def _collect(self) -> None:
        result = self.result
        result.ledger = self.workload.finish().summary(result.faulty)
        result.submitted = [(s.job_id, s.submit_time, round(s.gpu_hours, 3)) for s in self.workload.submitted]
        prefix = self.policy.reason_prefix
        result.cw_drained_at_end = sorted(n.name for n in self.fleet.scheduler.nodes.values()
                                          if n.drain and n.reason.startswith(prefix))
        if self.engine is None:
            return
        for entry in reversed(self.engine.store.audit_entries(limit=1_000_000)):
            if entry.result in ("done", "would") or entry.result.startswith("not done"):
                found = re.search(re.escape(prefix) + r" [\w.:-]+(?: gpu \d+)?", entry.detail)
                reason = found.group(0) if entry.action == "drain" and found else ""  # without the case id
                result.decisions.append((entry.alert, entry.node or "", entry.action, entry.result, reason))
            if entry.action == "drain" and entry.result in ("done", "would") and entry.node:
                result.drains.setdefault(entry.node, entry.time)
            if entry.action == "requeue" and entry.result == "done" and entry.job_id:
                result.requeued_by_engine.append(entry.job_id)
        result.cases = [{"id": c.id, "node": c.node, "alert": c.alertname, "class": c.alert_class, "state": c.state,
                         "step": c.ladder[c.step] if c.step < len(c.ladder) else None, "lemon": c.lemon}
                        for c in reversed(self.engine.store.cases(limit=100_000))]
        for name, _ in self._fired:
            result.alerts_fired[name] = result.alerts_fired.get(name, 0) + 1

    def close(self) -> None:
        if self.pipeline is not None:
            self.pipeline.close()
        self.server.shutdown()
        self.fleet.stop()


def run_day(mode: str, progress: bool = False, **options: Any) -> Result:
    day = Day(mode, **options)
    try:
        return day.run(progress)
    finally:
        day.close()


def first_drains(result: Result) -> dict[str, tuple[str, str]]:
    """Per node, the first drain decision (alert, reason) that was carried out or would have been."""
    first: dict[str, tuple[str, str]] = {}
    for alert, node, action, outcome, reason in result.decisions:
        if action == "drain" and outcome in ("done", "would"):
            first.setdefault(node, (alert, reason))
    return first


def compare(runs: dict[str, Result]) -> dict[str, Any]:
    auto, dry, off = runs.get("auto"), runs.get("dry-run"), runs.get("off")
    report: dict[str, Any] = {}
    if auto and off:
        report["same_job_stream"] = auto.submitted == off.submitted and (dry is None or dry.submitted == off.submitted)
        report["fault_work_saved_gpu_h"] = round(
            (off.ledger["work_lost_to_faults_gpu_h"] + off.ledger["allocation_wasted_on_faults_gpu_h"])
            - (auto.ledger["work_lost_to_faults_gpu_h"] + auto.ledger["allocation_wasted_on_faults_gpu_h"]), 1)
    if dry and off:
        report["dry_run_fleet_same_as_off"] = dry.ledger == off.ledger
    if auto and dry:
        # Up to the first action, auto and dry-run see the same fleet; after it they differ (a
        # reboot clears alerts that go on firing in dry-run), so the first decisions are compared.
        report["dry_run_same_first_drain_decisions"] = first_drains(auto) == first_drains(dry)
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=60)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--scrape", type=float, default=240.0, help="scrape + rule evaluation interval (s)")
    parser.add_argument("--engine-step", type=float, default=30.0, help="pipeline + engine interval (s)")
    parser.add_argument("--load", type=float, default=0.8, help="offered load of the job stream (0-1)")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--out", help="also write the JSON report here")
    parser.add_argument("--parallel", action="store_true", help="one process per mode")
    args = parser.parse_args()
    modes = args.modes.split(",")
    options = dict(nodes=args.nodes, seed=args.seed, hours=args.hours, scrape=args.scrape,
                   engine_step=args.engine_step, load=args.load, progress=True)
    if args.parallel:
        with ProcessPoolExecutor(max_workers=len(modes)) as pool:
            futures = {mode: pool.submit(run_day, mode, **options) for mode in modes}
            runs = {mode: future.result() for mode, future in futures.items()}
    else:
        runs = {mode: run_day(mode, **options) for mode in modes}
    for mode, result in runs.items():
        print(f"{mode}: {result.seconds:.0f} s", file=sys.stderr, flush=True)
    report = {"nodes": args.nodes, "seed": args.seed, "hours": args.hours, "scrape_s": args.scrape,
              "engine_step_s": args.engine_step, "load": args.load,
              "faults": [{"at_h": round((t - T0) / 3600, 2), **f} for t, f in fault_schedule(args.nodes)],
              "jobs_submitted": len(next(iter(runs.values())).submitted),
              "stream_gpu_h": round(sum(g for *_, g in next(iter(runs.values())).submitted), 1),
              "stream_digest": hashlib.sha256(repr(next(iter(runs.values())).submitted).encode()).hexdigest()[:16],
              "modes": {mode: r.summary() for mode, r in runs.items()}, **compare(runs)}
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    auto = runs.get("auto")
    ok = True
    if auto is not None:
        ok = not auto.healthy_drained and set(auto.faulty) <= set(auto.drains) and \
            auto.max_out_of_service <= auto.budget[0]
    return 0 if ok and all(v is not False for v in compare(runs).values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
