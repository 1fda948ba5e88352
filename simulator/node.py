"""One simulated GPU node: fake NVML state, simulated OS files, and the real exporter over them."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from exporter.build import create_exporter
from exporter.collector import default_collectors
from exporter.config import ExporterConfig
from exporter.exporter import Exporter
from exporter.nvml.fake import FakeNVML, FakeProcess, FakeState
from simulator.activity import GpuActivity, gpu_activity
from simulator.faults import NodeHardware
from simulator.gpu_model import GpuConditions, gpm_levels, update_gpu
from simulator.host import FS_SIZE_BYTES, SimHost
from simulator.jobs import SimJob
from simulator.randomness import unit
from simulator.topology import NodeSpec

# See XidCollector.wait_ms: in a big fleet, thousands of watchers must not each wake 5 times a
# second; a small one (tests) keeps the exporter's default so that stopping it stays quick.
SMALL_FLEET, XID_WAIT_MS_LARGE_FLEET = 16, 2000
MAX_STEP = 60.0  # integrate long gaps in steps, so temperatures and counters follow load changes
COLLECTION_REUSE_SECONDS = 1.0  # scrapes within a real second of each other share one collection, if nothing changed
# How long a collection waits for the exporter's XID thread to count the events queued for it.
XID_SETTLE_SECONDS = 2.0
# A simulated node collects when it is scraped, so its wait for a hung driver must fit in a scrape's
# timeout (a real exporter collects on its own loop: scrapes never wait for NVML), while a busy
# simulator's healthy collections (milliseconds) must never reach it.
SIMULATED_NVML_TIMEOUT_S = 3.0


@dataclass
class NodeFaultState:
    """What lasting faults currently do to the node, rebuilt from the fault book each update."""

    gpu: dict[int, GpuConditions] = field(default_factory=dict)
    ports_down: set[int] = field(default_factory=set)  # 1-based port numbers
    flapping: dict[int, tuple[float, float]] = field(default_factory=dict)  # port -> (start, period)
    symbol_error_rate: dict[int, float] = field(default_factory=dict)  # port -> errors/minute
    unreachable: bool = False
    exporter_hung: bool = False
    disk_full: set[str] = field(default_factory=set)

    def slowdown(self) -> float:
        """How much a fault on this node slows a synchronous job that spans it."""
        factor = 1.0
        if self.ports_down or self.flapping:
            factor = min(factor, 0.6)  # NCCL rings route around a dead rail at a cost
        if any(c.thermal_c is not None or c.power_brake for c in self.gpu.values()):
            factor = min(factor, 0.75)
        return factor


class SimulatedNode:
    """A node whose /metrics is what the real exporter reads from its fake hardware and files."""

    def __init__(self, spec: NodeSpec, seed: int, now: float, xid_wait_ms: int | None = None,
                 textfile_dir: str | None = None) -> None:
        self.spec = spec
        self.textfile_dir = textfile_dir  # where its jobs write their checkpoint marks (simulator/checkpoints.py)
        self.xid_wait_ms = xid_wait_ms
        self.seed = seed
        self.lock = threading.RLock()
        self.state = FakeState.h100_node(spec.gpus, seed=int(unit(seed, spec.name) * 2**31))
        self.nvml = FakeNVML(self.state)
        self.host = SimHost(spec.name, boot_time=now - 3 * 86400, ib_ports=spec.ib_ports)
        # The fake driver's kernel log stamps records in the node's simulated time since boot.
        self.state.kernel_log.uptime = lambda: self.updated_at - self.host.boot_time
        # GPM samples are stamped in simulated time too, so a sample pair averages the levels of
        # the simulated interval between two collections, whatever the simulation's speed.
        self.state.clock = lambda: self.updated_at
        self.procfs = self.host.procfs()
        self.sysfs = self.host.sysfs()
        self.faults = NodeFaultState()
        self.broken_gpus: set[int] = set()  # need a reset: a new job on them fails at once
        self.updated_at = now
        self._clock: Callable[[], float] = lambda: now
        self._exporter: Exporter | None = None
        self._collected_at = -1e9  # real (monotonic) time of the last collection
        self._changed = True  # the node's state moved since its last collection (``changed``)

    @property
    def name(self) -> str:
        return self.spec.name

    def hardware(self) -> NodeHardware:
        """What this node has, for checking a fault's parameters against it."""
        with self.state.lock:
            nvlinks = tuple(len(gpu.nvlinks) for gpu in sorted(self.state.gpus, key=lambda gpu: gpu.index))
        return NodeHardware(gpus=self.spec.gpus, nvlinks=nvlinks, ib_ports=self.spec.ib_ports,
                            mountpoints=tuple(FS_SIZE_BYTES))

    def gpu_ok(self, gpu: int) -> bool:
        fake = self.state.gpu(gpu)
        return gpu not in self.broken_gpus and not fake.absent and not fake.lost

    # ---- simulation ----------------------------------------------------------------------------

    def update(self, now: float, job_of: Callable[[int], SimJob | None]) -> None:
        """Bring every reading forward to ``now`` given the jobs on the node's GPUs."""
        with self.lock, self.state.lock:
            while self.updated_at < now:
                step = min(MAX_STEP, now - self.updated_at)
                self.updated_at += step
                self._step(self.updated_at, step, job_of)
                self._changed = True

    def changed(self) -> None:
        """The node's state moved other than by time (a fault, its clearing): the next scrape
        collects anew, however soon it comes."""
        with self.lock:
            self._changed = True

    def _step(self, now: float, dt: float, job_of: Callable[[int], SimJob | None]) -> None:
        activities: list[GpuActivity] = []
        processes: dict[int, str] = {}
        for fake in self.state.gpus:
            job = job_of(fake.index)
            activity = gpu_activity(job, self.name, fake.index, now, self.seed)
            process = None
            if job is not None and activity.has_process:
                pid = job.pid(self.name, fake.index)
                process = FakeProcess(pid, int(fake.memory_total * activity.memory_fraction))
                processes[pid] = f"/system.slice/slurmstepd.scope/job_{job.job_id}/step_0/user/task_{fake.index}"
            if not fake.absent and not fake.lost:
                update_gpu(fake, activity, self.faults.gpu.get(fake.index, GpuConditions()), dt, process)
                self.state.set_gpm(fake.index, gpm_levels(activity), since=now - dt)  # the step ran at them
            activities.append(activity)
        self.host.sync_processes(self.procfs, processes)
        self._update_ports(now, dt)
        count = max(1, len(activities))
        self.host.advance(dt, sum(a.utilization for a in activities) / count,
                          sum(a.ib_fraction for a in activities) / count,
                          max((a.storage_write for a in activities), default=0.0))

    def _update_ports(self, now: float, dt: float) -> None:
        for number, port in enumerate(self.host.ports, start=1):
            up = number not in self.faults.ports_down
            if number in self.faults.flapping:
                start, period = self.faults.flapping[number]
                up = int((now - start) // (period / 2)) % 2 == 1  # down first, then up, repeatedly
            if port.up and not up:
                port.errors["link_downed"] += 1
                port.errors["link_error_recovery"] += 1
            port.up = up
            rate = self.faults.symbol_error_rate.get(number)
            if rate:
                port.errors["symbol_error"] += rate * dt / 60
                port.errors["port_rcv_errors"] += rate * dt / 600

    def reboot(self, now: float) -> None:
        """A reboot: GPUs reset (volatile counters, lost GPUs back), exporter restarted."""
        with self.lock, self.state.lock:
            self.broken_gpus.clear()
            for fake in self.state.gpus:
                fake.lost = fake.absent = False
                fake.ecc_sbe_volatile = fake.ecc_dbe_volatile = 0
                fake.retired_pending = False
                if fake.remap_pending:
                    fake.remap_pending = False  # a reset performs the pending remap
                fake.processes = []
            self.host.boot_time = now
            self.state.new_boot()
            old = self._detach_exporter()
        _close_in_background(old)

    # ---- what a scrape sees --------------------------------------------------------------------

    def exporter(self, clock: Callable[[], float]) -> Exporter:
        with self.lock:
            if self._exporter is None:
                config = ExporterConfig(backend="fake", collectors=default_collectors(), interval=5.0,
                                        textfile_dir=self.textfile_dir, nvml_timeout=SIMULATED_NVML_TIMEOUT_S)
                self._exporter = create_exporter(config, nvml_module=self.nvml, procfs=self.procfs,
                                                 sysfs=self.sysfs, statvfs=self.host.statvfs, clock=clock)
                for collector in self._exporter.collectors:
                    if collector.name == "xid" and self.xid_wait_ms is not None:
                        collector.wait_ms = self.xid_wait_ms
            return self._exporter

    def render(self, clock: Callable[[], float], openmetrics: bool, gzipped: bool) -> bytes:
        exporter = self.exporter(clock)
        with self.lock:
            # Reused only within a real second and while nothing changed: the simulated clock
            # moving (``update``) or a fault (``changed``) makes a new collection, so a clock moved
            # by hand between two scrapes (a benchmark's rounds, a demo's past) always collects.
            real = time.monotonic()
            if exporter.collection is None or self._changed or real - self._collected_at > COLLECTION_REUSE_SECONDS:
                self.state.wait_events_handled(XID_SETTLE_SECONDS)
                exporter.collect_once()
                self._collected_at, self._changed = real, False
            return exporter.collection.render(openmetrics=openmetrics, gzipped=gzipped)

    def restart_exporter(self) -> None:
        """The exporter process ends; the next scrape starts a new one, with its counters at 0."""
        with self.lock:
            old = self._detach_exporter()
        _close_in_background(old)

    def _detach_exporter(self) -> Exporter | None:
        old, self._exporter = self._exporter, None
        return old

    def close(self) -> None:
        with self.lock:
            old = self._detach_exporter()
        if old is not None:
            old.close()


def _close_in_background(exporter: Exporter | None) -> None:
    """The old exporter ends on its own, as a real node's process does: its XID thread needs the
    fake driver's lock (held by a reboot) and up to its wait timeout to notice the stop, and
    waiting for it here held the whole fleet (every other node's scrape) up to 11 s."""
    if exporter is not None:
        threading.Thread(target=exporter.close, name="exporter-exit", daemon=True).start()
