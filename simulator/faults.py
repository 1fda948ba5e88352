"""Fault kinds the simulator can inject, their parameters, and the book of active faults.

A fault is validated when it is created, against the simulated hardware of its node (an XID
code, a GPU, NVLink, InfiniBand port or mount point the node does not have is refused with the
field and the allowed range), then applied by the fleet: instantaneous ones (an XID, an ECC
burst, an exporter restart) happen once and are kept in the book as history; lasting ones
(thermal throttling, an IB link down, a node down) hold until cleared through the API, until
their ``duration`` runs out, or until the node reboots when a reboot fixes them.
"""
from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

from simulator.validation import RequestError, duration_in, integer_in, number_in, one_of, shown, shown_name

DAY = 86400.0
# NVIDIA numbers XIDs from 1 up (the catalog in exporter/data ends at 172); codes up to 999 can
# be injected so that a driver newer than the catalog can be simulated too.
MAX_XID = 999
MAX_RATE = 1_000_000  # errors per minute, or ECC errors per fault: far beyond any real burst
MAX_DURATION = 365 * DAY


class FaultError(RequestError):
    """A fault request that cannot be applied: says which field is wrong and why."""


@dataclass(frozen=True)
class NodeHardware:
    """What one simulated node has, that a fault's parameters must fit."""

    gpus: int
    nvlinks: tuple[int, ...]  # NVLinks of each GPU, by index
    ib_ports: int
    mountpoints: tuple[str, ...]
    leaf_uplinks: int = 0  # uplinks of the node's leaf switch in the simulated fabric (simulator/fabric.py)


# A parameter's check: (field name, value, the node's hardware, the GPU index or None) -> value.
Check = Callable[[str, Any, NodeHardware, "int | None"], Any]


@dataclass(frozen=True)
class FaultKind:
    name: str
    target: str  # "gpu", "port" or "node": which identifiers the fault needs
    lasting: bool  # True: holds until cleared; False: happens once
    cleared_by_reboot: bool
    description: str
    params: dict[str, Check] = field(default_factory=dict)


def _xid(name: str, value: Any, hardware: NodeHardware, gpu: int | None) -> int:
    return integer_in(name, value, 1, MAX_XID, "an XID code")


def _rate(name: str, value: Any, hardware: NodeHardware, gpu: int | None) -> int:
    return integer_in(name, value, 1, MAX_RATE)


def _nvlink(name: str, value: Any, hardware: NodeHardware, gpu: int | None) -> int:
    links = hardware.nvlinks[gpu] if gpu is not None else 0
    if links == 0:
        raise FaultError(f"{name}: GPU {gpu} has no NVLinks")
    return integer_in(name, value, 0, links - 1, f"GPU {gpu} has {links} NVLinks")


def _choice(*allowed: str) -> Check:
    return lambda name, value, hardware, gpu: one_of(name, value, allowed)


def _celsius(name: str, value: Any, hardware: NodeHardware, gpu: int | None) -> float:
    return number_in(name, value, 20, 120, " (degrees Celsius)")


def _period(name: str, value: Any, hardware: NodeHardware, gpu: int | None) -> float:
    return duration_in(name, value, 2.0, DAY)


def _mountpoint(name: str, value: Any, hardware: NodeHardware, gpu: int | None) -> str:
    return one_of(name, value, hardware.mountpoints)


def _uplink(name: str, value: Any, hardware: NodeHardware, gpu: int | None) -> int:
    # -1: the node's own cable on the given port; 0..n-1: that uplink of the node's leaf switch.
    return integer_in(name, value, -1, hardware.leaf_uplinks - 1,
                      f"-1 for the host cable, or one of the leaf's {hardware.leaf_uplinks} uplinks")


def _width(name: str, value: Any, hardware: NodeHardware, gpu: int | None) -> int:
    return integer_in(name, value, 1, 2, "lanes (a 4X cable trained at fewer)")


def _lane_speed(name: str, value: Any, hardware: NodeHardware, gpu: int | None) -> str:
    return one_of(name, value, ("NDR", "HDR", "EDR"))


def _links(name: str, value: Any, hardware: NodeHardware, gpu: int | None) -> int:
    return integer_in(name, value, 1, 64, "links of the leaf switch")


