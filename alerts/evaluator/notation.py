"""promtool's input-series notation: ``metric{l="v"}`` and values such as ``0+10x100 _x3 stale``.

``a+bxn`` (and ``a-bxn``) expands to the n+1 values a, a+b, ..., a+n*b; ``axn`` is ``a+0xn``;
``_`` is a missing sample and ``_xn`` n of them; ``stale`` is Prometheus's staleness marker.
The i-th value is at ``i * interval`` from time 0, as promtool's lazy loader places them.
"""
from __future__ import annotations

import math
import re

import promql_parser

from cwkernel.series import STALE_NAN

__all__ = ["parse_series", "expand_values", "NotationError", "OMITTED"]

OMITTED = None
_NUMBER = r"[+-]?(?:Inf|inf|NaN|nan|0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)"
_EXPANDING = re.compile(rf"^({_NUMBER})(?:([+-])({_NUMBER}))?x(\d+)$")
_BLANKS = re.compile(r"^_x(\d+)$")


class NotationError(ValueError):
    pass


def _number(text: str) -> float:
    if text.lstrip("+-").lower().startswith("0x"):
        return float(int(text, 16))
    lowered = text.lower()
    if lowered.lstrip("+-") == "inf":
        return -math.inf if lowered.startswith("-") else math.inf
    if lowered.lstrip("+-") == "nan":
        return math.nan
    return float(text)


def expand_values(text: str) -> list[float | None]:
    """The values of ``text`` in order; None where a sample is omitted."""
    out: list[float | None] = []
    for token in str(text).split():
        if token == "_":
            out.append(OMITTED)
        elif token == "stale":
            out.append(STALE_NAN)
        elif match := _BLANKS.match(token):
            out.extend([OMITTED] * int(match.group(1)))
        elif match := _EXPANDING.match(token):
            start, sign, step, times = match.groups()
            value, delta = _number(start), (_number(step) if step else 0.0) * (-1 if sign == "-" else 1)
            for _ in range(int(times) + 1):
                out.append(value)
                value += delta
        else:
            try:
                out.append(_number(token))
            except ValueError:
                raise NotationError(f"bad value {token!r} in {text!r}") from None
    return out


def parse_series(text: str) -> dict[str, str]:
    """Labels of a series description (``up{job="x"}`` or ``{__name__="up", job="x"}``)."""
    text = text.strip()
    if not text:
        return {}
    try:
        selector = promql_parser.parse(text)
    except ValueError as exc:
        raise NotationError(f"bad series {text!r}: {exc}") from None
    if not isinstance(selector, promql_parser.VectorSelector):
        raise NotationError(f"bad series {text!r}: not a metric with labels")
    labels = {}
    if selector.name:
        labels["__name__"] = selector.name
    for matcher in selector.matchers.matchers:
        if str(matcher.op) != "MatchOp.Equal":
            raise NotationError(f"bad series {text!r}: only = in series labels")
        labels[matcher.name] = matcher.value
    return labels
