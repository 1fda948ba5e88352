"""Defensive readers for Slurm's JSON values, whichever release wrote them.

The same field changes type between data_parser versions: ``time_limit`` is an int in some,
``null`` in 22.05 (v0.0.38) when unset, and ``{"set": bool, "infinite": bool, "number": int}`` from
23.02 on; ``job_state`` and node ``state`` are strings or lists; older releases print NO_VAL and
INFINITE as raw 32/64-bit sentinels. Each reader takes any of these and returns one Python value,
so the parsers never test versions.
"""
from __future__ import annotations

import math
from typing import Any, Iterable

# Slurm's NO_VAL / INFINITE sentinels (16, 32 and 64 bit), printed raw by releases before the
# set/infinite/number objects existed.
_NO_VAL = {0xFFFE, 0xFFFFFFFE, 0xFFFFFFFFFFFFFFFE}
_INFINITE = {0xFFFF, 0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF}


def number(value: Any) -> float | None:
    """A finite number, ``math.inf`` for Slurm's INFINITE, or None for unset / unknown."""
    if isinstance(value, dict):
        if value.get("infinite"):
            return math.inf
        if value.get("set") is False:
            return None
        value = value.get("number")
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    if not isinstance(value, (int, float)):
        return None
    if value in _INFINITE:
        return math.inf
    if value in _NO_VAL:
        return None
    return value


def integer(value: Any, default: int = 0) -> int:
    """A finite integer or ``default`` (counts: CPUs, memory, ports)."""
    result = number(value)
    if result is None or math.isinf(result):
        return default
    return int(result)


def timestamp(value: Any) -> float | None:
    """Unix seconds, or None where Slurm means "not yet" (0, unset, INFINITE)."""
    result = number(value)
    if result is None or math.isinf(result) or result <= 0:
        return None
    return float(result)


def text(value: Any) -> str:
    """A string; None and Slurm's ``(null)`` become ``""``."""
    if value is None:
        return ""
    if isinstance(value, str):
        return "" if value == "(null)" else value
    if isinstance(value, (list, tuple)):
        return ",".join(text(item) for item in value)
    return str(value)


def words(value: Any) -> tuple[str, ...]:
    """State words upper-cased from ``"IDLE"``, ``"mixed+drain"`` or ``["IDLE", "DRAIN"]``."""
    if value is None:
        return ()
    items: Iterable[Any] = value if isinstance(value, (list, tuple)) else [value]
    result: list[str] = []
    for item in items:
        for word in text(item).replace("+", " ").split():
            word = word.upper()
            if word not in result:
                result.append(word)
    return tuple(result)


def first(record: dict, *keys: str) -> Any:
    """The value of the first key present (fields renamed between releases)."""
    for key in keys:
        if key in record:
            return record[key]
    return None


def dig(record: Any, *path: str) -> Any:
    """``record[a][b]...`` or None where any step is missing or not an object."""
    for key in path:
        if not isinstance(record, dict):
            return None
        record = record.get(key)
    return record
