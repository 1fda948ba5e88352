"""A site's YAML cabling plan: switch names, tiers and racks, the HCA-to-host override map, and
the cables that must exist. Every section is optional (docs/operations.md, "The fabric collector")::

    switches:
      - {guid: "0x0002c902004827b0", name: leaf-r01, tier: leaf, rack: rack-01}
      - {description: "MF0;ib-spine-01:MQM8700/U1", name: spine-01}
    hcas:
      - {guid: "0x506b4b03003fa9b6", host: gpu-001, hca: mlx5_0}
    links:
      - {switch: leaf-r01, switch_port: 1, peer: "gpu-001 mlx5_0", peer_port: 1}

Read once at start; a plan that cannot be read is a configuration error, an entry that is wrong is
reported with its position and skipped.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from cwkernel import configfile
from exporter.fabric.ibnetdiscover import guid_of

MAX_PLAN_BYTES = 16 << 20
TIERS = ("leaf", "spine", "core")
_GUID = re.compile(r"(?:0x)?[0-9a-fA-F]{1,16}")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:/ -]{0,127}")


class PlanError(ValueError):
    """The plan file cannot be used at all (unreadable, too large, not a mapping)."""


@dataclass(frozen=True)
class SwitchEntry:
    name: str
    tier: str = ""
    rack: str = ""


@dataclass(frozen=True)
class PlannedLink:
    switch: str
    switch_port: int
    peer: str
    peer_port: int


@dataclass
class Plan:
    switches_by_guid: dict[str, SwitchEntry] = field(default_factory=dict)
    switches_by_description: dict[str, SwitchEntry] = field(default_factory=dict)
    hcas_by_guid: dict[str, tuple[str, str]] = field(default_factory=dict)  # node GUID -> (host, hca)
    links: list[PlannedLink] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def load(path: str) -> Plan:
    try:
        document = configfile.load_yaml(path, MAX_PLAN_BYTES)
    except configfile.UnreadableConfig as exc:
        raise PlanError(f"{path}: {exc}") from None
    return parse(document)


def parse(document: Any) -> Plan:
    plan = Plan()
    if document is None:
        return plan
    if not isinstance(document, dict):
        raise PlanError("a fabric plan is a mapping with switches, hcas and links")
    unknown = set(document) - {"switches", "hcas", "links"}
    if unknown:
        raise PlanError(f"unknown section {sorted(unknown)[0]!r} (known: switches, hcas, links)")
    for section, reader in (("switches", _switch), ("hcas", _hca), ("links", _link)):
        entries = document.get(section) or []
        if not isinstance(entries, list):
            raise PlanError(f"{section}: must be a list")
        for position, entry in enumerate(entries):
            try:
                reader(plan, entry)
            except (ValueError, TypeError, KeyError) as exc:
                plan.problems.append(f"{section}[{position}]: {exc}")
    return plan


def _text(entry: dict, key: str, required: bool = True) -> str:
    value = entry.get(key, "")
    if value == "" and not required:
        return ""
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise ValueError(f"{key}: must be a name of letters, digits and ._:/- (at most 128)")
    return value


def _guid(entry: dict) -> str:
    value = str(entry.get("guid", ""))
    if not _GUID.fullmatch(value):
        raise ValueError("guid: must be up to 16 hex digits, 0x optional")
    return guid_of(value)


def _port(entry: dict, key: str) -> int:
    value = entry.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 255:
        raise ValueError(f"{key}: must be a port number from 1 to 255")
    return value


def _switch(plan: Plan, entry: Any) -> None:
    if not isinstance(entry, dict):
        raise ValueError("must be a mapping")
    tier = entry.get("tier", "")
    if tier not in ("", *TIERS):
        raise ValueError(f"tier: must be one of {', '.join(TIERS)}")
    switch = SwitchEntry(_text(entry, "name"), tier, _text(entry, "rack", required=False))
    if "guid" in entry:
        plan.switches_by_guid[_guid(entry)] = switch
    elif isinstance(entry.get("description"), str):
        plan.switches_by_description[entry["description"].strip()] = switch
    else:
        raise ValueError("needs a guid or a description to match the switch by")


def _hca(plan: Plan, entry: Any) -> None:
    if not isinstance(entry, dict):
        raise ValueError("must be a mapping")
    plan.hcas_by_guid[_guid(entry)] = (_text(entry, "host"), _text(entry, "hca"))


def _link(plan: Plan, entry: Any) -> None:
    if not isinstance(entry, dict):
        raise ValueError("must be a mapping")
    plan.links.append(PlannedLink(_text(entry, "switch"), _port(entry, "switch_port"), _text(entry, "peer"),
                                  _port(entry, "peer_port")))