KINDS: dict[str, FaultKind] = {kind.name: kind for kind in (
    FaultKind("xid", "gpu", False, True, "an XID error event on one GPU (79 also drops it off the bus)",
              {"xid": _xid}),
    FaultKind("ecc", "gpu", False, True, "ECC errors counted on one GPU (uncorrectable ones crash its job)",
              {"type": _choice("corrected", "uncorrected"), "count": _rate}),
    FaultKind("row_remap", "gpu", True, False, "HBM row remapping: pending (needs a reset) or failed (RMA)",
              {"state": _choice("pending", "failure")}),
    FaultKind("gpu_lost", "gpu", True, True, "the GPU falls off the bus and vanishes from NVML"),
    FaultKind("driver_hang", "gpu", True, True, "the driver hangs on the GPU: every NVML call on it blocks "
              "(nvidia-smi stuck in D state) and its job hangs"),
    FaultKind("thermal", "gpu", True, False, "cooling fault: hot GPU, thermal clock slowdown",
              {"temperature": _celsius}),
    FaultKind("power", "gpu", True, False, "power brake / power cap: clocks held down"),
    FaultKind("nvlink_errors", "gpu", True, True, "a burst of NVLink replay, recovery and CRC errors",
              {"link": _nvlink, "rate": _rate}),
    FaultKind("ib_link_down", "port", True, False, "an InfiniBand port goes down"),
    FaultKind("ib_flapping", "port", True, False, "an InfiniBand port goes down and up repeatedly",
              {"period": _period}),
    FaultKind("ib_symbol_errors", "port", True, False, "an InfiniBand port accumulates symbol errors",
              {"rate": _rate}),
    FaultKind("node_down", "node", True, False, "the node stops answering (scrapes and slurmd)"),
    FaultKind("exporter_hang", "node", True, True, "the node's exporter accepts scrapes and never answers"),
    FaultKind("exporter_restart", "node", False, False,
              "the node's exporter restarts (a crash, an upgrade): its counters start again, and it "
              "recovers from the node's kernel log the XIDs raised since boot"),
    FaultKind("disk_full", "node", True, False, "the node's local file system fills up",
              {"mountpoint": _mountpoint}),
    # Fabric faults (simulator/fabric.py): a cable between the node's HCA port and its leaf, or with
    # uplink >= 0 one of that leaf's uplinks; both ends' counters move, and the host's own for a host cable.
    FaultKind("fabric_flapping", "port", True, False, "an InfiniBand cable goes down and up repeatedly "
              "(link-downed and error-recovery on both ends)", {"period": _period, "uplink": _uplink}),
    FaultKind("fabric_degraded", "port", True, False, "an InfiniBand cable trains at fewer lanes or a lower "
              "lane rate than both ends could run", {"width": _width, "speed": _lane_speed, "uplink": _uplink}),
    FaultKind("fabric_symbol_errors", "port", True, False, "an InfiniBand cable accumulates symbol errors "
              "(errors per minute) on both ends", {"rate": _rate, "uplink": _uplink}),
    FaultKind("fabric_leaf_fault", "node", True, False, "the node's leaf switch goes bad: its first `links` "
              "cables take symbol errors and flap", {"links": _links, "rate": _rate}),
)}
DEFAULTS: dict[str, dict[str, Any]] = {
    "ecc": {"type": "uncorrected", "count": 1},
    "row_remap": {"state": "pending"},
    "thermal": {"temperature": 94.0},
    "nvlink_errors": {"link": 0, "rate": 50},
    "ib_flapping": {"period": 120.0},
    "ib_symbol_errors": {"rate": 200},
    "disk_full": {"mountpoint": "/"},
    "fabric_flapping": {"period": 120.0, "uplink": -1},
    "fabric_degraded": {"width": 2, "speed": "NDR", "uplink": -1},
    "fabric_symbol_errors": {"rate": 200, "uplink": -1},
    "fabric_leaf_fault": {"links": 4, "rate": 500},
}


@dataclass
class Fault:
    id: int
    kind: str
    node: str
    gpu: int | None
    port: int | None
    params: dict[str, Any]
    started_at: float
    ends_at: float | None = None
    cleared_at: float | None = None
    cleared_by: str | None = None

    @property
    def active(self) -> bool:
        return self.cleared_at is None and KINDS[self.kind].lasting

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "node": self.node, "gpu": self.gpu, "port": self.port,
                "params": self.params, "started_at": self.started_at, "ends_at": self.ends_at,
                "cleared_at": self.cleared_at, "cleared_by": self.cleared_by, "active": self.active}


