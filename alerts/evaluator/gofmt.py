"""Go's number formatting and the template functions Prometheus adds, in Python.

Annotations rendered by the embedded evaluator must read exactly as Prometheus renders them
(promtool's unit tests compare annotation text byte for byte, and the same tests run here), so
float printing follows Go's ``strconv``/``fmt`` rules rather than Python's: ``{{ $value }}`` is
Go's ``%v`` (shortest digits, exponent form below 1e-4 and from 1e6: 1234567 prints as
``1.234567e+06``, as promtool shows), ``%g`` without precision the same, exponents have at least
two digits, infinities print as ``+Inf``.
"""
from __future__ import annotations

import math
import re
import struct
from datetime import datetime, timedelta, timezone
from typing import Any

from cwkernel.gotext import go_quote, go_shortest, special_float

__all__ = ["go_value", "go_sprintf", "humanize", "humanize1024", "humanize_percentage",
           "humanize_duration", "humanize_timestamp", "to_float", "TemplateFuncError"]


class TemplateFuncError(ValueError):
    """A template function was called with an argument it cannot use (Go's conversion error)."""


def go_value(value: Any) -> str:
    """How Go's text/template prints a value (fmt's %v)."""
    if value is None:
        return "<no value>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return go_shortest(value)
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{go_value(v)}" for k, v in sorted(value.items())) + "]"
    if isinstance(value, (list, tuple)):
        return "[" + " ".join(go_value(v) for v in value) + "]"
    return str(value)


def go_type(value: Any) -> str:
    """The Go type a template value has, as fmt's %T and text/template's errors name it."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if value is None:
        return "<nil>"
    return "map[string]string" if isinstance(value, dict) else type(value).__name__


_VERB = re.compile(r"%([-+# 0]*)(\d+|\*)?(?:\.(\d+|\*)?)?([a-zA-Z%])")


def _pad(text: str, flags: str, width: int | None) -> str:
    if width is None or len(text) >= width:
        return text
    if "-" in flags:
        return text.ljust(width)
    if "0" in flags and text[:1] in "+-" and text[1:2].isdigit():
        return text[0] + text[1:].rjust(width - 1, "0")
    if "0" in flags and text[:1].isdigit():
        return text.rjust(width, "0")
    return text.rjust(width)


def _format_float(value: float, verb: str, flags: str, precision: int | None) -> str:
    special = special_float(value)
    if special:
        return "+NaN" if special == "NaN" and "+" in flags else special
    if verb in "xX":
        text = _hex_float(value)
        return text.upper() if verb == "X" else text
    if verb == "b":
        return _binary_float(value)
    if verb in "gG" and precision is None:
        text = go_shortest(value)
    elif verb in "fF":
        text = f"{value:.{6 if precision is None else precision}f}"
    elif verb in "eE":
        text = f"{value:.{6 if precision is None else precision}e}"
    else:
        text = f"{value:.{precision}g}" if precision else f"{value:.1g}"
    if verb in "EG":
        text = text.upper()
    if "+" in flags and not text.startswith("-"):
        text = "+" + text
    return text


def _hex_float(value: float) -> str:
    """strconv.FormatFloat(value, 'x', -1, 64): ``0x1.c2p+11``, the shortest hex digits."""
    sign = "-" if math.copysign(1.0, value) < 0 else ""
    if value == 0:
        return f"{sign}0x0p+00"
    fraction, exponent = math.frexp(abs(value))  # [0.5, 1): Go writes 1.x times 2 to one less
    digits = f"{int((fraction * 2 - 1) * (1 << 52)):013x}".rstrip("0")
    exponent -= 1
    return f"{sign}0x1{'.' + digits if digits else ''}p{'-' if exponent < 0 else '+'}{abs(exponent):02d}"


def _binary_float(value: float) -> str:
    """strconv.FormatFloat(value, 'b', -1, 64): the integer mantissa and the power of two."""
    bits = struct.unpack("<Q", struct.pack("<d", value))[0]
    biased, mantissa = (bits >> 52) & 0x7FF, bits & ((1 << 52) - 1)
    exponent = -1074 if biased == 0 else biased - 1075
    if biased:
        mantissa |= 1 << 52
    return f"{'-' if bits >> 63 else ''}{mantissa}p{'-' if exponent < 0 else '+'}{abs(exponent)}"


_INTEGER_VERBS = {"d": lambda n, alt: f"{n:d}", "x": lambda n, alt: f"{n:#x}" if alt else f"{n:x}",
                  "X": lambda n, alt: f"{n:#X}" if alt else f"{n:X}", "o": lambda n, alt: f"0{n:o}" if alt else f"{n:o}",
                  "O": lambda n, alt: f"0o{n:o}", "b": lambda n, alt: f"{n:b}",
                  "c": lambda n, alt: chr(n) if 0 <= n <= 0x10FFFF and not 0xD800 <= n <= 0xDFFF else "\ufffd",
                  "U": lambda n, alt: f"U+{n:04X}"}


def _format_one(verb: str, flags: str, width: int | None, precision: int | None, arg: Any) -> str:
    if verb == "v":
        text = go_value(arg)
    elif verb == "s":
        if not isinstance(arg, str):
            return f"%!s({go_type(arg)}={go_value(arg)})"
        text = arg if precision is None else arg[:precision]
    elif verb == "q":
        if not isinstance(arg, str):
            return f"%!q({go_type(arg)}={go_value(arg)})"
        text = go_quote(arg)
    elif verb == "t":
        if not isinstance(arg, bool):
            return f"%!t({go_type(arg)}={go_value(arg)})"
        text = go_value(arg)
    elif verb == "T":
        text = go_type(arg)
    elif verb in _INTEGER_VERBS and isinstance(arg, int) and not isinstance(arg, bool):
        text = _INTEGER_VERBS[verb](arg, "#" in flags)
        if "+" in flags and arg >= 0 and verb == "d":
            text = "+" + text
    elif verb in "feEgGFxXb" and isinstance(arg, float):
        text = _format_float(arg, verb, flags, precision)
    else:
        return f"%!{verb}({go_type(arg)}={go_value(arg)})"
    return _pad(text, flags, width)


def go_sprintf(fmt: str, *args: Any) -> str:
    """fmt.Sprintf for the verbs templates use: %v %s %q %t %T, integers' %d %x %X %o %O %b %c %U,
    floats' %f %e %g %x %b, flags, width, precision."""
    out: list[str] = []
    pos = 0
    index = 0
    for match in _VERB.finditer(fmt):
        out.append(fmt[pos:match.start()])
        pos = match.end()
        flags, width, precision, verb = match.groups()
        if verb == "%":
            out.append("%")
            continue
        if index >= len(args):
            out.append(f"%!{verb}(MISSING)")
            continue
        arg = args[index]
        index += 1
        out.append(_format_one(verb, flags, int(width) if width and width != "*" else None,
                               int(precision) if precision and precision != "*" else
                               (0 if precision == "" else None), arg))
    out.append(fmt[pos:])
    if index < len(args):
        out.append("%!(EXTRA " + ", ".join(f"{go_type(a)}={go_value(a)}" for a in args[index:]) + ")")
    return "".join(out)


