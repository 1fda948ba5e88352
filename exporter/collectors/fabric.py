"""Fabric collector: every switch port's counters and both ends of every cable, from one host.

Switches run no exporter; this collector, enabled only when named (``--collectors fabric``) on one
management host per fabric, sweeps the fabric through infiniband-diags in a background thread
(``exporter/fabric/sweep.py``) every ``fabric_interval`` and exposes the last completed sweep, so a
scrape never waits on the fabric. Every per-link series names both ends of the cable with the
fabric contract's labels (``switch``, ``switch_port``, ``peer``, ``peer_port``; docs/metrics.md).
"""
from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from typing import Mapping

from cwkernel.metrics import FamilySet, MetricSpec, counter, gauge, metric_table
from exporter.collector import Collector, CollectorContext, register_collector
from exporter.config import ExporterConfig
from exporter.fabric import plan as fabric_plan
from exporter.fabric.runner import SubprocessRunner
from exporter.fabric.iblinkinfo import PortLink
from exporter.fabric.sweep import LINK_LABELS, FabricTools, LinkView, SweepResult, SweepSettings, Sweeper

log = logging.getLogger(__name__)

LINK = LINK_LABELS  # one definition of a link's identity (the fabric contract), shared with the sweep
END = (*LINK, "end")
_SRC = "iblinkinfo"
_PQ = "perfquery -x"

# fabric_link_<name>_total -> help; the perfquery fields they come from are exporter/fabric/perfquery.py's table.
LINK_COUNTERS = {
    "symbol_errors": "Minor link errors detected on one or more physical lanes (SymbolErrorCounter).",
    "error_recovery": "Times the link completed the link error recovery process (LinkErrorRecoveryCounter).",
    "downed": "Times the link failed to recover from an error and went down (LinkDownedCounter).",
    "receive_errors": "Packets containing an error received on the port (PortRcvErrors).",
    "receive_remote_physical_errors": "Packets marked with the EBP delimiter received (PortRcvRemotePhysicalErrors).",
    "receive_switch_relay_errors": "Packets received that the switch could not forward (PortRcvSwitchRelayErrors).",
    "transmit_discards": "Outbound packets discarded because the port was down or congested (PortXmitDiscards).",
    "transmit_constraint_errors": "Packets not transmitted because of constraints (PortXmitConstraintErrors).",
    "receive_constraint_errors": "Packets received and discarded because of constraints (PortRcvConstraintErrors).",
    "integrity_errors": "Times local physical errors exceeded their threshold (LocalLinkIntegrityErrors).",
    "buffer_overrun_errors": "Times consecutive flow-control overruns exceeded their threshold (ExcessiveBufferOverrunErrors).",
    "vl15_dropped": "Incoming VL15 (subnet management) packets dropped for lack of resources (VL15Dropped).",
    "transmit_wait": "Ticks during which the port had data to send but no flow-control credits (PortXmitWait).",
    "transmit_bytes": "Data octets transmitted on the port (PortXmitData x 4: the counter counts 4-byte words).",
    "receive_bytes": "Data octets received on the port (PortRcvData x 4: the counter counts 4-byte words).",
    "transmit_packets": "Packets transmitted on the port (PortXmitPkts).",
    "receive_packets": "Packets received on the port (PortRcvPkts).",
}
PORT_GAUGES = {  # metric -> (help, unit, PortLink attribute)
    "fabric_link_state": ("IB PortState of this end: 1 down, 2 init, 3 armed, 4 active.", "enum", "state"),
    "fabric_link_physical_state": ("IB PortPhysicalState of this end: 2 polling, 3 disabled, 5 LinkUp, 6 error recovery.",
                                   "enum", "physical_state"),
    "fabric_link_width_lanes": ("Active link width in lanes (1, 2, 4, 8, 12).", "lanes", "width"),
    "fabric_link_capable_width_lanes": ("The widest width both ends support and enable (iblinkinfo's 'Could be').",
                                        "lanes", "capable_width"),
    "fabric_link_lane_rate_bits_per_second": ("Active per-lane signalling rate (53.125e9 for HDR).", "bits per second",
                                              "lane_rate"),
    "fabric_link_capable_lane_rate_bits_per_second": ("The fastest per-lane rate both ends support and enable.",
                                                      "bits per second", "capable_lane_rate"),
}

