"""The whole simulated cluster: nodes, scheduler, faults and simulated time, behind one lock.

The scheduler is advanced by a background ticker (and before every read); each node's readings
are brought forward lazily, when the node is scraped or the ground truth is asked for, so a fleet
of thousands of nodes costs only what is looked at.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any


from cwkernel.errors import ConfigError
from cwkernel import configfile
from simulator import slurm_face
from simulator.checkpoints import CheckpointFiles
from simulator.clock import SimClock
from simulator.fabric import CableFaults, FatTree, SimFabricRunner, leaf_uplinks
from simulator.faults import KINDS, Fault, FaultBook, FaultError, parse_fault_request, scheduled_at
from exporter.fabric import FABRIC_JOB
from exporter.fabric.topology import LANE_RATES
from simulator.gpu_model import GpuConditions
from simulator.jobs import FAILED, JobGenerator, SimJob
from simulator.node import SMALL_FLEET, XID_WAIT_MS_LARGE_FLEET, NodeFaultState, SimulatedNode
from simulator.scheduler import SimScheduler
from simulator.topology import build_topology
from simulator.validation import RequestError, number_in

log = logging.getLogger(__name__)

# XIDs after which the application on the GPU is dead (NVIDIA's catalog: RESTART_APP or worse).
CRASHING_XIDS = {13, 31, 43, 45, 48, 64, 74, 79, 94, 95, 119, 120}
# XIDs after which the GPU needs a reset or a reboot before it can run work again.
RESET_XIDS = {48, 74, 79, 95, 119, 120}
# One request moves simulated time by at most a day: catching up costs a scheduler pass per
# simulated minute under the fleet's lock (about a second for 140 nodes), and scrapes wait on it.
MAX_ADVANCE_SECONDS = 86400
HOST_CABLE_FAULTS = ("ib_link_down", "ib_flapping", "ib_symbol_errors")  # host-port faults the leaf sees too
FABRIC_INSTANCE = "ib-mgmt-01"  # the simulated management host that runs the fabric collector
FABRIC_SWEEP_INTERVAL = 15.0  # real seconds between the simulated fabric collector's sweeps
LEAF_FAULT_FLAP_SECONDS = 300.0


class NodeUnreachable(Exception):
    """The node is down: its exporter does not answer at all."""


class ExporterHung(Exception):
    """The node's exporter accepts the connection and never answers."""