def to_float(value: Any) -> float:
    """Prometheus's convertToFloat: numbers, and strings that parse as Go floats."""
    if isinstance(value, bool):
        raise TemplateFuncError(f"can't convert {value} to float")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            raise TemplateFuncError(f'strconv.ParseFloat: parsing "{value}": invalid syntax') from None
    raise TemplateFuncError(f"can't convert {value!r} to float")


def _g4(value: float) -> str:
    """Go's %.4g."""
    special = special_float(value)
    return special if special else f"{value:.4g}"


def _scaled(v: float, prefixes: tuple[str, ...], base: float) -> str:
    """Prometheus's humanize loop: divide by ``base`` while |v| >= base, taking the next prefix."""
    prefix = ""
    for p in prefixes:
        if abs(v) < base:
            break
        prefix = p
        v /= base
    return _g4(v) + prefix


def humanize(value: Any) -> str:
    v = to_float(value)
    if v == 0 or math.isnan(v) or math.isinf(v):
        return _g4(v)
    if abs(v) >= 1:
        return _scaled(v, ("k", "M", "G", "T", "P", "E", "Z", "Y"), 1000)
    prefix = ""
    for p in ("m", "u", "n", "p", "f", "a", "z", "y"):
        if abs(v) >= 1:
            break
        prefix = p
        v *= 1000
    return _g4(v) + prefix


def humanize1024(value: Any) -> str:
    v = to_float(value)
    if abs(v) <= 1 or math.isnan(v) or math.isinf(v):
        return _g4(v)
    return _scaled(v, ("ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"), 1024)


def humanize_percentage(value: Any) -> str:
    return _g4(to_float(value) * 100) + "%"


def _trunc_div(a: int, b: int) -> int:
    q = abs(a) // b
    return q if a >= 0 else -q


def _trunc_mod(a: int, b: int) -> int:
    return a - b * _trunc_div(a, b)


def humanize_duration(value: Any) -> str:
    v = to_float(value)
    if math.isnan(v) or math.isinf(v):
        return _g4(v)
    if v == 0:
        return _g4(v) + "s"
    if abs(v) >= 1:
        sign = "-" if v < 0 else ""
        v = abs(v)
        # Go's int64(v) saturates to the minimum on amd64 and its / and % truncate toward zero.
        duration = int(v) if v < 2 ** 63 else -(2 ** 63)
        seconds, minutes = _trunc_mod(duration, 60), _trunc_mod(_trunc_div(duration, 60), 60)
        hours = _trunc_mod(_trunc_div(duration, 3600), 24)
        days = _trunc_div(duration, 86400)
        if days:
            return f"{sign}{days}d {hours}h {minutes}m {seconds}s"
        if hours:
            return f"{sign}{hours}h {minutes}m {seconds}s"
        if minutes:
            return f"{sign}{minutes}m {seconds}s"
        return f"{sign}{_g4(v)}s"
    prefix = ""
    for p in ("m", "u", "n", "p", "f", "a", "z", "y"):
        if abs(v) >= 1:
            break
        prefix = p
        v *= 1000
    return f"{_g4(v)}{prefix}s"


def humanize_timestamp(value: Any) -> str:
    v = to_float(value)
    if math.isnan(v) or math.isinf(v):
        return _g4(v)
    nanoseconds = v * 1e9
    if not -2.0 ** 63 <= nanoseconds <= 2.0 ** 63:
        raise TemplateFuncError(f"{go_value(v)} cannot be represented as a nanoseconds timestamp since it overflows "
                                "int64")
    # Prometheus goes through model.Time: whole milliseconds, the rest cut off towards zero.
    whole = int(nanoseconds)
    milliseconds = abs(whole) // 1_000_000 * (1 if whole >= 0 else -1)
    moment = datetime.fromtimestamp(0, timezone.utc) + timedelta(milliseconds=milliseconds)
    # Go's time.Time String(): "2006-01-02 15:04:05.999999999 -0700 MST"
    frac = f"{moment.microsecond:06d}".rstrip("0")
    return moment.strftime("%Y-%m-%d %H:%M:%S") + (f".{frac}" if frac else "") + " +0000 UTC"
