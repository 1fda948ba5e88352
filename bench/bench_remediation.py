"""A simulated day of GPU faults on 5% of the nodes, with the remediation engine in auto, in
dry-run and off, through the simulator's Slurm face over HTTP (the real scheduler adapter).

Alerts are derived from the simulator's fault book, each at the time its rule in
alerts/rules/hardware.yml would fire (a scrape and evaluation step, plus the rule's ``for``):
running the rule evaluator over a scrape of all 80 nodes every step costs about a second of CPU
per simulated minute here, so this bench feeds the engine the alerts directly. Verification is
real PromQL over an embedded store holding scrapes of the nodes being verified.

    .venv/bin/python -m bench.bench_remediation [--nodes 80] [--seed 7] [--step 60]
"""
from __future__ import annotations

import argparse
import json
import statistics
import threading
from dataclasses import dataclass, field
from typing import Any

from alerts.model import Alert
from alerts.remediation import policy as policy_module
from alerts.remediation.engine import RemediationEngine
from alerts.remediation.store import RemediationStore
from scheduler import build_scheduler
from simulator.fleet import Fleet
from simulator.server import SimulatorHTTPServer
from tsdb.client import LocalQueryClient
from tsdb.exposition import parse_exposition
from tsdb.promql.engine import Engine
from tsdb.store import Store

T0 = 1_700_000_000.0
DAY = 86400.0
# (hour of the day, fault); nodes are filled in from the seed-independent list below.
FAULTS = (
    (2.0, {"kind": "xid", "gpu": 3, "xid": 79}),
    (7.5, {"kind": "gpu_lost", "gpu": 5}),
    (12.0, {"kind": "xid", "gpu": 1, "xid": 48}),
    (18.0, {"kind": "row_remap", "gpu": 6, "state": "failure"}),
)
# alertname and `for` of the rule that fires for each fault (alerts/rules/hardware.yml).
RULES = {"xid79": ("GpuXidRebootRequired", 0.0), "xid48": ("GpuXidResetRequired", 0.0),
         "gpu_lost": ("GpuLost", 60.0), "row_remap": ("GpuRowRemapFailed", 0.0)}
XID_ALERT_WINDOW = 3600.0  # increase(...[1h]) > 0 keeps an XID alert firing for an hour


def faulty_nodes(nodes: int) -> list[str]:
    count = max(1, round(nodes * 0.05))
    stride = nodes // count
    return [f"gpu-{1 + i * stride:03d}" for i in range(count)]


def derived_alerts(fleet: Fleet, now: float, step: float) -> list[Alert]:
    """The alerts a rule evaluation at ``now`` would report firing or resolved."""
    alerts = []
    for fault in fleet.faults.all():
        key = f"xid{fault.params['xid']}" if fault.kind == "xid" else fault.kind
        if key not in RULES:
            continue
        name, hold = RULES[key]
        fires_at = fault.started_at + step + hold  # noticed at the next scrape and evaluation, then `for`
        if fault.kind == "xid":
            ends_at = fault.started_at + XID_ALERT_WINDOW
        else:
            ends_at = fault.cleared_at if fault.cleared_at is not None else float("inf")
        if now < fires_at:
            continue
        labels = {"alertname": name, "instance": fault.node, "gpu": str(fault.gpu), "severity": "critical"}
        alerts.append(Alert(labels, starts_at=fires_at, ends_at=ends_at if now >= ends_at else None))
    return alerts


@dataclass
class Run:
    mode: str
    lost_gpu_hours: float = 0.0
    drain_delays: list[float] = field(default_factory=list)
    drained: set[str] = field(default_factory=set)
    max_out_of_service: int = 0
    budget_limit: int = 0
    cases: list[dict[str, Any]] = field(default_factory=list)
    decisions: list[tuple[str, str, str]] = field(default_factory=list)
    requeued_jobs: int = 0
    crashed_jobs: int = 0


def scrape(fleet: Fleet, store: Store, nodes: set[str], now: float, last: dict[str, int]) -> None:
    for node in nodes:
        try:
            page = parse_exposition(fleet.render_metrics(node).decode(), False)
        except Exception:  # noqa: BLE001 - a rebooting node does not answer: no scrape, as in production
            continue
        stamp = int(now * 1000)
        if last.get(node, -1) >= stamp:
            continue
        last[node] = stamp
        samples = [(tuple(sorted({**dict(labels), "__name__": name, "instance": node}.items())), value)
                   for name, labels, value, _ in page.samples]
        store.append_scrape(node, stamp, samples)


