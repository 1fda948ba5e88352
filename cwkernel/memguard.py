"""A bound on the whole process's memory, for the work that can wait.

Every input is bounded on its own (a query's samples, the store's series, the alerts, the
silences, request bodies), but those bounds add up to more than a container or a small machine
holds, and the OOM killer does not choose: it ends the whole watcher. So once the process's
resident memory reaches ``HIGH_RATIO`` of its limit, the front door (cwkernel/admission.py)
refuses new pages, dashboard JSON and Prometheus API queries, the work that allocates most and can
be asked again, with a 503, until it is below again. Scraping, rule evaluation, alerting, the
webhook, operator actions, ``/metrics`` and the probes are not refused.

The limit is ``--memory-limit``, else the memory.max of the process's cgroup (v2, or v1's
memory.limit_in_bytes), else the machine's memory (MemTotal). Resident memory is read from
``/proc/self/statm`` at most every ``SAMPLE_S``.
"""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

from prometheus_client.core import GaugeMetricFamily, Metric

HIGH_RATIO = 0.85  # refuse above this share of the limit
SAMPLE_S = 1.0
REPORT_S = 60.0  # a refusal stays a health problem this long
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
UNLIMITED = 1 << 60  # cgroup v1 writes "no limit" as a number near 2**63


def process_rss(statm: Path = Path("/proc/self/statm")) -> int:
    """This process's resident memory in bytes (0 where /proc cannot be read)."""
    try:
        return int(statm.read_text().split()[1]) * PAGE_BYTES
    except (OSError, IndexError, ValueError):
        return 0


def memory_limit(setting: int, proc_cgroup: Path = Path("/proc/self/cgroup"),
                 cgroup_root: Path = Path("/sys/fs/cgroup"), meminfo: Path = Path("/proc/meminfo")) -> tuple[int, str]:
    """(bytes, where it came from): ``setting`` when above 0, else the cgroup's limit, else MemTotal."""
    if setting > 0:
        return setting, "--memory-limit"
    for path, name in _cgroup_limit_files(proc_cgroup, cgroup_root):
        try:
            value = int(path.read_text().strip())
        except (OSError, ValueError):  # "max", or no such file
            continue
        if 0 < value < UNLIMITED:
            return value, name
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024, "/proc/meminfo MemTotal"
    except (OSError, IndexError, ValueError):
        pass
    return 0, "unknown"


def _cgroup_limit_files(proc_cgroup: Path, cgroup_root: Path) -> Iterator[tuple[Path, str]]:
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        hierarchy, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        relative = path.strip().lstrip("/")
        if hierarchy == "0" and not controllers:
            yield cgroup_root / relative / "memory.max", "cgroup memory.max"
        elif "memory" in controllers.split(","):
            yield cgroup_root / "memory" / relative / "memory.limit_in_bytes", "cgroup memory.limit_in_bytes"
    # In a container the cgroup's own directory is often mounted as the root.
    yield cgroup_root / "memory.max", "cgroup memory.max"
    yield cgroup_root / "memory" / "memory.limit_in_bytes", "cgroup memory.limit_in_bytes"


class MemoryGuard:
    """``pressure()``: why new request work is refused now, or None."""

    def __init__(self, limit_bytes: int, source: str, rss: Callable[[], int] = process_rss,
                 clock: Callable[[], float] = time.monotonic, sample_s: float = SAMPLE_S) -> None:
        self.limit_bytes = limit_bytes
        self.source = source
        self.rss = rss
        self.clock = clock
        self.sample_s = sample_s
        self._lock = threading.Lock()
        self._sampled_at = -float("inf")
        self._resident = 0
        self._pending = 0  # bytes admitted since the last sample, not yet in its figure
        self._last_refused = -float("inf")

    @classmethod
    def for_setting(cls, setting: int) -> "MemoryGuard":
        """The guard of ``--memory-limit`` (0: the cgroup's limit, else the machine's memory)."""
        return cls(*memory_limit(setting))

    @property
    def high_bytes(self) -> int:
        return int(self.limit_bytes * HIGH_RATIO)

    def pressure(self) -> str | None:
        """Asked at every check of every outside query: no lock unless the sample is stale."""
        if self.limit_bytes <= 0:
            return None
        now = self._resample()
        resident = self._resident
        if resident < self.high_bytes:
            return None
        self._last_refused = now
        return self._reason(f"at {resident / 2**20:,.0f} MiB")

    def admit(self, nbytes: int) -> str | None:
        """Before a query allocates ``nbytes``: why that is refused (resident memory, what was
        admitted since it was read, and these bytes would pass the line), or None (admitted)."""
        if self.limit_bytes <= 0:
            return None
        now = self._resample()
        with self._lock:
            projected = self._resident + self._pending + nbytes
            if projected < self.high_bytes:
                self._pending += nbytes
                return None
        self._last_refused = now
        return self._reason(f"at {self._resident / 2**20:,.0f} MiB and would reach {projected / 2**20:,.0f} MiB")

    def _resample(self) -> float:
        now = self.clock()
        if now - self._sampled_at >= self.sample_s:
            with self._lock:
                if now - self._sampled_at >= self.sample_s:
                    self._resident, self._pending, self._sampled_at = self.rss(), 0, now
        return now

    def _reason(self, where: str) -> str:
        return (f"the server's memory is {where} of its {self.limit_bytes / 2**20:,.0f} MiB limit ({self.source}); "
                f"pages and queries wait until it is below {self.high_bytes / 2**20:,.0f} MiB")

    def problems(self) -> dict[str, str]:
        if self.clock() - self._last_refused > REPORT_S:
            return {}
        return {"memory_pressure": f"pages and queries refused with 503 within the last {REPORT_S:.0f} s: resident "
                                   f"memory reached {HIGH_RATIO:.0%} of {self.limit_bytes / 2**20:,.0f} MiB "
                                   f"({self.source}); scraping, rules and alerting go on"}

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("clusterwatch_memory_limit_bytes",
                                "The memory the server holds itself to (--memory-limit, its cgroup's, or the machine's)",
                                self.limit_bytes)
        yield GaugeMetricFamily("clusterwatch_memory_high_bytes",
                                "Resident memory above which new pages and queries are refused with 503",
                                self.high_bytes)
