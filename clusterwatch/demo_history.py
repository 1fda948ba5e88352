"""The demo's past: the last hours of the simulated cluster, run fast before ``clusterwatch demo``
serves it, so that the pages have something true to show on first load.

The fleet the demo will serve is built with its clock ``hours`` in the past and frozen; this
module moves it forward to now in steps, injecting faults at an illustrative rate (far above a
real cluster's: one every quarter of an hour), and runs what ``serve`` runs over it: the scrape into
the embedded store, the shipped rule pack, the notification
pipeline built from the shipped alerting configuration and the remediation engine in dry-run,
acting (or rather, saying what it would do) through the scheduler adapter on the fleet's own
Slurm face. Everything is stamped with the fleet's simulated time, which ends at the real now.

What it leaves in ``state_dir`` is what ``serve`` restores at start: the store's snapshot (the
series, recorded series and ``ALERTS``), the evaluator's alert state (alerts still firing carry on),
the pipeline's database (the firing/resolved history) and the engine's (dry-run cases and their
audit). Jobs hit by a fault were interrupted in the fleet itself (a node going down requeues its
jobs, which resume from their checkpoint), so the scheduler's view agrees with the history.

Cost: scraping a simulated node costs about 20 ms here (mostly the exporter's collection and
parsing its page), so the past is scraped every two minutes and only from the nodes the faults
hit plus two healthy ones for comparison; the rest of the fleet's series start when the demo
does. Every window the pack reads is 5 minutes or more, so it still holds two samples or more. The
pack's monitoring group, which would read the unscraped nodes as missing, is not run in the past.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alerts.evaluator.component import build_evaluator
from alerts.notify.component import build_pipeline
from remediation import policy as policy_module
from remediation.component import DB_FILE, HOOK_NAME
from remediation.engine import RemediationEngine
from remediation.store import RemediationStore
from remediation.suppress import SilenceSuppressor
from scheduler import build_scheduler
from simulator.fleet import Fleet
from tsdb.client import LocalQueryClient
from tsdb.local import LocalSource, PageScraper
from tsdb.promql.engine import Engine
from tsdb.snapshot import save_snapshot
from tsdb.store import Store

ALERT_STATE_FILE = "alert-state.sqlite"  # serve's default name in --state-dir
# Rule groups the past does not run: the monitoring of the monitoring. The past scrapes only some
# nodes (module docstring), so GpuMetricsMissing fired for every other node the scheduler lists,
# and the demo opened on a hundred false "no GPU metrics" alerts; from its start, serve runs them.
UNSIMULATED_GROUPS = frozenset({"monitoring"})
SNAPSHOT_FILE = "history.snapshot"
# The fleet, the scrape, the rule groups, the pipeline and the engine move in steps of two minutes:
# a group on a shorter interval would only re-read the same scrape (serve evaluates each at its own),
# and every window the pack reads ([5m] and longer) still holds two samples or more.
STEP_S = 120.0
# (minutes before now, where in the fleet (0-1), fault): what happened in the last hours. Some
# are over by now (their alerts resolved), some still hold (firing at first load).
FAULTS: tuple[tuple[float, float | None, dict[str, Any]], ...] = (
    (115, 0.15, {"kind": "xid", "gpu": 3, "xid": 79}),
    # None: a GPU of the largest running job, which keeps running on it: the checkpoint step's case.
    (100, None, {"kind": "row_remap", "gpu": None, "state": "pending"}),
    (85, 0.32, {"kind": "ecc", "gpu": 2, "type": "uncorrected", "count": 1}),
    (70, 0.64, {"kind": "thermal", "gpu": 1, "temperature": 95, "duration": 1800}),
    (55, 0.80, {"kind": "ib_flapping", "port": 1, "period": 180, "duration": 1200}),
    # None: a node of the largest running job, which Slurm requeues (recent enough that the
    # scheduler still lists it, whatever became of it since).
    (45, None, {"kind": "node_down", "duration": 900}),
    (25, 0.51, {"kind": "xid", "gpu": 4, "xid": 48}),
    (10, 0.93, {"kind": "ib_link_down", "port": 3, "duration": 3600}),
)
HEALTHY_SCRAPED = 2  # healthy nodes scraped beside the faulty ones, so a page can compare
# A job's checkpoint marks are on its batch host (its first node), which the faults may not hit:
# the batch hosts of the jobs on the faulty nodes are scraped too, so that the pages and the
# checkpoint step see the marks of the jobs the faults interrupt. At most this many, to keep the
# past's start-up cost (a node black-holing job after job would bring a new host every few minutes).
BATCH_HOSTS_SCRAPED = 12


@dataclass
class History:
    """What the past left, for the demo's banner and its tests."""

    hours: float
    faults: list[dict[str, Any]] = field(default_factory=list)
    scraped_nodes: list[str] = field(default_factory=list)
    alerts_fired: set[str] = field(default_factory=set)
    cases: int = 0
    jobs_interrupted: set[int] = field(default_factory=set)  # ended by a failure (FAILED, NODE_FAIL)
    jobs_resumed: set[int] = field(default_factory=set)  # started again after a requeue
    seconds: float = 0.0


def fault_schedule(nodes: list[str], hours: float, now: float) -> list[tuple[float, dict[str, Any]]]:
    """The faults of the last ``hours`` before ``now`` on this fleet, in time order; a fault without
    a place has its node chosen when it happens (``_place``)."""
    schedule = []
    for minutes, where, fault in FAULTS:
        if minutes <= hours * 60:
            node = nodes[min(len(nodes) - 1, int(where * len(nodes)))] if where is not None else None
            schedule.append((now - minutes * 60, {**fault, "node": node}))
    return sorted(schedule, key=lambda item: item[0])


