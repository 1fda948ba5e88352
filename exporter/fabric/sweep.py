"""One sweep of the fabric: topology, link states, then every port's counters, within bounds.

A sweep runs ``ibnetdiscover`` (who is cabled to whom), ``iblinkinfo`` (state, width and speed of
every port, and what each link could run at), then ``perfquery -x`` once per switch for all its
cabled ports (and, when asked, once per HCA port). Why perfquery per switch and not
``ibqueryerrors`` over the whole fabric: ibqueryerrors prints only counters above its thresholds
(a port it does not print may be clean or unread), and its data counters only with extra options;
one perfquery per switch returns every counter of every port, zeros included, in one MAD exchange
per port, and its ports can be paced.

Bounds: the whole sweep stops at ``max_seconds`` (what was read is kept, ``incomplete`` is set);
ports are read at most ``ports_per_second``; each tool call has ``tool_timeout`` and an output cap.
A tool that fails is counted by name and the sweep goes on with what the others gave.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Callable

from exporter.fabric import iblinkinfo, ibnetdiscover, perfquery
from exporter.fabric.iblinkinfo import LinkInfo, PortLink
from exporter.fabric.naming import HcaName, SwitchName, name_hcas, name_switches
from exporter.fabric.plan import Plan
from exporter.fabric.runner import ToolError, ToolRunner
from exporter.fabric.topology import CA, SWITCH, End, Fabric, Malformed

log = logging.getLogger(__name__)
LINK_LABELS = ("switch", "switch_port", "peer", "peer_port")
MALFORMED_LOGGED = 5  # per tool run


@dataclass(frozen=True)
class SweepSettings:
    max_seconds: float = 60.0
    ports_per_second: float = 2000.0
    tool_timeout: float = 30.0
    max_output_bytes: int = 64 << 20
    hca_counters: bool = False
    ca: str = ""  # the local HCA the tools use (-C); "" lets them choose


@dataclass(frozen=True)
class LinkView:
    """One cable as the series label it; ``ends`` maps ``switch``/``peer`` to the port read."""

    switch: str
    switch_port: int
    peer: str
    peer_port: int
    link_type: str
    node: str
    switch_guid: str  # as the tools print it, 0x and 16 hex digits; "" for a planned cable not found
    peer_guid: str
    ends: tuple[tuple[str, End | None], ...]

    def labels(self) -> dict[str, str]:
        return dict(zip(LINK_LABELS, (self.switch, str(self.switch_port), self.peer, str(self.peer_port))))


@dataclass
class SweepResult:
    links: list[LinkView] = field(default_factory=list)
    switches: list[tuple[str, str, str, str]] = field(default_factory=list)  # name, guid, tier, rack
    port_links: dict[End, PortLink] = field(default_factory=dict)
    counters: dict[End, dict[str, float]] = field(default_factory=dict)
    down: set[End] = field(default_factory=set)  # ends of links known before and not discovered now
    started: float = 0.0
    finished: float = 0.0
    duration: float = 0.0
    ports_read: int = 0
    incomplete: bool = False
    malformed_lines: int = 0
    complete_topology: bool = False


class Sweeper:
    """Runs sweeps; remembers the links seen so far, so that a cable that went down still shows."""

    def __init__(self, runner: ToolRunner, settings: SweepSettings, plan: Plan | None = None,
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time,
                 wait: Callable[[float], object] = time.sleep,
                 on_error: Callable[[str, str], None] = lambda tool, reason: None) -> None:
        self.runner, self.settings, self.plan = runner, settings, plan or Plan()
        self.clock, self.wall, self.wait, self.on_error = clock, wall, wait, on_error
        self._fabric: Fabric | None = None
        self._known: dict[tuple[str, int], LinkView] = {}

    # ---- the sweep ---------------------------------------------------------------------------

    def sweep(self) -> SweepResult:
        result = SweepResult(started=self.wall())
        start = self.clock()
        fabric = self._topology(result)
        if fabric is not None:
            switches = name_switches(fabric, self.plan)
            result.links, result.down = self._with_known_links(self._links(fabric, switches))
            result.switches = sorted((name.name, f"0x{guid}", name.tier, name.rack) for guid, name in switches.items())
            info = self._link_info(result, start)
            if info is not None:
                result.port_links = self._port_links(fabric, info)
            self._counters(fabric, result, start)
        result.duration = self.clock() - start
        result.finished = self.wall()
        return result

    def _remaining(self, start: float) -> float:
        return self.settings.max_seconds - (self.clock() - start)

    def _run(self, argv: list[str], start: float) -> str | None:
        budget = min(self.settings.tool_timeout, self._remaining(start))
        if budget <= 0:
            return None
        try:
            return self.runner.run(argv, budget, self.settings.max_output_bytes).stdout
        except ToolError as exc:
            log.warning("fabric sweep: %s", exc)
            self.on_error(exc.tool, exc.reason)
            return None

    def _base(self, tool: str) -> list[str]:
        return [tool, "-C", self.settings.ca] if self.settings.ca else [tool]

    def _topology(self, result: SweepResult) -> Fabric | None:
        text = self._run(self._base("ibnetdiscover"), self.clock())
        if text is None:
            return self._fabric  # the last topology read still names the cables
        fabric = ibnetdiscover.parse(text)
        _skipped(result, "ibnetdiscover", fabric.malformed)
        self._fabric = fabric
        result.complete_topology = True
        return fabric

    def _link_info(self, result: SweepResult, start: float) -> LinkInfo | None:
        text = self._run(self._base("iblinkinfo"), start)
        if text is None:
            return None
        info = iblinkinfo.parse(text)
        _skipped(result, "iblinkinfo", info.malformed)
        return info

    # ---- naming the links --------------------------------------------------------------------

    def _links(self, fabric: Fabric, switches: dict[str, SwitchName]) -> list[LinkView]:
        hcas = name_hcas(fabric, self.plan)
        tiers = fabric.tiers()
        views = []
        for link in fabric.links.values():
            a, b = fabric.nodes.get(link.a.guid), fabric.nodes.get(link.b.guid)
            if a is None or b is None:
                continue  # a port line naming a node the output never described
            if a.kind != SWITCH and b.kind != SWITCH:
                continue  # HCA to HCA, back to back: no switch side to report
            lower, upper = (link.a, link.b)
            if a.kind != SWITCH or (b.kind == SWITCH and (tiers[b.guid], switches[b.guid].name) <
                                    (tiers[a.guid], switches[a.guid].name)):
                lower, upper = link.b, link.a
            peer_node = fabric.nodes[upper.guid]
            if peer_node.kind == SWITCH:
                peer_name, node, kind = switches[upper.guid].name, "", "isl"
            else:
                hca: HcaName = hcas.get(upper.guid, HcaName(f"ca-{upper.guid}", ""))
                peer_name, node, kind = hca.peer, hca.node, "host"
            views.append(LinkView(switches[lower.guid].name, lower.port, peer_name, upper.port, kind, node,
                                  f"0x{lower.guid}", f"0x{upper.guid}", (("switch", lower), ("peer", upper))))
        views.sort(key=lambda view: (view.switch, view.switch_port))
        return views

    def _with_known_links(self, links: list[LinkView]) -> tuple[list[LinkView], set[End]]:
        """Links seen in an earlier sweep or planned, and not discovered now, are down cables."""
        current = {(view.switch, view.switch_port): view for view in links}
        down: set[End] = set()
        for key, view in self._known.items():
            if key not in current:
                current[key] = view
                down.update(end for _, end in view.ends if end is not None)
        for planned in self.plan.links:
            key = (planned.switch, planned.switch_port)
            if key not in current:
                kind = "host" if " " in planned.peer else "isl"
                current[key] = LinkView(planned.switch, planned.switch_port, planned.peer, planned.peer_port, kind,
                                        planned.peer.split(" ", 1)[0] if kind == "host" else "", "", "",
                                        (("switch", None), ("peer", None)))
        self._known.update((key, view) for key, view in current.items() if view.switch_guid)
        return sorted(current.values(), key=lambda view: (view.switch, view.switch_port)), down

    @staticmethod
    def _port_links(fabric: Fabric, info: LinkInfo) -> dict[End, PortLink]:
        port_links: dict[End, PortLink] = {}
        by_port_guid = {guid: end for end, guid in fabric.port_guids.items()}
        for (guid, port), value in info.switch_ports.items():
            port_links[End(guid, port)] = value
        for (port_guid, port), value in info.ca_ports.items():
            end = by_port_guid.get(port_guid)
            port_links[end if end is not None else End(port_guid, port)] = value
        return port_links

    # ---- counters ----------------------------------------------------------------------------

    def _counters(self, fabric: Fabric, result: SweepResult, start: float) -> None:
        wanted: dict[str, set[int]] = {}
        for view in result.links:
            for role, end in view.ends:
                if end is None:
                    continue
                node = fabric.nodes.get(end.guid)
                if node is not None and (node.kind == SWITCH or (self.settings.hca_counters and role == "peer")):
                    wanted.setdefault(end.guid, set()).add(end.port)
        for guid in sorted(wanted):
            ports = sorted(wanted[guid])
            if not self._pace(result, start, len(ports)):
                result.incomplete = True
                return
            target: str | None = guid
            if fabric.nodes[guid].kind == CA:
                # perfquery -G takes a port GUID; an HCA whose cable is down now has none to reach.
                target = fabric.port_guids.get(End(guid, ports[0]))
                if target is None:
                    continue
            argv = [*self._base("perfquery"), "-x", "-l", "-G", f"0x{target}", ",".join(map(str, ports))]
            text = self._run(argv, start)
            if text is None:
                if self._remaining(start) <= 0:
                    result.incomplete = True
                    return
                continue
            parsed = perfquery.parse(text)
            _skipped(result, "perfquery", parsed.malformed)
            for port, values in parsed.ports.items():
                if port in wanted[guid]:
                    result.counters[End(guid, port)] = values
            result.ports_read += len(ports)

    def _pace(self, result: SweepResult, start: float, ports: int) -> bool:
        """Wait until reading ``ports`` more keeps to the rate; False once the sweep's time is up."""
        due = start + result.ports_read / self.settings.ports_per_second
        delay = due - self.clock()
        if delay > 0:
            if delay >= self._remaining(start):
                return False
            self.wait(delay)
        return self._remaining(start) > 0


def _skipped(result: SweepResult, tool: str, malformed: list[Malformed]) -> None:
    """Count a tool's unreadable lines; log the first few with their numbers (the rest would flood)."""
    result.malformed_lines += len(malformed)
    for bad in malformed[:MALFORMED_LOGGED]:
        log.info("%s: skipped %s", tool, bad)
    if len(malformed) > MALFORMED_LOGGED:
        log.info("%s: %d more lines skipped", tool, len(malformed) - MALFORMED_LOGGED)


@dataclass
class FabricTools:
    """What the fabric collector reads through: the runner and the site's plan (names, cables)."""

    runner: ToolRunner
    plan: Plan = field(default_factory=Plan)
