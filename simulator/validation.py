"""Checks of the values a client sends the simulator: each names the field and the allowed range.

Everything that reaches the simulator over its API (fault requests, scenario entries, clock
advances) goes through these before it touches the simulation, so a value the simulated hardware
cannot have is refused at once with a message a person can act on, and a huge value is never
echoed back whole.
"""
from __future__ import annotations

import math
from typing import Any

from cwkernel.durations import format_duration, parse_duration

SHOWN_CHARS = 60  # how much of a bad value an error message quotes


class RequestError(ValueError):
    """A request the simulator refuses; the message starts with the field, ``"xid: must be ..."``."""


def shown(value: Any) -> str:
    """``repr(value)``, cut short: a 1 MB string in a request must not become a 1 MB error."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**SHOWN_CHARS:
        return f"an integer of {len(str(abs(value)))} digits"
    text = repr(value) if not isinstance(value, (list, dict)) else type(value).__name__
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 3] + "..."


def shown_name(name: str) -> str:
    """A field name from a request, cut short like ``shown`` but without quotes."""
    return name if len(name) <= SHOWN_CHARS else name[: SHOWN_CHARS - 3] + "..."


def integer_in(field: str, value: Any, low: int, high: int, what: str = "") -> int:
    """``value`` if it is an integer from ``low`` to ``high`` (booleans and floats are not)."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        suffix = f" ({what})" if what else ""
        raise RequestError(f"{field}: must be an integer from {low} to {high}{suffix}, got {shown(value)}")
    return value


def number_in(field: str, value: Any, low: float, high: float, unit: str = "") -> float:
    """``value`` as a float if it is a finite number from ``low`` to ``high``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RequestError(f"{field}: must be a number from {low:g} to {high:g}{unit}, got {shown(value)}")
    try:
        number = float(value)
    except OverflowError:  # a JSON integer too big for a float
        number = math.inf
    if not math.isfinite(number) or not low <= number <= high:
        raise RequestError(f"{field}: must be a number from {low:g} to {high:g}{unit}, got {shown(value)}")
    return number


def duration_in(field: str, value: Any, low: float, high: float) -> float:
    """Seconds of a duration (``"5m"``, or a number of seconds) from ``low`` to ``high``."""
    allowed = f"a duration from {format_duration(low)} to {format_duration(high)}"
    if isinstance(value, bool) or not isinstance(value, (str, int, float)) or (isinstance(value, str) and len(value) > 32):
        raise RequestError(f"{field}: must be {allowed} (e.g. 90s, 5m), got {shown(value)}")
    try:
        seconds = parse_duration(value)
    except (ValueError, OverflowError):
        raise RequestError(f"{field}: must be {allowed} (e.g. 90s, 5m), got {shown(value)}") from None
    if not math.isfinite(seconds) or not low <= seconds <= high:
        raise RequestError(f"{field}: must be {allowed}, got {shown(value)}")
    return seconds


def one_of(field: str, value: Any, allowed: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise RequestError(f"{field}: must be one of {', '.join(allowed)}, got {shown(value)}")
    return value
