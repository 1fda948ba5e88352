"""Go's spelling of numbers, strings and durations, where ClusterWatch must print as Prometheus does.

What Prometheus writes is read byte for byte by its users' tools: promtool compares annotation
text, Grafana shows a rule's query as Prometheus printed it, and clients parse an alert's value
from its string. So these follow Go's ``strconv`` and ``prometheus/common/model`` rather than
Python's own formatting: ``go_shortest`` is ``strconv.FormatFloat(v, 'g', -1, 64)`` (fmt's ``%v``:
1e6 prints ``1e+06``), ``go_exponent`` is ``FormatFloat(v, 'e', -1, 64)`` (``1e+00``),
``go_quote`` is ``strconv.Quote``, ``go_duration`` is ``model.Duration.String`` (``1h30m``,
``1w``, ``0s``) and ``parse_go_duration`` its ``ParseDuration``.
"""
from __future__ import annotations

import math
import re
from decimal import Decimal

__all__ = ["go_shortest", "go_exponent", "go_quote", "go_duration", "parse_go_duration", "special_float"]


def shortest_digits(value: float) -> tuple[str, int]:
    """Shortest round-trip decimal digits of ``abs(value)`` and the exponent of the first digit."""
    sign, digits, exponent = Decimal(repr(abs(value))).as_tuple()
    text = "".join(map(str, digits)).rstrip("0") or "0"
    return text, len(digits) + exponent - 1


def special_float(value: float) -> str | None:
    """Go's spelling of NaN and the infinities, None for a finite value."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return None


def scientific(sign: str, digits: str, exp: int) -> str:
    mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    return f"{sign}{mantissa}e{'-' if exp < 0 else '+'}{abs(exp):02d}"


def fixed(sign: str, digits: str, exp: int) -> str:
    if exp < 0:
        return f"{sign}0.{'0' * (-exp - 1)}{digits}"
    whole, frac = digits[:exp + 1].ljust(exp + 1, "0"), digits[exp + 1:]
    return f"{sign}{whole}{'.' + frac if frac else ''}"


def _sign(value: float) -> str:
    return "-" if math.copysign(1.0, value) < 0 else ""


def go_shortest(value: float, eprec: int = 6) -> str:
    """strconv.FormatFloat(value, 'g', -1, 64): the shortest digits, %e when exp < -4 or >= eprec."""
    special = special_float(value)
    if special:
        return special
    if value == 0:
        return _sign(value) + "0"
    digits, exp = shortest_digits(value)
    if exp < -4 or exp >= eprec:
        return scientific(_sign(value), digits, exp)
    return fixed(_sign(value), digits, exp)


def go_exponent(value: float) -> str:
    """strconv.FormatFloat(value, 'e', -1, 64): how Prometheus's API writes an alert's value."""
    if value == 0:
        return _sign(value) + "0e+00"
    return go_shortest(value, eprec=-_MAX_EXPONENT)  # every exponent is at least that: always the e form


_MAX_EXPONENT = 400  # a float64's decimal exponents lie within +-324


_NAMED_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v",
                  '"': '\\"', "\\": "\\\\"}


def _escaped(ch: str) -> str:
    named = _NAMED_ESCAPES.get(ch)
    if named:
        return named
    # Go's unicode.IsPrint is letters, marks, numbers, punctuation, symbols and the ASCII space:
    # the set Python's isprintable() accepts.
    if ch.isprintable():
        return ch
    code = ord(ch)
    if code < 0x80:
        return f"\\x{code:02x}"
    if 0xD800 <= code <= 0xDFFF:  # a lone surrogate is not UTF-8: Go sees an invalid byte
        return "\\ufffd"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def go_quote(text: str) -> str:
    """strconv.Quote: double quotes, Go escapes for quotes, backslashes and what is not printable."""
    return '"' + "".join(_escaped(ch) for ch in text) + '"'


# model.Duration's units, largest first; years and weeks only where they divide exactly ("90d",
# not "12w6d").
_DURATION_UNITS = (("y", 365 * 86_400_000, True), ("w", 7 * 86_400_000, True), ("d", 86_400_000, False),
                   ("h", 3_600_000, False), ("m", 60_000, False), ("s", 1000, False), ("ms", 1, False))


_DURATION_PARSE = re.compile("".join(rf"(?:(\d+){unit})?" for unit, _, _ in _DURATION_UNITS))


def parse_go_duration(text: str) -> float:
    """prometheus/common model.ParseDuration, in seconds: the units in this order, each at most
    once; "0" alone is 0. ValueError in its words otherwise."""
    if text == "0":
        return 0.0
    match = _DURATION_PARSE.fullmatch(text) if text else None
    if match is None:
        raise ValueError(f"not a valid duration string: {go_quote(text)}")
    millis = sum(int(count) * size for count, (_, size, _) in zip(match.groups(), _DURATION_UNITS) if count)
    seconds, rest = divmod(millis, 1000)
    return float(seconds) + float(rest * 1_000_000) / 1e9  # time.Duration.Seconds(), to the bit


def go_duration(millis: int) -> str:
    """prometheus/common model.Duration.String of a duration in whole milliseconds."""
    if millis == 0:
        return "0s"
    out = []
    for unit, size, exact in _DURATION_UNITS:
        if exact and millis % size:
            continue
        count = millis // size
        if count > 0:
            out.append(f"{count}{unit}")
            millis -= count * size
    return "".join(out)
