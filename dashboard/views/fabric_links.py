"""The fabric's cables as the page reads them: the contract's link identity (issue 19: ``switch``,
``switch_port``, ``peer``, ``peer_port``), switch names checked and quoted for PromQL, the recorded
health of a set of cables with their per-end error rates, since when a bad cable has been bad, and
a node's HCA cables (the node page).

Health is read from ``fabric_link:health`` only, never derived here: its codes, names, thresholds
and series names are the ``fabric-links`` rule group's, defined once in ``alerts.fabric_health``.
"""
from __future__ import annotations

import math
import re
from typing import Iterable, Mapping

from pydantic import BaseModel, Field

from alerts.fabric_health import DOWNED_INCREASE, ERRORS, ERRORS_RATE, HEALTH, HEALTH_NAMES, LINK
from dashboard.params import TimeRange
from tsdb.client import QueryClient

ON_LINK = f"on ({', '.join(LINK)})"
ENDS = ("switch", "peer")
PER_END = f"{ERRORS_RATE}|{DOWNED_INCREASE}"
BAD = f"({HEALTH} >= {ERRORS})"  # a bad cable: any health code from "errors" up

# A switch name as the collector writes it: a node description trimmed (vendor defaults such as
# "MF0;switch-abc:MQM8700/U1" included), ``sw-<guid>`` or a cabling plan's name. No quotes,
# backslashes, braces or control characters, so a name can never change a query's shape (it is
# also quoted, below); 128 characters at most.
_SWITCH_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._:;/@#+,()=-]{0,127}")
_RE2_SPECIAL = re.compile(r"([.^$*+?()\[\]{}|\\])")

Link = tuple[str, str, str, str]


def is_switch_name(value: object) -> bool:
    return isinstance(value, str) and _SWITCH_NAME.fullmatch(value) is not None and value == value.strip()


def quoted(value: str) -> str:
    """``value`` as a PromQL double-quoted string literal."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def exact_regex(values: Iterable[str]) -> str:
    """A PromQL ``=~`` string literal matching exactly ``values`` (regex characters escaped)."""
    return quoted("|".join(_RE2_SPECIAL.sub(r"\\\1", v) for v in sorted(set(values))))


def link_of(labels: Mapping[str, str]) -> Link:
    return tuple(labels.get(name, "") for name in LINK)  # type: ignore[return-value]


class Cable(BaseModel):
    switch: str = Field(description="the lower-tier end's switch (for a host cable, the leaf)")
    switch_port: str
    peer: str = Field(description="the other end: a switch, or '<host> <hca>'")
    peer_port: str
    link_type: str = Field(description="host, isl, or '' when fabric_link_info does not say")
    node: str = Field(description="the node behind a host cable ('' none matched)")


def cable_of(labels: Mapping[str, str]) -> Cable:
    switch, switch_port, peer, peer_port = link_of(labels)
    return Cable(switch=switch, switch_port=switch_port, peer=peer, peer_port=peer_port,
                 link_type=labels.get("link_type", ""), node=labels.get("node", ""))


class LinkState(BaseModel):
    health: int | None = Field(description="fabric_link:health now (null: not recorded)")
    health_name: str
    errors_per_second: dict[str, float] = Field(description="end -> fabric_link:errors:rate5m")
    downed_15m: dict[str, float] = Field(description="end -> fabric_link:downed:increase15m")
    worst_end: str | None = Field(description="the end whose counters show the most errors (then link downs); "
                                              "null when neither counts any")


def health_name(code: int | None) -> str:
    if code is None:
        return "no data"
    return HEALTH_NAMES.get(code, f"code {code}")


def _code(value: float) -> int | None:
    return int(value) if math.isfinite(value) else None


def link_states(client: QueryClient, at: float, matchers: str = "", restrict: str = "") -> dict[Link, LinkState]:
    """Health and per-end rates of the cables that ``matchers`` (PromQL label matchers, e.g.
    ``switch="leaf-01"``) and ``restrict`` (a set operation, e.g. ``and on (...) <expr>``) name: one
    query for the health, one for both ends' recorded rates."""
    states: dict[Link, LinkState] = {}
    health = f"{HEALTH}{{{matchers}}}" if matchers else HEALTH
    for labels, value in client.instant(health + restrict, at).samples():
        states[link_of(labels)] = state_of(_code(value))
    more = f", {matchers}" if matchers else ""
    for labels, value in client.instant(f'{{__name__=~"{PER_END}"{more}}}{restrict}', at).samples():
        end = labels.get("end", "")
        if end not in ENDS or not math.isfinite(value):
            continue
        state = states.setdefault(link_of(labels), state_of(None))
        field = state.errors_per_second if labels.get("__name__") == ERRORS_RATE else state.downed_15m
        field[end] = value
    for state in states.values():
        state.worst_end = _worst_end(state)
    return states


def state_of(code: int | None) -> LinkState:
    """A cable's state with health ``code`` and no rates yet."""
    return LinkState(health=code, health_name=health_name(code), errors_per_second={}, downed_15m={}, worst_end=None)


def _worst_end(state: LinkState) -> str | None:
    scores = {end: (state.errors_per_second.get(end, 0.0), state.downed_15m.get(end, 0.0)) for end in ENDS}
    best = max(ENDS, key=lambda end: scores[end])
    return best if scores[best] > (0.0, 0.0) else None


def bad_since(client: QueryClient, tr: TimeRange, links: list[Link]) -> dict[Link, tuple[float | None, bool]]:
    """Link -> (when its current bad spell began, whether it began before the range), read from
    ``fabric_link:health >= 1`` (BAD) over the range for these links' switches: the first sample of the
    run of bad samples that reaches the range's end."""
    if not links:
        return {}
    step = tr.step()
    switches = exact_regex(link[0] for link in links)
    wanted = set(links)
    out: dict[Link, tuple[float | None, bool]] = {}
    result = client.range(f"{HEALTH}{{switch=~{switches}}} >= {ERRORS}", tr.start, tr.end, step)
    for series in result.series:
        link = link_of(series.labels)
        if link not in wanted or not series.timestamps:
            continue
        stamps = series.timestamps
        if tr.end - stamps[-1] > 1.5 * step:
            continue  # not bad at the range's end
        first = len(stamps) - 1
        while first > 0 and stamps[first] - stamps[first - 1] <= 1.5 * step:
            first -= 1
        began = stamps[first]
        out[link] = (began, began - tr.start <= 1.5 * step)
    return out


class HcaLink(BaseModel):
    """One of a node's cables, as the node page lists it."""

    hca: str = Field(description="the HCA (the peer's name after the host's)")
    peer_port: str
    switch: str
    switch_port: str
    health: int | None
    health_name: str


def node_cables(client: QueryClient, at: float, node: str) -> list[HcaLink]:
    """The cables ``fabric_link_info`` matches to ``node`` (validated by the caller), with their
    recorded health."""
    selector = f"{{node={quoted(node)}}}"
    infos = [labels for labels, _ in client.instant(f"fabric_link_info{selector}", at).samples()]
    if not infos:
        return []
    states = link_states(client, at, restrict=f" and {ON_LINK} fabric_link_info{selector}")
    cables = []
    for labels in infos:
        link = link_of(labels)
        state = states.get(link)
        code = state.health if state else None
        hca = link[2].split(" ", 1)[1] if link[2].startswith(node + " ") else link[2]
        cables.append(HcaLink(hca=hca, peer_port=link[3], switch=link[0], switch_port=link[1], health=code,
                              health_name=health_name(code)))
    return sorted(cables, key=lambda c: (c.hca, c.peer_port, c.switch))
