"""The fabric page (issue 19): the leaf/spine graph coloured by recorded link health, the worst
cables with what they put at risk, and a switch's page.

It reads ``fabric_switch_info``, ``fabric_link_info`` and the ``fabric-links`` group's recorded
series only, through the query interface. What comes back is sized by the switches and the bad
cables, never by the cables: at 16,384 nodes (49,152 cables, 2,048 switches) the per-switch counts
and the bad cables are aggregated or filtered by the engine. The graph has one node per switch
and one edge per switch pair, coloured by its worst cable; host cables are summed per leaf. Above
EDGES_ALL_UP_TO inter-switch cables only the pairs with a bad cable are drawn (a line per pair is
then under a pixel apart), the healthy ones counted per tier pair (docs/dashboard.md#fabric).
"""
from __future__ import annotations

from pydantic import BaseModel, Field

from alerts.fabric_health import HEALTH, HEALTH_NAMES, HEALTHY
from dashboard.context import DashboardContext
from dashboard.params import TimeRange
from dashboard.promql import scalars
from dashboard.views.fabric_impact import Impact, impacts
from dashboard.views.fabric_links import (BAD, ON_LINK, Cable, Link, LinkState, bad_since, cable_of,
                                          health_name, link_of, link_states, quoted,
                                          state_of)
from tsdb.client import QueryClient

TIERS = ("core", "spine", "leaf", "")  # top to bottom; "" a switch fabric_switch_info does not describe
EDGES_ALL_UP_TO = 4_096  # inter-switch cables: up to this many every pair is drawn, above it the bad ones
EDGES_SHOWN = 4_096  # bad pairs drawn at most, worst first
WORST_SHOWN = 50
BAD_SWITCHES_SHOWN = 50


class FabricGraph(BaseModel):
    """Columns: switch ``i`` is ``switches[i]`` in tier ``tiers[tier[i]]``; edge ``j`` joins
    ``switches[edge_a[j]]`` (lower end) and ``switches[edge_b[j]]``."""

    tiers: list[str]
    switches: list[str]
    tier: list[int]
    worst: list[int] = Field(description="worst health of the switch's cables (either end)")
    bad: list[int] = Field(description="the switch's cables with health >= 1 (either end)")
    hosts: list[int] = Field(description="host cables on the switch")
    hosts_bad: list[int]
    hosts_worst: list[int]
    edge_a: list[int]
    edge_b: list[int]
    edge_health: list[int] = Field(description="worst health of the pair's cables")
    edge_links: list[int] = Field(description="cables in the pair (with edges='bad': its bad cables)")
    edges: str = Field(description="'all': every switch pair; 'bad': only pairs with a bad cable")
    edges_omitted: int = Field(description="pairs not sent: healthy ones (edges='bad') and bad ones over the cap")
    isl_by_tiers: dict[str, int] = Field(description="'leaf-spine' -> inter-switch cables between those tiers")


class WorstLink(BaseModel):
    cable: Cable
    state: LinkState
    since: float | None = Field(description="when the current bad spell began (within the range)")
    since_before_range: bool
    impact: Impact


class BadSwitch(BaseModel):
    switch: str
    tier: str
    bad_links: int
    worst: int
    worst_name: str


def health_legend() -> list[str]:
    """The health names by code, for the page's legend and colours."""
    return [HEALTH_NAMES[code] for code in sorted(HEALTH_NAMES)]


class FabricView(BaseModel):
    time: float
    start: float
    end: float
    health_names: list[str] = Field(description="fabric_link:health's names by code (0 healthy ...)")
    switches: dict[str, int] = Field(description="tier -> switches")
    links: int
    links_by_health: dict[str, int] = Field(description="health name -> cables; 'no data': no recorded health")
    graph: FabricGraph
    bad_switches: list[BadSwitch]
    worst_links: list[WorstLink]
    worst_total: int = Field(description="cables with health >= 1 (the list shows the worst)")


def _tiers(client: QueryClient, at: float) -> dict[str, str]:
    return {labels.get("switch", ""): labels.get("tier", "") for labels, _ in
            client.instant("fabric_switch_info", at).samples()}


def _rank(state: LinkState) -> tuple:
    return (-(state.health or 0), -max(state.errors_per_second.values(), default=0.0),
            -max(state.downed_15m.values(), default=0.0))


