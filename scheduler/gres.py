"""Generic resource (GRES / TRES) strings: how many GPUs, and which indices.

Forms seen in Slurm output, all handled here:
``gpu:2``, ``gpu:h100:8(S:0-1)`` (node gres), ``gpu:1(IDX:0)``, ``gpu:h100:4(IDX:0-1,3)``,
``gpu:0(IDX:N/A)`` (gres_used and job gres_detail), ``gres:gpu:1`` (22.05 tres_per_node),
``gres/gpu:1`` (23.02+ tres_per_node), ``cpu=2,gres/gpu=4,gres/gpu:h100=4`` (TRES strings).
Several entries may share one string, separated by commas that are outside parentheses.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

_SUFFIX = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
_COUNT = re.compile(r"^(\d+)([KMGT]?)$", re.IGNORECASE)
_INDEX_RANGE = re.compile(r"^(\d+)(?:-(\d+))?$")


@dataclass(frozen=True)
class GresEntry:
    name: str
    type: str
    count: int
    indices: tuple[int, ...] | None  # None: Slurm did not say which devices


def split_entries(value: str) -> list[str]:
    """Split a GRES string on commas outside parentheses (``IDX:0,2`` stays whole)."""
    entries: list[str] = []
    depth = 0
    start = 0
    for position, char in enumerate(value):
        if char == "(":
            depth += 1
        elif char == ")":
            depth = max(0, depth - 1)
        elif char == "," and depth == 0:
            entries.append(value[start:position])
            start = position + 1
    entries.append(value[start:])
    return [entry.strip() for entry in entries if entry.strip()]


def parse_indices(spec: str) -> tuple[int, ...] | None:
    """``0-3`` or ``0,2-3`` to a tuple; ``N/A`` and anything unreadable to None."""
    indices: list[int] = []
    for item in spec.split(","):
        match = _INDEX_RANGE.match(item.strip())
        if not match:
            return None
        low = int(match.group(1))
        high = int(match.group(2)) if match.group(2) else low
        if high < low or high - low > 4096:
            return None
        indices.extend(range(low, high + 1))
    return tuple(indices)


def parse_entry(entry: str) -> GresEntry | None:
    """One ``name[:type][:count][(details)]`` entry; None when it is not GRES at all."""
    details = ""
    if "(" in entry and entry.endswith(")"):
        entry, details = entry[: entry.index("(")], entry[entry.index("(") + 1 : -1]
    parts = entry.split(":")
    if parts and parts[0] in ("gres", ""):
        parts = parts[1:]  # 22.05 writes tres_per_node as "gres:gpu:1"
    if not parts or not parts[0]:
        return None
    name = parts[0]
    if name.startswith("gres/"):
        name = name[len("gres/"):]
    count = 1
    gres_type = ""
    rest = parts[1:]
    if rest:
        match = _COUNT.match(rest[-1])
        if match:
            count = int(match.group(1)) * _SUFFIX[match.group(2).upper()]
            rest = rest[:-1]
        gres_type = ":".join(rest)
    indices = None
    for detail in details.split(")("):
        if detail.startswith("IDX:"):
            indices = parse_indices(detail[len("IDX:"):])
    return GresEntry(name=name, type=gres_type, count=count, indices=indices)


def entries(value: str | None) -> list[GresEntry]:
    if not value or value in ("(null)", "N/A"):
        return []
    parsed = (parse_entry(entry) for entry in split_entries(value))
    return [entry for entry in parsed if entry is not None]


def gpu_count(value: str | None) -> int:
    """GPUs named in a GRES string (all types together)."""
    return sum(entry.count for entry in entries(value) if entry.name == "gpu")


def gpu_indices(value: str | None) -> tuple[int, ...] | None:
    """GPU indices named in a GRES string, or None where no GPU entry carries indices."""
    found: list[int] = []
    known = False
    for entry in entries(value):
        if entry.name != "gpu" or entry.indices is None:
            continue
        known = True
        found.extend(entry.indices)
    return tuple(sorted(set(found))) if known else None


def tres_gpus(value: str | None) -> int | None:
    """GPUs in a TRES string (``gres/gpu=4``); typed counts only where the plain one is absent."""
    if not value:
        return None
    plain: int | None = None
    typed = 0
    seen_typed = False
    for item in value.split(","):
        key, sep, amount = item.partition("=")
        if not sep or not amount.strip().isdigit():
            continue
        key = key.strip()
        if key == "gres/gpu":
            plain = int(amount)
        elif key.startswith("gres/gpu:"):
            typed += int(amount)
            seen_typed = True
    if plain is not None:
        return plain
    return typed if seen_typed else None
