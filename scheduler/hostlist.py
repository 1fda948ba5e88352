"""Slurm hostlist expressions: ``gpu-[001-004,007]`` to names and back.

Slurm prints node sets compressed (squeue ``nodes``, sinfo groups, job_resources); the model keeps
plain names because every join downstream (``instance`` label, GPU-to-job) is per node. The
expander follows Slurm's rules: top-level commas separate hosts, each bracket holds comma
separated numbers or ranges, zero padding is kept (``[08-10]`` gives ``08 09 10``), and several
brackets in one name multiply (``r[1-2]n[1-2]`` gives four names).
"""
from __future__ import annotations

import re
from collections import defaultdict
from typing import Iterable

# A typo such as gpu-[1-99999999] must not allocate millions of strings while parsing a poll.
MAX_HOSTS = 1_000_000

_RANGE = re.compile(r"^(\d+)(?:-(\d+))?$")
_TRAILING_NUMBER = re.compile(r"^(.*?)(\d+)$")


class HostlistError(ValueError):
    """The expression is not a valid Slurm hostlist."""


def split_top_level(expression: str) -> list[str]:
    """Split on commas that are outside brackets (``a[1,2],b`` gives ``a[1,2]`` and ``b``)."""
    parts: list[str] = []
    depth = 0
    start = 0
    for position, char in enumerate(expression):
        if char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
            if depth < 0:
                raise HostlistError(f"unbalanced ']' in {expression!r}")
        elif char == "," and depth == 0:
            parts.append(expression[start:position])
            start = position + 1
    if depth != 0:
        raise HostlistError(f"unbalanced '[' in {expression!r}")
    parts.append(expression[start:])
    return [part.strip() for part in parts if part.strip()]


def _bracket_values(body: str, expression: str) -> list[str]:
    values: list[str] = []
    for item in body.split(","):
        match = _RANGE.match(item.strip())
        if not match:
            raise HostlistError(f"bad range {item!r} in {expression!r}")
        low_text, high_text = match.group(1), match.group(2)
        if high_text is None:
            values.append(low_text)
            continue
        low, high = int(low_text), int(high_text)
        if high < low:
            raise HostlistError(f"descending range {item!r} in {expression!r}")
        if high - low + 1 > MAX_HOSTS:
            raise HostlistError(f"range {item!r} in {expression!r} exceeds {MAX_HOSTS} hosts")
        width = len(low_text)
        values.extend(str(number).zfill(width) for number in range(low, high + 1))
    return values


def _expand_one(pattern: str) -> list[str]:
    names = [""]
    rest = pattern
    while rest:
        open_at = rest.find("[")
        if open_at < 0:
            names = [name + rest for name in names]
            break
        close_at = rest.find("]", open_at)
        if close_at < 0:
            raise HostlistError(f"unbalanced '[' in {pattern!r}")
        prefix = rest[:open_at]
        values = _bracket_values(rest[open_at + 1 : close_at], pattern)
        if len(names) * len(values) > MAX_HOSTS:
            raise HostlistError(f"{pattern!r} expands to more than {MAX_HOSTS} hosts")
        names = [name + prefix + value for name in names for value in values]
        rest = rest[close_at + 1 :]
    return names


def expand(expression: str | None) -> list[str]:
    """All host names of ``expression`` in Slurm's order; ``""``, ``None``, ``(null)`` give ``[]``."""
    if not expression or expression in ("(null)", "None"):
        return []
    hosts: list[str] = []
    for part in split_top_level(expression):
        hosts.extend(_expand_one(part))
        if len(hosts) > MAX_HOSTS:
            raise HostlistError(f"{expression!r} expands to more than {MAX_HOSTS} hosts")
    return hosts


def compress(hosts: Iterable[str]) -> str:
    """The usual Slurm form: names sharing a prefix and a compatible digit width share a bracket.

    Order of first appearance is kept between groups; numbers inside a group are sorted, as
    ``scontrol show hostlist`` does. ``expand(compress(names))`` gives the same set of names.
    """
    names = list(dict.fromkeys(hosts))
    padded_widths: dict[str, set[int]] = defaultdict(set)
    for host in names:
        match = _TRAILING_NUMBER.match(host)
        if match and _is_padded(match.group(2)):
            padded_widths[match.group(1)].add(len(match.group(2)))
    groups: dict[tuple[str, int], set[int]] = defaultdict(set)
    order: list[tuple[str, int] | str] = []
    for host in names:
        match = _TRAILING_NUMBER.match(host)
        if not match:
            order.append(host)
            continue
        prefix, digits = match.group(1), match.group(2)
        # A range prints its numbers zero-filled to the width of its low end, so "100" can share
        # a bracket with "001" (width 3) but "009" cannot share one with "10".
        if _is_padded(digits) or len(digits) in padded_widths[prefix]:
            key = (prefix, len(digits))
        else:
            key = (prefix, 0)
        if key not in groups:
            order.append(key)
        groups[key].add(int(digits))
    parts: list[str] = []
    for entry in order:
        if isinstance(entry, str):
            parts.append(entry)
            continue
        prefix, width = entry
        numbers = sorted(groups[entry])
        if len(numbers) == 1:
            parts.append(f"{prefix}{str(numbers[0]).zfill(width)}")
        else:
            parts.append(f"{prefix}[{','.join(_ranges(numbers, width))}]")
    return ",".join(parts)


def _is_padded(digits: str) -> bool:
    return len(digits) > 1 and digits.startswith("0")


def _ranges(numbers: list[int], width: int) -> list[str]:
    ranges: list[str] = []
    start = previous = numbers[0]
    for number in numbers[1:] + [None]:  # type: ignore[list-item]
        if number is not None and number == previous + 1:
            previous = number
            continue
        low, high = str(start).zfill(width), str(previous).zfill(width)
        ranges.append(low if start == previous else f"{low}-{high}")
        if number is not None:
            start = previous = number
    return ranges
