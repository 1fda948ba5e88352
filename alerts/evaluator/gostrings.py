"""Go's ``strings`` functions that Prometheus 2.42's templates expose, in Python: ``title``
(``strings.Title``), ``toUpper``, ``toLower`` and ``len`` of a string. Python's own differ where
label values are not plain ASCII: Go maps case one rune at a time with the simple mappings (``ß``
and ``ﬁ`` stay as they are; Python's full mappings make "SS" and "FI"), ``strings.Title`` starts a
word after any ASCII character that is not a letter, digit or underscore (``don't`` becomes
``Don'T``) but not after a non-ASCII symbol, and ``len`` counts bytes of UTF-8."""
from __future__ import annotations

import unicodedata

from alerts.evaluator.gofmt import go_type

__all__ = ["go_title", "go_upper", "go_lower", "go_len"]


def _simple(ch: str, mapped: str) -> str:
    """The one-rune mapping Go's ``unicode`` package uses: where Python's full mapping gives
    several characters there is no simple one, except U+0130, whose simple lower case is ``i``."""
    if len(mapped) == 1:
        return mapped
    return "i" if ch == "\u0130" else ch


def go_upper(text: str) -> str:
    return text.upper() if text.isascii() else "".join(_simple(ch, ch.upper()) for ch in text)


def go_lower(text: str) -> str:
    return text.lower() if text.isascii() else "".join(_simple(ch, ch.lower()) for ch in text)


def _is_separator(ch: str) -> bool:
    """strings.Title's word boundary (Go's ``isSeparator``)."""
    if ch.isascii():
        return not (ch.isalnum() or ch == "_")
    category = unicodedata.category(ch)
    if category.startswith("L") or category == "Nd":
        return False
    return ch.isspace()


def go_title(text: str) -> str:
    out, previous = [], " "
    for ch in text:
        out.append(_simple(ch, ch.title()) if _is_separator(previous) else ch)
        previous = ch
    return "".join(out)


def go_len(item: object) -> int:
    """Go's ``len``: bytes of a string's UTF-8, entries of a map or list; anything else is Go's
    error (``len of type float64``)."""
    if isinstance(item, str):
        return len(item.encode())
    if isinstance(item, (dict, list, tuple)):
        return len(item)
    raise ValueError(f"len of type {go_type(item)}")