def _place(fleet: Fleet, request: dict[str, Any]) -> dict[str, Any]:
    """A node of the largest running job (the first by name), so that the fault interrupts a
    multi-node run that Slurm requeues and that resumes from its checkpoint; a GPU fault without
    its GPU, on the first of that job's GPUs there."""
    if request["node"] is not None:
        return request
    jobs = sorted((j for j in fleet.scheduler.jobs.values() if j.state == "RUNNING" and j.gpus),
                  key=lambda j: (-j.total_gpus, j.job_id))
    node = sorted(jobs[0].gpus)[0] if jobs else fleet.node_names()[0]
    placed = {**request, "node": node}
    if "gpu" in request and request["gpu"] is None:
        placed["gpu"] = jobs[0].gpus[node][0] if jobs else 0
    return placed


def _scrape_batch_hosts(fleet: Fleet, pages: "_Pages", faulty_now: list[str], limit: int) -> None:
    """Add the batch hosts of the jobs running on the faulty nodes to the scraped ones, up to ``limit``."""
    hit = set(faulty_now)
    for job in sorted(fleet.scheduler.jobs.values(), key=lambda j: j.job_id):
        if len(pages.nodes) >= limit:
            return
        if job.state == "RUNNING" and job.nodes and hit & set(job.gpus) and job.nodes[0] not in pages.nodes:
            pages.nodes.append(job.nodes[0])


class _Pages:
    """The fleet's pages, limited to the nodes the past is scraped from."""

    def __init__(self, fleet: Fleet, nodes: list[str]) -> None:
        self.fleet, self.nodes = fleet, nodes

    def node_names(self) -> list[str]:
        return self.nodes

    def render_metrics(self, node: str) -> bytes:
        return self.fleet.render_metrics(node)


def run_history(fleet: Fleet, slurm_url: str, state_dir: Path, hours: float, retention_s: float = 6 * 3600.0,
                job: str = "clusterwatch") -> History:
    """Move ``fleet`` (frozen, its clock ``hours`` before the real now) to the real now, running the
    pack, pipeline and dry-run engine over it, and leave their state in ``state_dir``."""
    started = time.perf_counter()
    clock = fleet.clock.now
    end = clock() + hours * 3600
    names = fleet.node_names()
    schedule = fault_schedule(names, hours, end)
    faulty = list(dict.fromkeys(request["node"] for _, request in schedule if request["node"] is not None))
    healthy = [n for n in names if n not in faulty][:HEALTHY_SCRAPED]
    history = History(hours, scraped_nodes=faulty + healthy)
    store = Store(retention_s=retention_s)
    query = LocalQueryClient(Engine(store))
    evaluator = build_evaluator(None, query, store.append_rule_output, state_dir / ALERT_STATE_FILE,
                                skip_groups=UNSIMULATED_GROUPS)
    pipeline = build_pipeline(None, str(state_dir), clock=clock)
    adapter = build_scheduler("simulator", slurm_url, min_interval=15, wall_clock=clock, monotonic=clock)
    engine = RemediationEngine(policy_module.load(None), adapter, RemediationStore(state_dir / DB_FILE), query,
                               mode="dry-run", clock=clock, suppressor=SilenceSuppressor(pipeline.silences))
    pipeline.register_hook(HOOK_NAME, engine.handle)

    def notify(alerts: list) -> None:
        history.alerts_fired.update(a.labels["alertname"] for a in alerts if a.status == "firing")
        pipeline.notify(alerts)

    evaluator.notify = notify
    scheduler_source = LocalSource(store, "scheduler", adapter.collector, 15, "slurm")
    pages = _Pages(fleet, history.scraped_nodes)
    # The labels serve's scrape of the fleet's file_sd gives each node (rack), so the past's series
    # and the live ones are the same series.
    target_labels = {group["labels"]["instance"]: {k: v for k, v in group["labels"].items()
                                                   if not k.startswith("__") and k != "instance"}
                     for group in fleet.file_sd(slurm_url)}
    scraper = PageScraper(store, pages, job, target_labels)

    def on_job(event: str, job: Any) -> None:
        if event == "end" and job.state in ("FAILED", "NODE_FAIL"):
            history.jobs_interrupted.add(job.job_id)
        elif event == "start" and job.restart_count:
            history.jobs_resumed.add(job.job_id)

    fleet.scheduler.listeners.append(on_job)
    now = clock()
    try:
        while now < end:
            now = fleet.advance(min(STEP_S, end - now))
            while schedule and schedule[0][0] <= now:
                fault = fleet.inject(_place(fleet, schedule.pop(0)[1]))
                history.faults.append(fault.to_json())
                if fault.node not in pages.nodes:
                    pages.nodes.append(fault.node)
            _scrape_batch_hosts(fleet, pages, faulty_now=[f["node"] for f in history.faults], limit=len(faulty) +
                                len(healthy) + BATCH_HOSTS_SCRAPED)
            stamp = int(now * 1000)
            scraper.scrape(stamp)
            adapter.refresh()
            store.append_scrape(scheduler_source.target, stamp, scheduler_source.samples())
            evaluator.run_due(now)
            pipeline.flush()
            pipeline.deliver()
            engine.evaluate()
        history.cases = len(engine.store.cases(limit=10_000))
        save_snapshot(store, state_dir / SNAPSHOT_FILE)
    finally:
        fleet.scheduler.listeners.remove(on_job)
        evaluator.stop()  # closes the alert state file
        engine.stop()
        engine.store.close()
        pipeline.close()
    history.seconds = time.perf_counter() - started
    return history