class Fleet:
    def __init__(self, nodes: int = 140, gpus_per_node: int = 8, seed: int = 0, speed: float = 1.0,
                 start: float | None = None, ib_ports: int = 4, warm: bool = True,
                 textfile_root: str | None = None) -> None:
        """``textfile_root``: a directory under which each node gets a textfile directory that its
        exporter reads and its jobs write their checkpoint marks into (simulator/checkpoints.py)."""
        self.seed = seed
        self.clock = SimClock(start=start, speed=speed)
        now = self.clock.now()
        self.lock = threading.RLock()
        self.topology = build_topology(nodes, gpus_per_node, ib_ports)
        xid_wait = None if nodes <= SMALL_FLEET else XID_WAIT_MS_LARGE_FLEET
        self.checkpoint_files = CheckpointFiles(textfile_root, [s.name for s in self.topology]) \
            if textfile_root else None
        self.nodes = {spec.name: SimulatedNode(spec, seed, now, xid_wait, self._textfile_dir(spec.name))
                      for spec in self.topology}
        self.scheduler = SimScheduler(self.topology, JobGenerator(seed, nodes, gpus_per_node), now)
        self.scheduler.listeners.append(self._on_scheduler_event)
        if self.checkpoint_files is not None:
            self.scheduler.listeners.append(self.checkpoint_files.on_event)
        self.faults = FaultBook()
        uplinks = leaf_uplinks(self.topology)
        self.hardware = {name: dataclasses.replace(node.hardware(), leaf_uplinks=uplinks[name])
                         for name, node in self.nodes.items()}
        self._fabric: FatTree | None = None  # built on first use: a 16,384-node fleet need not pay for it
        self._fabric_exporter = None
        self._scheduled: list[tuple[float, dict]] = []  # (simulated time, fault request) from a scenario
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        if warm:
            self.scheduler.warm_start(now, gpu_ok=self._gpu_ok)

    # ---- time ----------------------------------------------------------------------------------

    def tick(self) -> float:
        """Advance the scheduler and scheduled faults to the clock's now."""
        with self.lock:
            now = self.clock.now()
            while self._scheduled and self._scheduled[0][0] <= now:
                _, request = self._scheduled.pop(0)
                try:
                    self._inject(request, now)
                except FaultError as exc:
                    log.error("scheduled fault %s refused: %s", request, exc)
            for fault in self.faults.expire(now):
                self._apply_lasting(fault.node)
            self._update_job_slowdowns()
            self.scheduler.tick(now, self._gpu_ok)
            return now

    def advance(self, seconds: object) -> float:
        """Move simulated time forward (tests, demos) and catch everything up.

        Raises ``RequestError`` naming ``seconds`` unless it is a number from 0 to a day.
        """
        seconds = number_in("seconds", seconds, 0, MAX_ADVANCE_SECONDS, " (one simulated day; advance again for more)")
        steps = max(1, int(seconds // 60))
        for _ in range(steps):
            self.clock.advance(seconds / steps)
            self.tick()
        return self.clock.now()

    def start(self, interval: float = 1.0) -> None:
        def run() -> None:
            while not self._stop.wait(interval):
                try:
                    self.tick()
                except Exception:  # noqa: BLE001 - the simulation must keep running for its observers
                    log.exception("simulator tick failed")

        self._ticker = threading.Thread(target=run, name="simulator-tick", daemon=True)
        self._ticker.start()

    def stop(self) -> None:
        self._stop.set()
        if self._ticker:
            self._ticker.join(timeout=5)
        if self._fabric_exporter is not None:
            self._fabric_exporter.close()
        # In parallel: each exporter's XID thread takes up to its wait timeout to notice the stop.
        with ThreadPoolExecutor(max_workers=64) as pool:
            list(pool.map(lambda node: node.close(), self.nodes.values()))

    def _textfile_dir(self, node: str) -> str | None:
        return str(self.checkpoint_files.directory(node)) if self.checkpoint_files is not None else None

    def _gpu_ok(self, node: str, gpu: int) -> bool:
        return self.nodes[node].gpu_ok(gpu)

    def _update_job_slowdowns(self) -> None:
        factors = {name: node.faults.slowdown() for name, node in self.nodes.items()}
        for job in self.scheduler.jobs.values():
            if job.gpus:
                base = 0.7 if job.straggler is not None else 1.0
                job.slowdown = base * min(factors[n] for n in job.gpus)

    def _on_scheduler_event(self, event: str, subject: Any) -> None:
        if event == "reboot":
            node = self.nodes[subject.name]
            node.reboot(self.scheduler.now)
            for fault in self.faults.active(subject.name):
                if KINDS[fault.kind].cleared_by_reboot or (fault.kind == "row_remap" and fault.params["state"] == "pending"):
                    self.faults.clear(fault, self.scheduler.now, "reboot")
            self._apply_lasting(subject.name)

    # ---- faults --------------------------------------------------------------------------------

    def inject(self, request: dict) -> Fault:
        with self.lock:
            return self._inject(request, self.tick())

    def _inject(self, request: dict, now: float) -> Fault:
        kind, parsed = parse_fault_request(request, self.hardware)
        fault = self.faults.add(kind, parsed, now)
        node = self.nodes[fault.node]
        node.update(now, lambda gpu: self.scheduler.job_of(fault.node, gpu))
        if kind.lasting:
            self._apply_lasting(fault.node)
            if fault.kind == "gpu_lost":
                self._crash_job_on(fault.node, fault.gpu)
            if fault.kind == "row_remap":
                self._remap(node, fault)
        else:
            self._apply_event(node, fault)
        node.changed()
        log.info("fault %s injected: %s on %s", fault.id, fault.kind, fault.node)
        return fault

    def clear(self, fault_id: int) -> tuple[int, str]:
        with self.lock:
            fault = self.faults.get(fault_id)
            if fault is None:
                return 404, "no such fault"
            if not KINDS[fault.kind].lasting:
                return 409, f"a {fault.kind} fault happened once and cannot be cleared"
            if fault.cleared_at is not None:
                return 409, f"already cleared ({fault.cleared_by})"
            self.faults.clear(fault, self.clock.now(), "api")
            self._apply_lasting(fault.node)
            return 200, "cleared"

    def _apply_event(self, node: SimulatedNode, fault: Fault) -> None:
        if fault.kind == "exporter_restart":
            node.restart_exporter()
            return
        gpu = node.state.gpu(fault.gpu)
        with node.state.lock:
            if fault.kind == "xid":
                xid = fault.params["xid"]
                node.state.inject_xid(fault.gpu, xid, int(fault.started_at * 1e6))
                if xid == 48:
                    gpu.ecc_dbe_volatile += 1
                    gpu.ecc_dbe_aggregate += 1
                    gpu.retired_dbe += 1
                    gpu.retired_pending = True
                if xid == 63:
                    gpu.remapped_uncorrectable += 1
                    gpu.remap_pending = True
                if xid == 64:
                    gpu.remap_failure = True
                if xid in RESET_XIDS:
                    node.broken_gpus.add(fault.gpu)
                if xid == 79:
                    gpu.lost = True  # fell off the bus: every NVML call on it now fails
                if xid in CRASHING_XIDS:
                    self._crash_job_on(fault.node, fault.gpu)
            elif fault.kind == "ecc":
                count = fault.params["count"]
                if fault.params["type"] == "corrected":
                    gpu.ecc_sbe_volatile += count
                    gpu.ecc_sbe_aggregate += count
                else:
                    gpu.ecc_dbe_volatile += count
                    gpu.ecc_dbe_aggregate += count
                    gpu.retired_dbe += count
                    gpu.retired_pending = True
                    node.state.inject_xid(fault.gpu, 48, int(fault.started_at * 1e6))
                    node.broken_gpus.add(fault.gpu)
                    self._crash_job_on(fault.node, fault.gpu)

    def _remap(self, node: SimulatedNode, fault: Fault) -> None:
        gpu = node.state.gpu(fault.gpu)
        with node.state.lock:
            gpu.remapped_uncorrectable += 1
            if fault.params["state"] == "pending":
                gpu.remap_pending = True
            else:
                gpu.remap_failure = True
                node.broken_gpus.add(fault.gpu)

    def _crash_job_on(self, node: str, gpu: int) -> None:
        job = self.scheduler.job_of(node, gpu)
        if job is not None:
            self.scheduler.fail_job(job.job_id, FAILED, exit_code=1)

    def _apply_lasting(self, node_name: str) -> None:
        """Rebuild the node's fault conditions from the active faults in the book."""
        node = self.nodes[node_name]
        node.changed()
        state = NodeFaultState()
        for fault in self.faults.active(node_name):
            if fault.kind in ("thermal", "power", "nvlink_errors"):
                conditions = state.gpu.setdefault(fault.gpu, GpuConditions())
                if fault.kind == "thermal":
                    conditions.thermal_c = fault.params["temperature"]
                elif fault.kind == "power":
                    conditions.power_brake = True
                else:
                    conditions.nvlink_error_rate = float(fault.params["rate"])
                    conditions.nvlink_link = fault.params["link"]
            elif fault.kind == "ib_link_down":
                state.ports_down.add(fault.port)
            elif fault.kind == "ib_flapping":
                state.flapping[fault.port] = (fault.started_at, fault.params["period"])
            elif fault.kind == "ib_symbol_errors":
                state.symbol_error_rate[fault.port] = float(fault.params["rate"])
            elif fault.kind == "node_down":
                state.unreachable = True
            elif fault.kind == "exporter_hang":
                state.exporter_hung = True
            elif fault.kind == "disk_full":
                state.disk_full.add(fault.params["mountpoint"])
            elif fault.kind == "fabric_flapping" and fault.params["uplink"] == -1:
                state.flapping[fault.port] = (fault.started_at, fault.params["period"])  # the host's end moves too
            elif fault.kind == "fabric_symbol_errors" and fault.params["uplink"] == -1:
                state.symbol_error_rate[fault.port] = float(fault.params["rate"])
        lost = {f.gpu for f in self.faults.active(node_name) if f.kind == "gpu_lost"}
        hung = {f.gpu for f in self.faults.active(node_name) if f.kind == "driver_hang"}
        with node.state.lock:
            for fake in node.state.gpus:
                fake.absent = fake.index in lost
                if fake.index in hung and fake.hang is None:
                    fake.hang = threading.Event()
                elif fake.index not in hung and fake.hang is not None:
                    fake.hang.set()  # the calls blocked on it return
                    fake.hang = None
        if self._fabric is not None or any(f.kind.startswith("fabric_") for f in self.faults.active()):
            self._apply_fabric_faults()
        was_reachable = not node.faults.unreachable
        node.faults = state
        node.host.disk_full = set(state.disk_full)
        if state.unreachable and was_reachable:
            self.scheduler.set_responding(node_name, False)
        elif not state.unreachable and not was_reachable:
            self.scheduler.nodes[node_name].responding = True
            sim_node = self.scheduler.nodes[node_name]
            if sim_node.reason_set_by == "slurm":
                sim_node.reason, sim_node.reason_set_by = "", None

    # ---- the fabric ------------------------------------------------------------------------------

    @property
    def fabric(self) -> FatTree:
        with self.lock:
            if self._fabric is None:
                self._fabric = FatTree(self.topology, seed=self.seed)
                self._apply_fabric_faults()
            return self._fabric

    def _apply_fabric_faults(self) -> None:
        """Rebuild every cable's fault conditions from the fabric faults active in the book."""
        fabric = self.fabric
        conditions: dict[int, CableFaults] = {}
        for fault in self.faults.active():
            if fault.kind in HOST_CABLE_FAULTS:
                # A host port's fault is its cable's: the leaf's end sees the same (the node's own
                # counters move in _apply_lasting).
                condition = conditions.setdefault(id(fabric.host_cable(fault.node, fault.port)), CableFaults())
                if fault.kind == "ib_link_down":
                    condition.down = True
                elif fault.kind == "ib_flapping":
                    condition.flapping = (fault.started_at, fault.params["period"])
                else:
                    condition.symbol_errors_per_minute += float(fault.params["rate"])
                continue
            if not fault.kind.startswith("fabric_"):
                continue
            params = fault.params
            if fault.kind == "fabric_leaf_fault":
                cables = fabric.leaf_cables(fault.node)[:params["links"]]
            elif params["uplink"] >= 0:
                cables = [fabric.uplinks[fabric.leaf_of[fault.node].name][params["uplink"]]]
            else:
                cables = [fabric.host_cable(fault.node, fault.port)]
            for cable in cables:
                condition = conditions.setdefault(id(cable), CableFaults())
                if fault.kind in ("fabric_flapping", "fabric_leaf_fault"):
                    condition.flapping = (fault.started_at, params.get("period", LEAF_FAULT_FLAP_SECONDS))
                if fault.kind in ("fabric_symbol_errors", "fabric_leaf_fault"):
                    condition.symbol_errors_per_minute += float(params["rate"])
                if fault.kind == "fabric_degraded":
                    condition.width = params["width"]
                    condition.lane_rate = LANE_RATES[params["speed"]]
        fabric.set_faults(conditions, self.clock.now())

    def fabric_exporter(self) -> Any:
        """The fabric collector over this fleet's fat-tree, as one management host would run it."""
        from exporter.build import create_exporter
        from exporter.config import ExporterConfig
        from exporter.fabric.plan import Plan, SwitchEntry
        from exporter.fabric.sweep import FabricTools

        with self.lock:
            if self._fabric_exporter is None:
                fabric = self.fabric
                plan = Plan(switches_by_guid={s.guid: SwitchEntry(s.name, s.tier, s.rack) for s in fabric.switches})
                config = ExporterConfig(collectors=["fabric"], fabric_interval=FABRIC_SWEEP_INTERVAL,
                                        fabric_sweep_timeout=FABRIC_SWEEP_INTERVAL, fabric_hca_counters=True)
                runner = SimFabricRunner(fabric, self.clock.now, self.lock)
                self._fabric_exporter = create_exporter(config, fabric_tools=FabricTools(runner, plan),
                                                        clock=self.clock.now)
            return self._fabric_exporter

    def render_fabric_metrics(self, openmetrics: bool = False, gzipped: bool = False) -> bytes:
        return self.fabric_exporter().collect_once().render(openmetrics, gzipped)

    def fabric_file_sd(self, base_url: str) -> list[dict[str, Any]]:
        """Prometheus file_sd for the fabric collector: one target, job clusterwatch-fabric."""
        address = base_url.split("://", 1)[-1]
        return [{"targets": [address], "labels": {"__metrics_path__": "/fabric/metrics", "job": FABRIC_JOB,
                                                   "instance": FABRIC_INSTANCE}}]

    # ---- scenario --------------------------------------------------------------------------------

    def load_scenario(self, path: str) -> None:
        """Schedule the faults of a YAML scenario: ``faults: [{at: 10m, kind: xid, node: ..., ...}]``."""
        try:
            data = configfile.load_yaml(path) or {}
        except configfile.UnreadableConfig as exc:
            raise ConfigError("scenario", str(exc), path) from None
        entries = data.get("faults", []) if isinstance(data, dict) else None
        if not isinstance(entries, list):
            raise ConfigError("faults", "must be a list of fault entries", path)
        start = self.clock.now()
        for position, entry in enumerate(entries):
            try:
                parse_fault_request(entry, self.hardware)  # refuse a bad scenario before it starts
                at = scheduled_at(entry)
            except RequestError as exc:
                raise ConfigError(f"faults[{position}]", str(exc), path) from None
            self._scheduled.append((start + at, {k: v for k, v in entry.items() if k != "at"}))
        self._scheduled.sort(key=lambda item: item[0])

    # ---- views ---------------------------------------------------------------------------------

    def node_names(self) -> list[str]:
        return list(self.nodes)

    def render_metrics(self, node_name: str, openmetrics: bool = False, gzipped: bool = False) -> bytes:
        node = self.nodes[node_name]  # KeyError -> 404
        with self.lock:
            # No scheduler tick here: the ticker keeps it current, and a scrape of every node
            # must not pay for a whole-cluster scheduling pass each.
            now = max(self.clock.now(), node.updated_at)
            sim_node = self.scheduler.nodes[node_name]
            if node.faults.unreachable or sim_node.rebooting_until is not None:
                raise NodeUnreachable(node_name)
            if node.faults.exporter_hung:
                raise ExporterHung(node_name)
            node.update(now, lambda gpu: self.scheduler.job_of(node_name, gpu))
        return node.render(self.clock.now, openmetrics, gzipped)

    def ground_truth(self) -> dict[str, Any]:
        with self.lock:
            now = self.tick()
            nodes = []
            for name, node in self.nodes.items():
                node.update(now, lambda gpu, n=name: self.scheduler.job_of(n, gpu))
                nodes.append(self._node_json(node))
            return {
                "time": now, "seed": self.seed, "speed": self.clock.speed,
                "nodes": nodes,
                "jobs": [self._job_json(job) for job in sorted(self.scheduler.jobs.values(), key=lambda j: j.job_id)],
                "faults": self.faults_json(),
                "lost_gpu_seconds": self.scheduler.lost_gpu_seconds,
            }

    def _node_json(self, node: SimulatedNode) -> dict[str, Any]:
        sim_node = self.scheduler.nodes[node.name]
        gpus = []
        for fake in node.state.gpus:
            job_id = sim_node.allocations.get(fake.index)
            gpus.append({
                "index": fake.index, "uuid": fake.uuid, "present": not fake.absent, "lost": fake.lost,
                "healthy": node.gpu_ok(fake.index), "job_id": job_id,
                "utilization": fake.utilization_gpu / 100, "memory_used_bytes": fake.memory_used,
                "temperature_celsius": fake.temperature_gpu, "power_watts": fake.power_mw / 1000,
                "processes": [p.pid for p in fake.processes],
            })
        return {
            "name": node.name, "rack": node.spec.rack, "state": sim_node.state, "state_flags": sim_node.state_flags,
            "reason": sim_node.reason, "reason_set_by": sim_node.reason_set_by, "partitions": sim_node.partitions,
            "reachable": not node.faults.unreachable and sim_node.rebooting_until is None,
            "exporter_hung": node.faults.exporter_hung, "boot_time": sim_node.boot_time,
            "gpus": gpus,
            "ib_ports": [{"device": f"mlx5_{i}", "port": 1, "up": port.up,
                          "link_downed": int(port.errors["link_downed"]), "symbol_error": int(port.errors["symbol_error"])}
                         for i, port in enumerate(node.host.ports)],
        }

    @staticmethod
    def _job_json(job: SimJob) -> dict[str, Any]:
        return {
            "job_id": job.job_id, "name": job.name, "user": job.user, "account": job.account,
            "partition": job.partition, "state": job.state, "reason": job.reason,
            "nodes": job.nodes, "gpus": job.gpus, "gpus_total": job.total_gpus,
            "gpus_per_node": job.gpus_per_node, "num_nodes": job.num_nodes, "behaviour": job.behaviour,
            "straggler": list(job.straggler) if job.straggler else None,
            "unused_gpus": sorted([n, g] for n, g in job.unused_gpus),
            "submit_time": job.submit_time, "start_time": job.start_time, "end_time": job.end_time,
            "time_limit": job.time_limit, "exit_code": job.exit_code, "restart_count": job.restart_count,
        }

    def faults_json(self) -> list[dict[str, Any]]:
        return [fault.to_json() for fault in self.faults.all()]

    def file_sd(self, base_url: str) -> list[dict[str, Any]]:
        """Prometheus file_sd: one target group per node, its metrics path and instance set."""
        address = base_url.split("://", 1)[-1]
        return [{"targets": [address], "labels": {"__metrics_path__": f"/nodes/{name}/metrics", "instance": name,
                                                   "rack": self.nodes[name].spec.rack}}
                for name in self.nodes]

    def squeue(self) -> dict:
        with self.lock:
            self.tick()
            return slurm_face.squeue(self.scheduler)

    def sinfo(self) -> dict:
        with self.lock:
            self.tick()
            return slurm_face.sinfo(self.scheduler)

    def slurm_command(self, tool: str, args: list[str], user: str = "root") -> slurm_face.CommandResult | None:
        """Run a Slurm client tool against the simulated cluster, as its binary would; None if unknown."""
        if tool == "squeue":
            return slurm_face.CommandResult(0, json.dumps(self.squeue()))
        if tool == "sinfo":
            return slurm_face.CommandResult(0, json.dumps(self.sinfo()))
        if tool == "scontrol":
            return self.scontrol(args, user)
        if tool == "scancel":
            return self.scancel(args)
        return None

    def scontrol(self, argv: list[str], user: str = "root") -> slurm_face.CommandResult:
        with self.lock:
            self.tick()
            return slurm_face.scontrol(self.scheduler, argv, user)

    def scancel(self, argv: list[str]) -> slurm_face.CommandResult:
        with self.lock:
            self.tick()
            return slurm_face.scancel(self.scheduler, argv)
