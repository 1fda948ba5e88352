"""Label matchers as Alertmanager writes them: ``name="v"``, ``!=``, ``=~``, ``!~``.

Used by routes, inhibit rules and silences alike, so one parser and one ``matches`` decide
everywhere. Regexes are users' (silences, ``/api/alerts?filter=``, routing config), so they run
on RE2 (google-re2) as Alertmanager's Go regexps do: linear time, Go's syntax, anchored on both
ends (``^(?:re)$``, where ``$`` is the end of the text, not before a final newline). A pattern RE2
refuses (lookaround, backreferences, a repeat over 1000) is a ValueError naming it.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from alerts.regex import compile_regex

OPS = ("=~", "!~", "!=", "=")
SEEN_VALUES = 4096  # regex results remembered per matcher


# A matcher string: name, operator, then a value that is either quoted (Go-style escapes) or bare.
# Run on user input too, hence RE2 (its lazy `*?` then `\s*` would backtrack quadratically in `re`).
_MATCHER = compile_regex(r'\s*([a-zA-Z_][a-zA-Z0-9_]*|"[^"]+")\s*(=~|!~|!=|=)\s*("(?:[^"\\]|\\.)*"|[^,{}"]*?)\s*(?:,|$)')


@dataclass(frozen=True)
class AlertMatcher:
    name: str
    op: str
    value: str
    _regex: Any = field(default=None, compare=False, repr=False, hash=False)
    _seen: dict = field(default_factory=dict, compare=False, repr=False, hash=False)

    def __post_init__(self) -> None:
        if self.op not in OPS:
            raise ValueError(f"unknown matcher operator {self.op!r} (use =, !=, =~ or !~)")
        if self.op in ("=~", "!~"):
            try:
                object.__setattr__(self, "_regex", compile_regex(f"^(?:{self.value})$"))
            except ValueError as exc:
                raise ValueError(f"invalid regex {self.value!r} for {self.name}: {exc}") from None

    def matches(self, labels: Mapping[str, str]) -> bool:
        # A missing label matches as the empty string, which is what lets `foo=""` select absence.
        value = labels.get(self.name, "")
        if self.op == "=":
            return value == self.value
        if self.op == "!=":
            return value != self.value
        found = self._seen.get(value)
        if found is None:
            # Label values repeat (alertname, severity) and each RE2 call costs microseconds of
            # wrapper: remembered per matcher, a bounded number of them.
            if len(self._seen) >= SEEN_VALUES:
                self._seen.clear()
            found = self._seen[value] = self._regex.search(value) is not None  # anchored: a whole-value match
        return found if self.op == "=~" else not found

    @property
    def is_regex(self) -> bool:
        return self.op in ("=~", "!~")

    @property
    def is_equal(self) -> bool:
        return self.op in ("=", "=~")

    def __str__(self) -> str:
        # Go's %q for the value: this string is part of Alertmanager's route keys and group keys.
        return f"{self.name}{self.op}{json.dumps(self.value, ensure_ascii=False)}"


def parse_matchers(text: str) -> list[AlertMatcher]:
    """``a="b"``, ``{a="b", c=~"d|e"}`` or ``a=b,c!=d`` into matchers; ValueError says what is wrong."""
    body = text.strip()
    if body.startswith("{"):
        if not body.endswith("}"):
            raise ValueError(f"unbalanced braces in {text!r}")
        body = body[1:-1]
    matchers, pos = [], 0
    body = body.strip()
    while pos < len(body):
        found = _MATCHER.match(body, pos)
        if not found or found.end() == pos:
            raise ValueError(f"bad matcher {body[pos:]!r} in {text!r} (expected name=\"value\", !=, =~ or !~)")
        name, op, raw = found.groups()
        name = name.strip('"')
        value = json.loads(raw) if raw.startswith('"') else raw.strip()
        matchers.append(AlertMatcher(name, op, value))
        pos = found.end()
    return matchers


def from_config(matchers: Any = None, match: Any = None, match_re: Any = None) -> list[AlertMatcher]:
    """Matchers from a config block: ``matchers`` (list of strings) plus the legacy ``match``
    (equality map) and ``match_re`` (regex map) that Alertmanager still accepts."""
    result: list[AlertMatcher] = []
    for item in _as_list(matchers, "matchers"):
        if not isinstance(item, str):
            raise ValueError(f"each matcher must be a string like 'severity=\"critical\"' (got {item!r})")
        result.extend(parse_matchers(item))
    for mapping, op, spell in ((match, "=", "{}"), (match_re, "=~", "^(?:{})$")):
        if mapping is None:
            continue
        if not isinstance(mapping, dict):
            raise ValueError("match / match_re must be a mapping of label names to values")
        # Alertmanager stores a legacy match_re anchored, and the anchored text shows in route
        # keys (hence in group keys): keep its spelling so both produce the same keys.
        result.extend(AlertMatcher(str(name), op, spell.format(value)) for name, value in mapping.items())
    return sort_matchers(result)


def sort_matchers(matchers: Iterable[AlertMatcher]) -> list[AlertMatcher]:
    """Alertmanager's order (name, value, operator): route keys depend on it."""
    return sorted(matchers, key=lambda m: (m.name, m.value, OPS_ORDER[m.op]))


# Go's labels.MatchType order: MatchEqual, MatchNotEqual, MatchRegexp, MatchNotRegexp.
OPS_ORDER = {"=": 0, "!=": 1, "=~": 2, "!~": 3}


def matches_all(matchers: Iterable[AlertMatcher], labels: Mapping[str, str]) -> bool:
    for matcher in matchers:  # a loop, not all(genexpr): called ~10 times per alert of a storm
        if not matcher.matches(labels):
            return False
    return True


def format_matchers(matchers: Iterable[AlertMatcher]) -> str:
    return "{" + ",".join(str(m) for m in matchers) + "}"


def _as_list(value: Any, name: str) -> list:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return value
    raise ValueError(f"{name} must be a list of strings")