def fabric(ctx: DashboardContext, tr: TimeRange) -> FabricView:
    client, at = ctx.query, tr.end
    tier_of = _tiers(client, at)
    counts: dict[str, dict[str, int]] = {}
    for labels, value in client.instant("count by (switch, link_type) (fabric_link_info)", at).samples():
        counts.setdefault(labels.get("switch", ""), {})[labels.get("link_type", "")] = int(value)
    totals = scalars(client, {"links": "count(fabric_link_info)", "healthy": f"count({HEALTH} == {HEALTHY})",
                              "missing": f"count(fabric_link_info unless {ON_LINK} {HEALTH})"}, at)
    bad = link_states(client, at, restrict=f" and {ON_LINK} {BAD}")
    bad = {link: state for link, state in bad.items() if state.health}
    info = {link_of(labels): cable_of(labels) for labels, _ in
            client.instant(f"fabric_link_info and {ON_LINK} {BAD}", at).samples()}
    cables = {link: info.get(link) or Cable(switch=link[0], switch_port=link[1], peer=link[2], peer_port=link[3],
                                            link_type="isl" if link[2] in tier_of else "", node="")
              for link in bad}
    isl_links = sum(c.get("isl", 0) for c in counts.values())
    pairs = _pairs(client, at) if isl_links <= EDGES_ALL_UP_TO else None
    graph = _graph(tier_of, counts, bad, cables, pairs, isl_links)

    ranked = sorted(bad, key=lambda link: (_rank(bad[link]), link))[:WORST_SHOWN]
    since = bad_since(client, tr, ranked)
    by_cable, _ = impacts(client, at, [cables[link] for link in ranked], [], ctx.snapshot())
    worst = [WorstLink(cable=cables[link], state=bad[link], since=since.get(link, (None, False))[0],
                       since_before_range=since.get(link, (None, False))[1], impact=impact)
             for link, impact in zip(ranked, by_cable)]
    by_health = {name: 0 for name in HEALTH_NAMES.values()}
    for state in bad.values():
        by_health[health_name(state.health)] = by_health.get(health_name(state.health), 0) + 1
    by_health["healthy"] = int(totals["healthy"] or 0)
    by_health["no data"] = int(totals["missing"] or 0)
    switches: dict[str, int] = {}
    for index in graph.tier:
        switches[graph.tiers[index] or "unknown"] = switches.get(graph.tiers[index] or "unknown", 0) + 1
    bad_switches = sorted(
        (BadSwitch(switch=name, tier=graph.tiers[graph.tier[i]], bad_links=graph.bad[i], worst=graph.worst[i],
                   worst_name=health_name(graph.worst[i]))
         for i, name in enumerate(graph.switches) if graph.bad[i]),
        key=lambda s: (-s.worst, -s.bad_links, s.switch))[:BAD_SWITCHES_SHOWN]
    return FabricView(time=ctx.clock(), start=tr.start, end=tr.end, health_names=health_legend(),
                      switches=switches,
                      links=int(totals["links"] or 0), links_by_health=by_health, graph=graph,
                      bad_switches=bad_switches, worst_links=worst, worst_total=len(bad))


def _pairs(client: QueryClient, at: float) -> dict[tuple[str, str], int]:
    return {(labels.get("switch", ""), labels.get("peer", "")): int(value) for labels, value in
            client.instant('count by (switch, peer) (fabric_link_info{link_type="isl"})', at).samples()}


