"""Users' regular expressions (silences, routes, inhibit rules, alert filters, templates) on RE2,
as Alertmanager's and Prometheus's Go regexps: linear time in the text, Go's syntax. A pattern RE2
refuses (look-around, backreferences, a repeat over 1000) is a ValueError naming RE2's reason."""
from __future__ import annotations

import functools

import re2

_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # a refused pattern is the caller's ValueError, not a line on stderr


def compile_regex(pattern: str):  # noqa: ANN201 - re2's compiled pattern type is not exported
    """``pattern`` compiled by RE2; ValueError with RE2's reason when it refuses it."""
    try:
        return re2.compile(pattern, _RE2_OPTIONS)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        raise ValueError(reason.decode(errors="replace") if isinstance(reason, bytes) else str(reason)) from None


@functools.lru_cache(maxsize=256)
def cached_regex(pattern: str):  # noqa: ANN201
    """``compile_regex`` for patterns used again and again (a template's, at every evaluation)."""
    return compile_regex(pattern)
