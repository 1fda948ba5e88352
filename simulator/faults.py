"""Fault kinds the simulator can inject, their parameters, and the book of active faults.

A fault is validated when it is created (unknown kind, node, GPU or port is refused with the
reason), then applied by the fleet: instantaneous ones (an XID, an ECC burst) happen once and are
kept in the book as history; lasting ones (thermal throttling, an IB link down, a node down) hold
until cleared through the API, until their ``duration`` runs out, or until the node reboots when
a reboot fixes them.
"""
from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

from clusterwatch.durations import parse_duration


class FaultError(ValueError):
    """A fault request that cannot be applied: says which field is wrong and why."""


@dataclass(frozen=True)
class FaultKind:
    name: str
    target: str  # "gpu", "port" or "node": which identifiers the fault needs
    lasting: bool  # True: holds until cleared; False: happens once
    cleared_by_reboot: bool
    description: str
    params: dict[str, Callable[[Any], Any]] = field(default_factory=dict)


def _positive_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError("must be a positive integer")
    return value


def _choice(*allowed: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        if value not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}")
        return value
    return parse


def _celsius(value: Any) -> float:
    if not isinstance(value, (int, float)) or not 20 <= value <= 120:
        raise ValueError("must be a temperature between 20 and 120")
    return float(value)


KINDS: dict[str, FaultKind] = {kind.name: kind for kind in (
    FaultKind("xid", "gpu", False, True, "an XID error event on one GPU (79 also drops it off the bus)",
              {"xid": _positive_int}),
    FaultKind("ecc", "gpu", False, True, "ECC errors counted on one GPU (uncorrectable ones crash its job)",
              {"type": _choice("corrected", "uncorrected"), "count": _positive_int}),
    FaultKind("row_remap", "gpu", True, False, "HBM row remapping: pending (needs a reset) or failed (RMA)",
              {"state": _choice("pending", "failure")}),
    FaultKind("gpu_lost", "gpu", True, True, "the GPU falls off the bus and vanishes from NVML"),
    FaultKind("thermal", "gpu", True, False, "cooling fault: hot GPU, thermal clock slowdown",
              {"temperature": _celsius}),
    FaultKind("power", "gpu", True, False, "power brake / power cap: clocks held down"),
    FaultKind("nvlink_errors", "gpu", True, True, "a burst of NVLink replay, recovery and CRC errors",
              {"link": int, "rate": _positive_int}),
    FaultKind("ib_link_down", "port", True, False, "an InfiniBand port goes down"),
    FaultKind("ib_flapping", "port", True, False, "an InfiniBand port goes down and up repeatedly",
              {"period": parse_duration}),
    FaultKind("ib_symbol_errors", "port", True, False, "an InfiniBand port accumulates symbol errors",
              {"rate": _positive_int}),
    FaultKind("node_down", "node", True, False, "the node stops answering (scrapes and slurmd)"),
    FaultKind("exporter_hang", "node", True, True, "the node's exporter accepts scrapes and never answers"),
    FaultKind("disk_full", "node", True, False, "the node's local file system fills up",
              {"mountpoint": str}),
)}
DEFAULTS: dict[str, dict[str, Any]] = {
    "ecc": {"type": "uncorrected", "count": 1},
    "row_remap": {"state": "pending"},
    "thermal": {"temperature": 94.0},
    "nvlink_errors": {"link": 0, "rate": 50},
    "ib_flapping": {"period": 120.0},
    "ib_symbol_errors": {"rate": 200},
    "disk_full": {"mountpoint": "/"},
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


def parse_fault_request(body: Any, nodes: dict[str, tuple[int, int]]) -> tuple[FaultKind, dict[str, Any]]:
    """Validate ``body`` (an API request or scenario entry); ``nodes`` maps name -> (gpus, ports)."""
    if not isinstance(body, dict):
        raise FaultError("a fault must be a JSON object")
    kind = KINDS.get(body.get("kind"))
    if kind is None:
        raise FaultError(f"kind: unknown fault kind {body.get('kind')!r} (known: {', '.join(KINDS)})")
    node = body.get("node")
    if node not in nodes:
        raise FaultError(f"node: unknown node {node!r}")
    gpus, ports = nodes[node]
    request: dict[str, Any] = {"node": node, "gpu": None, "port": None}
    if kind.target == "gpu":
        request["gpu"] = _index(body, "gpu", gpus, first=0)
    if kind.target == "port":
        request["port"] = _index(body, "port", ports, first=1)
    params = dict(DEFAULTS.get(kind.name, {}))
    for name, parse in kind.params.items():
        if name in body:
            try:
                params[name] = parse(body[name])
            except (TypeError, ValueError) as exc:
                raise FaultError(f"{name}: {exc}") from None
        elif name not in params:
            raise FaultError(f"{name}: required for a {kind.name} fault")
    allowed = {"kind", "node", "gpu", "port", "at", "duration", *kind.params}
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise FaultError(f"{unknown[0]}: not a parameter of a {kind.name} fault")
    request["params"] = params
    if "duration" in body:
        if not kind.lasting:
            raise FaultError(f"duration: a {kind.name} fault happens once and has no duration")
        try:
            request["duration"] = parse_duration(body["duration"])
        except ValueError as exc:
            raise FaultError(f"duration: {exc}") from None
    return kind, request


def _index(body: dict, name: str, count: int, first: int) -> int:
    value = body.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or not first <= value < first + count:
        raise FaultError(f"{name}: must be an integer from {first} to {first + count - 1} (got {value!r})")
    return value


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