def _graph(tier_of: dict[str, str], counts: dict[str, dict[str, int]], bad: dict[Link, LinkState],
           cables: dict[Link, Cable], pairs: dict[tuple[str, str], int] | None, isl_links: int) -> FabricGraph:
    names = set(tier_of) | set(counts) | {p for pair in (pairs or {}) for p in pair}
    bad_pairs: dict[tuple[str, str], list[int]] = {}  # (lower, upper) -> [worst, bad cables]
    worst: dict[str, int] = {}
    bad_count: dict[str, int] = {}
    hosts_bad: dict[str, list[int]] = {}
    for link, state in bad.items():
        code = state.health or 0
        ends = [link[0]]
        if cables[link].link_type == "host":
            entry = hosts_bad.setdefault(link[0], [0, 0])
            entry[0], entry[1] = entry[0] + 1, max(entry[1], code)
        else:
            ends.append(link[2])
            entry = bad_pairs.setdefault((link[0], link[2]), [0, 0])
            entry[0], entry[1] = max(entry[0], code), entry[1] + 1
        for end in ends:
            names.add(end)
            worst[end] = max(worst.get(end, 0), code)
            bad_count[end] = bad_count.get(end, 0) + 1
    def row(name: str) -> int:
        tier = tier_of.get(name, "")
        return TIERS.index(tier) if tier in TIERS else TIERS.index("")

    order = sorted(names, key=lambda n: (row(n), n))
    index = {name: i for i, name in enumerate(order)}
    if pairs is not None:
        edges = [(a, b, bad_pairs.get((a, b), [0])[0], n) for (a, b), n in pairs.items()]
        omitted = 0
    else:
        ranked = sorted(bad_pairs.items(), key=lambda item: (-item[1][0], -item[1][1], item[0]))
        edges = [(a, b, w, n) for (a, b), (w, n) in ranked[:EDGES_SHOWN]]
        omitted = isl_links - sum(n for _, _, _, n in edges)
    by_tiers: dict[str, int] = {}
    lower_tier = {"leaf": "spine", "spine": "core"}
    for switch, kinds in counts.items():
        if kinds.get("isl"):
            tier = tier_of.get(switch, "") or "unknown"
            key = f"{tier}-{lower_tier.get(tier, 'up')}"
            by_tiers[key] = by_tiers.get(key, 0) + kinds["isl"]
    return FabricGraph(
        tiers=list(TIERS), switches=order,
        tier=[row(n) for n in order],
        worst=[worst.get(n, 0) for n in order], bad=[bad_count.get(n, 0) for n in order],
        hosts=[counts.get(n, {}).get("host", 0) for n in order],
        hosts_bad=[hosts_bad.get(n, [0, 0])[0] for n in order],
        hosts_worst=[hosts_bad.get(n, [0, 0])[1] for n in order],
        edge_a=[index[a] for a, _, _, _ in edges], edge_b=[index[b] for _, b, _, _ in edges],
        edge_health=[w for _, _, w, _ in edges], edge_links=[n for _, _, _, n in edges],
        edges="all" if pairs is not None else "bad", edges_omitted=max(0, omitted), isl_by_tiers=by_tiers)


# --- a switch's page ---


class SwitchPort(BaseModel):
    port: str = Field(description="this switch's port")
    direction: str = Field(description="host, down (to a lower tier) or up")
    other_end: str = Field(description="the switch, or '<host> <hca>', at the cable's other end")
    other_port: str
    cable: Cable
    state: LinkState
    since: float | None
    since_before_range: bool
    impact: Impact


class SwitchView(BaseModel):
    time: float
    start: float
    end: float
    health_names: list[str]
    name: str
    tier: str
    rack: str
    guid: str
    ports: list[SwitchPort]
    bad_ports: int
    impact: Impact = Field(description="the nodes under this switch and the running jobs on them")


class SwitchNotFound(LookupError):
    pass


def switch(ctx: DashboardContext, tr: TimeRange, name: str) -> SwitchView:
    """``name`` must already be validated (dashboard.views.fabric_links.is_switch_name)."""
    client, at, q = ctx.query, tr.end, quoted(name)
    info = [labels for labels, _ in client.instant(f"fabric_switch_info{{switch={q}}}", at).samples()]
    cables = [cable_of(labels) for labels, _ in
              client.instant(f"fabric_link_info{{switch={q}}} or fabric_link_info{{peer={q}}}", at).samples()]
    if not info and not cables:
        raise SwitchNotFound(f"switch {name} is in neither fabric_switch_info nor fabric_link_info")
    states = link_states(client, at, f"switch={q}") | link_states(client, at, f"peer={q}")
    links = [(c.switch, c.switch_port, c.peer, c.peer_port) for c in cables]
    since = bad_since(client, tr, [link for link in links if (states.get(link) and states[link].health)])
    by_cable, (own,) = impacts(client, at, cables, [name], ctx.snapshot())
    ports = []
    for cable, link, impact in zip(cables, links, by_cable):
        lower = cable.switch == name
        state = states.get(link) or state_of(None)
        began, before = since.get(link, (None, False))
        ports.append(SwitchPort(
            port=cable.switch_port if lower else cable.peer_port,
            direction="host" if cable.link_type == "host" else ("up" if lower else "down"),
            other_end=cable.peer if lower else cable.switch, other_port=cable.peer_port if lower else cable.switch_port,
            cable=cable, state=state, since=began, since_before_range=before, impact=impact))
    ports.sort(key=lambda p: (int(p.port) if p.port.isdigit() else 1 << 30, p.port))
    labels = info[0] if info else {}
    return SwitchView(time=ctx.clock(), start=tr.start, end=tr.end, health_names=health_legend(), name=name,
                      tier=labels.get("tier", ""), rack=labels.get("rack", ""), guid=labels.get("switch_guid", ""),
                      ports=ports, bad_ports=sum(1 for p in ports if p.state.health), impact=own)