def parse_fault_request(body: Any, nodes: dict[str, NodeHardware]) -> tuple[FaultKind, dict[str, Any]]:
    """Validate ``body`` (an API request or scenario entry) against the node's simulated hardware.

    Raises ``FaultError`` naming the first wrong field.
    """
    try:
        return _parse_fault_request(body, nodes)
    except FaultError:
        raise
    except RequestError as exc:
        raise FaultError(str(exc)) from None


def _parse_fault_request(body: Any, nodes: dict[str, NodeHardware]) -> tuple[FaultKind, dict[str, Any]]:
    if not isinstance(body, dict):
        raise FaultError("fault: must be a JSON object")
    name = body.get("kind")
    kind = KINDS.get(name) if isinstance(name, str) else None
    if kind is None:
        raise FaultError(f"kind: unknown fault kind {shown(name)} (known: {', '.join(KINDS)})")
    node = body.get("node")
    if not isinstance(node, str) or node not in nodes:
        raise FaultError(f"node: unknown node {shown(node)}")
    hardware = nodes[node]
    request: dict[str, Any] = {"node": node, "gpu": None, "port": None}
    if kind.target == "gpu":
        request["gpu"] = integer_in("gpu", body.get("gpu"), 0, hardware.gpus - 1, f"the node has {hardware.gpus} GPUs")
    if kind.target == "port":
        request["port"] = integer_in("port", body.get("port"), 1, hardware.ib_ports,
                                     f"the node has {hardware.ib_ports} InfiniBand ports")
    allowed = {"kind", "node", "at", *kind.params, *([kind.target] if kind.target != "node" else [])}
    if kind.lasting:
        allowed.add("duration")
    unknown = sorted(set(body) - allowed)
    if "duration" in unknown:
        raise FaultError(f"duration: a {kind.name} fault happens once and has no duration")
    if unknown:
        raise FaultError(f"{shown_name(unknown[0])}: not a parameter of a {kind.name} fault")
    params = dict(DEFAULTS.get(kind.name, {}))
    for param, check in kind.params.items():
        if param in body:
            params[param] = check(param, body[param], hardware, request["gpu"])
        elif param not in params:
            raise FaultError(f"{param}: required for a {kind.name} fault")
        else:
            params[param] = check(param, params[param], hardware, request["gpu"])  # a default must fit too
    request["params"] = params
    if "duration" in body:
        request["duration"] = duration_in("duration", body["duration"], 1.0, MAX_DURATION)
    return kind, request


def scheduled_at(entry: dict[str, Any]) -> float:
    """Seconds after the scenario's start at which a scenario entry's fault happens."""
    return duration_in("at", entry.get("at", 0), 0.0, MAX_DURATION)


class FaultBook:
    """Every fault injected so far, active or not; thread-safe (the API and the tick both use it)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._faults: dict[int, Fault] = {}

    def add(self, kind: FaultKind, request: dict[str, Any], now: float) -> Fault:
        with self._lock:
            duration = request.get("duration")
            fault = Fault(next(self._ids), kind.name, request["node"], request["gpu"], request["port"],
                          request["params"], now, now + duration if duration else None)
            if not kind.lasting:
                fault.cleared_at, fault.cleared_by = now, "instantaneous"
            self._faults[fault.id] = fault
            return fault

    def get(self, fault_id: int) -> Fault | None:
        with self._lock:
            return self._faults.get(fault_id)

    def clear(self, fault: Fault, now: float, by: str) -> None:
        with self._lock:
            if fault.cleared_at is None:
                fault.cleared_at, fault.cleared_by = now, by

    def all(self) -> list[Fault]:
        with self._lock:
            return list(self._faults.values())

    def active(self, node: str | None = None) -> list[Fault]:
        return [f for f in self.all() if f.active and (node is None or f.node == node)]

    def expire(self, now: float) -> list[Fault]:
        """Clear lasting faults whose duration ran out; returns them."""
        expired = [f for f in self.active() if f.ends_at is not None and now >= f.ends_at]
        for fault in expired:
            self.clear(fault, now, "duration")
        return expired