def run(mode: str, nodes: int, seed: int, step: float) -> Run:
    fleet = Fleet(nodes=nodes, seed=seed, speed=0, start=T0)
    server = SimulatorHTTPServer(("127.0.0.1", 0), fleet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    result = Run(mode)
    try:
        adapter = build_scheduler("simulator", f"{server.base_url}/slurm", min_interval=15,
                                  wall_clock=fleet.clock.now, monotonic=fleet.clock.now)
        raw = policy_module.yaml.safe_load(policy_module.DEFAULT_POLICY.read_text())
        # Without the rule evaluator there are no ALERTS series: verify the GPUs themselves.
        raw["verify"] = ['count by (instance) (gpu_up{instance="{node}"} == 1) >= 8']
        policy = policy_module.parse(raw, "bench")
        result.budget_limit = policy.guards.max_drained_nodes
        metrics = Store(retention_s=1e9)
        engine = RemediationEngine(policy, adapter, RemediationStore(), LocalQueryClient(Engine(metrics)),
                                   mode=mode, clock=fleet.clock.now) if mode != "off" else None
        targets = faulty_nodes(nodes)
        schedule = sorted((T0 + hour * 3600, {**fault, "node": node})
                          for (hour, fault), node in zip(FAULTS, targets))
        last_scrape: dict[str, int] = {}
        now = T0
        while now < T0 + DAY:
            now = fleet.advance(step)
            while schedule and schedule[0][0] <= now:
                fleet.inject(schedule.pop(0)[1])
            if engine is None:
                continue
            under_check = {c.node for c in engine.store.open_cases() if c.node and
                           c.current_step in ("evidence", "wait_return", "verify")}
            scrape(fleet, metrics, under_check, now, last_scrape)
            engine.receive(derived_alerts(fleet, now, step))
            engine.evaluate()
            truth = fleet.ground_truth()
            out = sum(1 for n in truth["nodes"] if "DRAIN" in n["state_flags"] or n["state"] == "down")
            result.max_out_of_service = max(result.max_out_of_service, out)
        result.lost_gpu_hours = fleet.scheduler.lost_gpu_seconds / 3600
        truth = fleet.ground_truth()
        result.crashed_jobs = sum(1 for j in truth["jobs"] if set(j["nodes"] or []) & set(targets)
                                  and j["restart_count"] > 0)
        if engine is not None:
            entries = list(reversed(engine.store.audit_entries(limit=100000)))
            starts = {f.node: f.started_at for f in fleet.faults.all()}
            for entry in entries:
                if entry.action in ("drain", "reboot", "requeue", "resume", "ticket") and \
                        entry.result in ("done", "would"):
                    result.decisions.append((entry.alert, entry.node or "", entry.action))
                if entry.action == "drain" and entry.result in ("done", "would") and entry.node not in result.drained:
                    result.drained.add(entry.node or "")
                    result.drain_delays.append(entry.time - starts[entry.node])
                if entry.action == "requeue" and entry.result == "done":
                    result.requeued_jobs += 1
            result.cases = [{"id": c.id, "node": c.node, "alert": c.alertname, "state": c.state,
                             "lemon": c.lemon} for c in engine.store.cases()]
    finally:
        server.shutdown()
        fleet.stop()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=80)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--step", type=float, default=60.0)
    args = parser.parse_args()
    runs = {mode: run(mode, args.nodes, args.seed, args.step) for mode in ("auto", "dry-run", "off")}
    auto, dry, off = runs["auto"], runs["dry-run"], runs["off"]
    faulty = set(faulty_nodes(args.nodes))
    node_decisions = lambda r: sorted(d for d in r.decisions if d[2] == "drain")  # noqa: E731
    report = {
        "nodes": args.nodes, "faulty_nodes": sorted(faulty), "step_s": args.step,
        "drained": sorted(auto.drained), "healthy_drained": sorted(auto.drained - faulty),
        "every_faulty_drained": faulty <= auto.drained,
        "max_out_of_service": auto.max_out_of_service, "budget_limit": auto.budget_limit,
        "fault_to_drain_s": {"median": statistics.median(auto.drain_delays), "max": max(auto.drain_delays)},
        "requeued_jobs": auto.requeued_jobs,
        "cases": auto.cases,
        "lost_gpu_hours": {"auto": round(auto.lost_gpu_hours, 1), "off": round(off.lost_gpu_hours, 1),
                           "dry-run": round(dry.lost_gpu_hours, 1)},
        "dry_run_same_drain_decisions": node_decisions(auto) == node_decisions(dry),
        "dry_run_decisions": node_decisions(dry),
    }
    print(json.dumps(report, indent=2))
    assert not report["healthy_drained"] and report["every_faulty_drained"]
    assert auto.max_out_of_service <= auto.budget_limit
    assert all(c["state"] in ("resolved", "repair") for c in auto.cases)



if __name__ == "__main__":
    main()