TABLE = metric_table(
    gauge("fabric_link_info", "One cable of the fabric, value 1: both ends, the host of an HCA end, the GUIDs.",
          (*LINK, "link_type", "node", "switch_guid", "peer_guid"), "info", "ibnetdiscover"),
    gauge("fabric_switch_info", "One switch of the fabric, value 1: its tier (hops from the nearest HCA) and rack.",
          ("switch", "switch_guid", "tier", "rack"), "info", "ibnetdiscover, the fabric plan"),
    *(gauge(name, text, END, unit, _SRC) for name, (text, unit, _) in PORT_GAUGES.items()),
    *(counter(f"fabric_link_{name}_total", text, END, "", _PQ) for name, text in LINK_COUNTERS.items()),
    gauge("fabric_sweep_duration_seconds", "Wall time of the last completed fabric sweep.", (), "seconds", "fabric sweep"),
    gauge("fabric_sweep_ports", "Ports whose counters the last sweep read.", (), "ports", "fabric sweep"),
    gauge("fabric_sweep_last_success_timestamp_seconds", "Unix time the last sweep that read the topology finished.",
          (), "seconds", "fabric sweep"),
    counter("fabric_sweep_errors_total", "Tool runs that gave no answer (not installed, timed out, output over its cap, "
            "failed), by tool.", ("tool",), "", "fabric sweep"),
    gauge("fabric_topology_malformed_lines", "Lines of the tools' output the last sweep skipped as unreadable.",
          (), "lines", "fabric sweep"),
    gauge("fabric_sweep_incomplete", "1 when the last sweep stopped at its time bound before reading every port.",
          (), "", "fabric sweep"),
)


class SweepFamilies(FamilySet):
    """The families of one sweep, rendered to text once.

    They change once a sweep (a minute) while the exporter renders every collection (seconds); at
    16,384 nodes the text is 2 million series, so it is kept rather than rebuilt, and its series
    prefixes stay out of the exporter's per-series cache, which would hold them all for nothing.
    """

    def __init__(self, table: Mapping[str, MetricSpec]) -> None:
        super().__init__(table)
        self._texts: dict[bool, str] = {}  # openmetrics? -> the rendered families

    def render_text(self, out: list[str], series_cache: dict | None = None, openmetrics: bool = False) -> None:
        if openmetrics not in self._texts:
            parts: list[str] = []
            super().render_text(parts, {}, openmetrics)
            self._texts[openmetrics] = "".join(parts)
        out.append(self._texts[openmetrics])


def settings_of(config: ExporterConfig) -> SweepSettings:
    return SweepSettings(max_seconds=config.fabric_sweep_timeout, ports_per_second=config.fabric_ports_per_second,
                         tool_timeout=config.fabric_tool_timeout, max_output_bytes=config.fabric_max_output_bytes,
                         hca_counters=config.fabric_hca_counters, ca=config.fabric_ca)


