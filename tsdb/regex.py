"""Regular expressions from queries, with Prometheus's semantics and a linear-time engine.

Prometheus compiles a label matcher's or ``label_replace``'s pattern with Go's ``regexp`` (RE2
syntax, no backreferences or look-around, matching in time linear in the input) as
``^(?:pattern)$``. Prometheus 2.42, the dialect of this engine, sets no flags: ``.`` does not
match a newline and ``$`` matches only at the very end (``(?s)`` dot-all came with 3.0). Python's
``re`` differs in both, and backtracks: ``(a+)+$`` against thirty ``a`` and a ``!`` took 43 s with
the GIL held, freezing the whole server. Here every such pattern runs on RE2 (``google-re2``),
with the same anchoring, and a pattern Go refuses is refused with Go's message.

Patterns that are alternations of literals (``a|b|c``, most rule and dashboard selectors) never
reach RE2: they are a set lookup, as in Prometheus's ``FastRegexMatcher``.
"""
from __future__ import annotations

import functools

import re2
from re2 import _re2

# RE2's error codes, as Go's regexp/syntax names them (Prometheus shows Go's).
_GO_CODES = {
    "missing ]": "missing closing ]",
    "missing )": "missing closing )",
    "unexpected )": "unexpected )",
    "invalid perl operator": "invalid or unsupported Perl syntax",
    "bad repetition operator": "invalid nested repetition operator",
    "invalid repetition size": "invalid repeat count",
    "no argument for repetition operator": "missing argument to repetition operator",
    "trailing \\": "trailing backslash at end of expression",
    "invalid named capture group": "invalid named capture",
    "pattern too large - compile failed": "expression too large",
    "pattern too large - reverse compile failed": "expression too large",
}
# Go's quoting in regexp.QuoteMeta: a part without these is a literal.
_META = frozenset("\\.+*?()|[]{}^$")
# What one compiled pattern may use for its program and DFA (RE2's default; Go has no limit).
MAX_MEMORY_BYTES = 8 << 20


class RegexError(ValueError):
    """A pattern Go's regexp (and so Prometheus) refuses; ``str()`` is Go's message."""


class Regex:
    """A pattern anchored at both ends, as Prometheus anchors it. ``matches`` is a plain test;
    ``groups`` gives the submatches ``label_replace`` expands."""

    __slots__ = ("pattern", "_literals", "_re", "_names")

    def __init__(self, pattern: str, literals: frozenset[str] | None, compiled, names: dict[str, int]) -> None:
        self.pattern = pattern
        self._literals = literals
        self._re = compiled
        self._names = names

    def matches(self, text: str) -> bool:
        if self._literals is not None:
            return text in self._literals
        encoded = text.encode()
        return self._re.Match(_SEARCH, encoded, 0, len(encoded))[0][0] >= 0

    def groups(self, text: str) -> "Groups | None":
        """The submatches of ``text`` (None when it does not match)."""
        if self._literals is not None:  # no groups but the whole match
            return Groups([text], {}) if text in self._literals else None
        encoded = text.encode()
        spans = self._re.Match(_SEARCH, encoded, 0, len(encoded))
        if spans[0][0] < 0:
            return None
        # RE2 reports byte offsets of the UTF-8 text; groups always start and end on characters.
        values = [None if start < 0 else encoded[start:end].decode() for start, end in spans]
        return Groups(values, self._names)


class Groups:
    """Submatches by number (0: the whole match) or name; unknown ones raise IndexError, like
    ``re.Match.group``."""

    __slots__ = ("_values", "_names")

    def __init__(self, values: list[str | None], names: dict[str, int]) -> None:
        self._values = values
        self._names = names

    def group(self, key: int | str) -> str | None:
        index = key if isinstance(key, int) else self._names.get(key, -1)
        if not 0 <= index < len(self._values):
            raise IndexError(key)
        return self._values[index]


# The pattern carries its own ^ and $ and is searched, as Go's MatchString does: a pattern that
# closes the group early (``a)|(b``) then anchors only one end there too.
_SEARCH = _re2.RE2.Anchor.UNANCHORED


@functools.lru_cache(maxsize=256)
def compile_anchored(pattern: str) -> Regex:
    """``pattern`` as Prometheus compiles it (``^(?:pattern)$``, RE2 syntax); RegexError with
    Go's message when Go would refuse it. Compiled patterns are cached: rules send the same
    ones every cycle."""
    literals = _literal_alternation(pattern)
    if literals is not None:
        return Regex(pattern, literals, None, {})
    _refuse_what_go_refuses(pattern)
    options = re2.Options()
    options.log_errors = False  # RE2 would log every refused pattern to stderr
    options.max_mem = MAX_MEMORY_BYTES
    compiled = _re2.RE2(f"^(?:{pattern})$".encode(), options)
    if not compiled.ok():
        raise RegexError(_go_message(compiled.error()))
    names = {name.decode(): index for name, index in compiled.NamedCapturingGroups()}
    return Regex(pattern, None, compiled, names)


def _literal_alternation(pattern: str) -> frozenset[str] | None:
    """The literals of ``lit1|lit2|...`` (one literal included), or None if any part is not one.
    An empty pattern matches only the empty string, which the set says too."""
    if _META.isdisjoint(pattern.replace("|", "")):
        return frozenset(pattern.split("|"))
    return None


def _refuse_what_go_refuses(pattern: str) -> None:
    """RE2 in C++ accepts two constructs Go 1.19's regexp (Prometheus 2.42) refuses: ``\\C`` (one
    byte) and ``(?<name>...)`` groups. One linear pass, outside character classes for ``(?<``."""
    i, in_class = 0, False
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            if pattern[i + 1:i + 2] == "C":
                raise RegexError("error parsing regexp: invalid escape sequence: `\\C`")
            i += 2
            continue
        if in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
            if pattern[i + 1:i + 2] == "]" or pattern[i + 1:i + 3] == "^]":
                i += 2 if pattern[i + 1] == "]" else 3  # a leading ] is literal
                continue
        elif pattern.startswith("(?<", i):
            raise RegexError("error parsing regexp: invalid or unsupported Perl syntax: `(?<`")
        i += 1


def _go_message(error: bytes | str) -> str:
    """RE2's ``code: fragment`` as Go's ``error parsing regexp: code: `fragment```."""
    text = error.decode(errors="replace") if isinstance(error, bytes) else error
    code, _, fragment = text.partition(": ")
    code = _GO_CODES.get(code, code)
    return f"error parsing regexp: {code}: `{fragment}`" if fragment else f"error parsing regexp: {code}"
