"""Label matchers (=, !=, =~, !~) with Prometheus's semantics: regexes are anchored at both ends,
and a missing label matches as the empty string."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Mapping

EQUAL, NOT_EQUAL, REGEX, NOT_REGEX = "=", "!=", "=~", "!~"


@dataclass(frozen=True)
class Matcher:
    op: str
    name: str
    value: str
    _regex: "re.Pattern[str] | None" = field(default=None, compare=False, repr=False)

    @classmethod
    def of(cls, op: str, name: str, value: str) -> "Matcher":
        if op not in (EQUAL, NOT_EQUAL, REGEX, NOT_REGEX):
            raise ValueError(f"unknown match operator {op!r}")
        regex = None
        if op in (REGEX, NOT_REGEX):
            try:
                regex = re.compile(f"(?:{value})", re.DOTALL)
            except re.error as exc:
                raise ValueError(f"invalid regular expression {value!r}: {exc}") from None
        return cls(op, name, value, regex)

    def matches(self, value: str) -> bool:
        if self.op == EQUAL:
            return value == self.value
        if self.op == NOT_EQUAL:
            return value != self.value
        hit = self._regex.fullmatch(value) is not None  # type: ignore[union-attr]
        return hit if self.op == REGEX else not hit

    def matches_labels(self, labels: Mapping[str, str]) -> bool:
        return self.matches(labels.get(self.name, ""))

    def __str__(self) -> str:
        escaped = self.value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'{self.name}{self.op}"{escaped}"'
