"""The collector interface and registry shared by every collector.

Shape taken from node_exporter: each collector lives in its own module under
``exporter/collectors``, registers itself with a name and whether it is on by default, and has
one method, ``collect()``, that reads its source and yields metric families. The framework (see
``exporter.loop``), not the collector, times each collector and reports its success, so a
collector only has to do its one job. A collector that finds nothing to report (no InfiniBand
HCA on this node) raises ``NoDataError``; any other exception is a failure of that collector
alone. A collector that can still report most of its data calls ``self.skip(...)`` for the part
it could not read: the error is counted and logged, and the rest is exposed.
"""
from __future__ import annotations

import logging
import os
import sys
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Iterable

from prometheus_client.core import Metric

from cwkernel.metrics import tables_in
from exporter.hostfs import FileTree

if TYPE_CHECKING:  # imported for annotations only: keeps this module free of NVML imports
    from exporter.config import ExporterConfig
    from exporter.kmsg import KernelLog
    from exporter.nvml.session import NvmlSession

log = logging.getLogger(__name__)


# The collectors that call NVML: they run on its lane (exporter/nvmllane.py), and the exporter
# only builds an NVML session when one of them is enabled.
NVML_COLLECTORS = frozenset({"gpu", "gpm", "xid", "jobs"})


class NoDataError(Exception):
    """The collector's source is absent on this node; not an error, logged at debug level."""


class ErrorCounter:
    """Counts the partial failures of each collector (``clusterwatch_exporter_collector_errors_total``).

    Each distinct (collector, what) is logged once at warning level and then at debug level, so a
    file that stays unreadable does not flood the log every cycle.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self._logged: set[tuple[str, str]] = set()

    def count(self, collector: str, what: str, exc: BaseException | None = None) -> None:
        with self._lock:
            self._counts[collector] = self._counts.get(collector, 0) + 1
            first = (collector, what) not in self._logged
            self._logged.add((collector, what))
        level = logging.WARNING if first else logging.DEBUG
        log.log(level, "collector %s: %s%s", collector, what, f": {exc}" if exc else "")

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


@dataclass
class CollectorContext:
    """Everything a collector may read. Handed in, never imported, so tests can swap each part."""

    config: "ExporterConfig"
    procfs: FileTree
    sysfs: FileTree
    nvml: "NvmlSession | None" = None
    statvfs: Callable[[str], Any] = os.statvfs
    clock: Callable[[], float] = time.time
    errors: ErrorCounter = field(default_factory=ErrorCounter)
    kernel_log: "KernelLog | None" = None  # where the XID collector recovers the XIDs NVML missed
    fabric_tools: Any = None  # exporter.fabric.sweep.FabricTools: the fabric collector's tools (the simulator's)


class Collector(ABC):
    """Base class: subclasses set ``name`` and implement ``collect()``."""

    name: ClassVar[str] = ""

    def __init__(self, ctx: CollectorContext) -> None:
        self.ctx = ctx

    @abstractmethod
    def collect(self) -> Iterable[Metric]:
        """Read the source now and yield metric families."""

    def skip(self, what: str, exc: BaseException | None = None) -> None:
        """Record that one part (a file, a counter, one GPU's metric) could not be read."""
        self.ctx.errors.count(self.name, what, exc)

    def close(self) -> None:
        """Release threads or handles; called once when the exporter stops."""

    def unavailable(self) -> Iterable[Metric]:
        """What to report while this collector's source does not answer in time (NVML hung);
        nothing by default, so its series go stale."""
        return ()


@dataclass(frozen=True)
class CollectorSpec:
    name: str
    factory: type[Collector]
    default_enabled: bool
    help: str


_REGISTRY: dict[str, CollectorSpec] = {}


def register_collector(name: str, default_enabled: bool = True) -> Callable[[type[Collector]], type[Collector]]:
    """Class decorator: make a collector selectable as ``--collectors NAME``."""

    def decorate(cls: type[Collector]) -> type[Collector]:
        if name in _REGISTRY and _REGISTRY[name].factory is not cls:
            raise ValueError(f"collector {name} registered twice")
        cls.name = name
        doc = (cls.__doc__ or "").strip().splitlines()
        _REGISTRY[name] = CollectorSpec(name, cls, default_enabled, doc[0] if doc else "")
        return cls

    return decorate


def available_collectors() -> dict[str, CollectorSpec]:
    """Every registered collector, in registration order (imports ``exporter.collectors``)."""
    import exporter.collectors  # noqa: F401  (registers the built-in collectors)

    return dict(_REGISTRY)


def declared_families() -> frozenset[str]:
    """The name of every family a registered collector's module declares in its metric tables:
    the names this exporter's own measurements go by."""
    modules = {sys.modules[spec.factory.__module__] for spec in available_collectors().values()}
    return frozenset(spec.name for module in modules for spec in tables_in(module))


def default_collectors() -> list[str]:
    return [name for name, spec in available_collectors().items() if spec.default_enabled]