@register_collector("fabric", default_enabled=False)
class FabricCollector(Collector):
    """InfiniBand fabric from one host: switch-side counters and both ends of every cable (when named)."""

    def __init__(self, ctx: CollectorContext) -> None:
        super().__init__(ctx)
        config = ctx.config
        tools: FabricTools | None = ctx.fabric_tools
        if tools is None:  # a real host: the Debian binaries and the site's plan
            tools = FabricTools(SubprocessRunner(config.fabric_tools_dir),
                                fabric_plan.load(config.fabric_plan) if config.fabric_plan else fabric_plan.Plan())
        for problem in tools.plan.problems:
            log.warning("fabric plan: %s (entry skipped)", problem)
        self.interval = config.fabric_interval
        self._errors: Counter[str] = Counter()
        self._errors_lock = threading.Lock()
        self.sweeper = Sweeper(tools.runner, settings_of(config), tools.plan, on_error=self._count_error)
        self._result: SweepResult | None = None
        self._rendered: tuple[SweepResult, SweepFamilies] | None = None
        self._last_success = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        # False: sweeps only when sweep_once() is called (tests and benchmarks drive them).
        self.run_in_background = True

    def _count_error(self, tool: str, reason: str) -> None:
        with self._errors_lock:
            self._errors[tool] += 1

    # ---- the background sweep ----------------------------------------------------------------

    def start(self) -> None:
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="fabric-sweep", daemon=True)
                self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            began = time.monotonic()
            self.sweep_once()
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - began)))

    def sweep_once(self) -> SweepResult:
        """One sweep now (the background loop's step; tests and benchmarks call it directly)."""
        try:
            result = self.sweeper.sweep()
        except Exception:  # noqa: BLE001 - the loop must outlive a bug in one sweep
            log.exception("fabric sweep failed")
            self._count_error("sweep", "exception")
            return self._result or SweepResult()
        if result.complete_topology:
            self._last_success = result.finished
        self._result = result
        return result

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    # ---- exposition --------------------------------------------------------------------------

    def collect(self) -> list[FamilySet]:
        if self.run_in_background:
            self.start()
        health = FamilySet(TABLE)
        result = self._result  # one reference: a sweep finishing meanwhile replaces it whole
        with self._errors_lock:
            errors = dict(self._errors)
        for tool in ("ibnetdiscover", "iblinkinfo", "perfquery", *sorted(set(errors) - {"ibnetdiscover", "iblinkinfo", "perfquery"})):
            health.add("fabric_sweep_errors_total", errors.get(tool, 0), tool=tool)
        if result is None:
            return [health]  # the first sweep is still running
        health.add("fabric_sweep_last_success_timestamp_seconds", self._last_success)
        # The links' families change once a sweep (a minute) while the exporter collects every few
        # seconds: build them once per sweep, not once per collection.
        cached = self._rendered
        if cached is None or cached[0] is not result:
            families = SweepFamilies(TABLE)
            render(families, result)
            cached = self._rendered = (result, families)
        return [cached[1], health]


def render(out: FamilySet, result: SweepResult) -> None:
    """The families of one sweep (the collector's exposition, also what the benchmark times)."""
    for name, guid, tier, rack in result.switches:
        out.add("fabric_switch_info", 1, switch=name, switch_guid=guid, tier=tier, rack=rack)
    for view in result.links:
        _link(out, view, result)
    out.add("fabric_sweep_duration_seconds", result.duration)
    out.add("fabric_sweep_ports", result.ports_read)
    out.add("fabric_topology_malformed_lines", result.malformed_lines)
    out.add("fabric_sweep_incomplete", 1 if result.incomplete else 0)


_GAUGES = tuple((name, attribute) for name, (_, _, attribute) in PORT_GAUGES.items())
_COUNTERS = tuple((key, f"fabric_link_{key}_total") for key in LINK_COUNTERS)
_ALWAYS = ("state", "physical_state")  # a down port has no width or speed: those are left out, not 0


def _link(out: FamilySet, view: LinkView, result: SweepResult) -> None:
    labels = view.labels()
    out.add("fabric_link_info", 1, **labels, link_type=view.link_type, node=view.node,
            switch_guid=view.switch_guid, peer_guid=view.peer_guid)
    for role, end in view.ends:
        link: PortLink | None = result.port_links.get(end) if end is not None else None
        if link is not None:
            for name, attribute in _GAUGES:
                value = getattr(link, attribute)
                if value or attribute in _ALWAYS:
                    out.add(name, value, **labels, end=role)
        elif end is None or end in result.down:
            out.add("fabric_link_state", 1, **labels, end=role)  # planned or seen before, not discovered now
        values = result.counters.get(end) if end is not None else None
        for key, name in _COUNTERS if values else ():
            value = values.get(key)
            if value is not None:
                out.add(name, value, **labels, end=role)
