"""Prometheus-style durations ("15s", "1m30s", "6h", "250ms") used by every flag and config file."""
from __future__ import annotations

import re

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0, "y": 31536000.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)")


def parse_duration(text: str | int | float) -> float:
    """Seconds in ``text``; a bare number is seconds. Raises ValueError with the bad text."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        seconds = float(text)
    else:
        value = str(text).strip()
        try:
            seconds = float(value)
        except ValueError:
            parts = _PART.findall(value)
            if not parts or "".join(n + u for n, u in parts) != value:
                raise ValueError(f"not a duration: {text!r} (use e.g. 500ms, 15s, 5m, 6h)") from None
            seconds = sum(float(number) * _UNITS[unit] for number, unit in parts)
    if seconds < 0:
        raise ValueError(f"duration must not be negative: {text!r}")
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest Prometheus spelling of ``seconds`` (``300`` -> ``"5m"``)."""
    if seconds and seconds < 1:
        return f"{round(seconds * 1000)}ms"
    for unit in ("d", "h", "m"):
        size = _UNITS[unit]
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    if seconds == int(seconds):
        return f"{int(seconds)}s"
    # PromQL has no decimal point in a duration (and ``:g`` wrote 1,000,000 s as "1e+06s").
    return f"{round(seconds * 1000)}ms"
