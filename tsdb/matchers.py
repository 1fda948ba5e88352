"""Label matchers (=, !=, =~, !~) with Prometheus's semantics: regexes are RE2, anchored at both
ends (``tsdb.regex``), and a missing label matches as the empty string."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from tsdb.regex import Regex, compile_anchored

EQUAL, NOT_EQUAL, REGEX, NOT_REGEX = "=", "!=", "=~", "!~"


@dataclass(frozen=True)
class LabelMatcher:
    op: str
    name: str
    value: str
    _regex: Regex | None = field(default=None, compare=False, repr=False)

    @classmethod
    def of(cls, op: str, name: str, value: str) -> "LabelMatcher":
        """Raises ValueError for an unknown operator, RegexError (a ValueError: Go's message) for
        a pattern Prometheus would refuse."""
        if op not in (EQUAL, NOT_EQUAL, REGEX, NOT_REGEX):
            raise ValueError(f"unknown match operator {op!r}")
        regex = compile_anchored(value) if op in (REGEX, NOT_REGEX) else None
        return cls(op, name, value, regex)

    def matches(self, value: str) -> bool:
        if self.op == EQUAL:
            return value == self.value
        if self.op == NOT_EQUAL:
            return value != self.value
        hit = self._regex.matches(value)  # type: ignore[union-attr]
        return hit if self.op == REGEX else not hit

    def matches_labels(self, labels: Mapping[str, str]) -> bool:
        return self.matches(labels.get(self.name, ""))

    def __str__(self) -> str:
        escaped = self.value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'{self.name}{self.op}"{escaped}"'
