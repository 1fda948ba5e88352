"""Scope a rule pack to ClusterWatch's targets, and give its alerts an absolute ``runbook_url``, on export.

The shipped pack reads every series of a name (``up == 0``), which works where Prometheus scrapes
only ClusterWatch. In a shared Prometheus, ``up`` of an unrelated job fires ExporterDown, and node
rules fire twice where node_exporter runs beside the exporter. ``clusterwatch rules export
--selector 'job=~"gpu-nodes|clusterwatch|clusterwatch-fabric"'`` adds that matcher to every vector selector of a
scraped series:

- a selector is found by a PromQL-aware token walk (string literals, comments, numbers and
  durations, ``by``/``without``/``on``/``ignoring``/``group_left``/``group_right`` label lists,
  function and aggregation names, label-matcher bodies); never a regex over the whole text;
- recorded series (a name with ``:``, or one recorded by a rule of the exported files) and
  ``ALERTS``/``ALERTS_FOR_STATE`` are left alone, so recorded series and their readers still match;
  so is a selector that already matches on a label the scope names;
- the result is checked with promql-parser: the rewritten expression must parse, with the same
  selectors as the original, each with exactly the scope's matchers added or untouched.
"""
from __future__ import annotations

import itertools
import re
from collections import Counter
from typing import Any

import promql_parser as pp

DEFAULT_SELECTOR = 'job=~"gpu-nodes|clusterwatch|clusterwatch-fabric"'
DEFAULT_RUNBOOK_BASE = "https://clusterwatch.example/docs"
UNSCOPED_NAMES = frozenset({"ALERTS", "ALERTS_FOR_STATE"})

_KEYWORDS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or",
                       "unless", "offset", "bool", "atan2", "inf", "nan"})
_LABEL_LISTS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})
_TOKEN = re.compile(r"""
    (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
  | (?P<comment>\#[^\n]*)
  | (?P<num>(?:0[xX][0-9a-fA-F]+|[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)(?:ms|[smhdwy])*)
  | (?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
  | (?P<space>\s+)
  | (?P<other>.)
""", re.VERBOSE | re.DOTALL)


class ScopeError(ValueError):
    """A selector that is not a list of label matchers, or an expression the rewrite cannot scope."""


def parse_scope(selector: str) -> list[tuple[str, str, str]]:
    """``job=~"a|b", env="prod"`` -> its matchers (label, op, value); ScopeError if it is not one."""
    try:
        parsed = pp.parse("{" + selector + "}")
    except ValueError as exc:  # promql-parser's own message
        raise ScopeError(f"--selector {selector!r} is not a list of label matchers: {exc}") from None
    if type(parsed).__name__ != "VectorSelector" or parsed.name:
        raise ScopeError(f"--selector {selector!r} is not a list of label matchers")
    return _matchers(parsed)


def _matchers(selector: Any) -> list[tuple[str, str, str]]:
    return [(m.name, str(m.op), m.value) for m in selector.matchers.matchers]


def _selectors(expr: Any) -> list[Any]:
    """Every VectorSelector under expr (matrix selectors' included)."""
    kind = type(expr).__name__
    if kind == "VectorSelector":
        return [expr]
    if kind == "MatrixSelector":
        return [expr.vector_selector]
    found = []
    for attr in ("lhs", "rhs", "expr", "param"):
        child = getattr(expr, attr, None)
        if child is not None and not isinstance(child, (str, int, float)):
            found.extend(_selectors(child))
    for arg in getattr(expr, "args", None) or []:
        found.extend(_selectors(arg))
    return found


def _body_matchers(body: str) -> list[tuple[str, str, str]]:
    """The matchers of a selector's ``{...}`` body, named or not (a nameless one names itself)."""
    try:
        return _matchers(pp.parse("x{" + body + "}"))
    except ValueError:  # __name__ among them
        return _matchers(pp.parse("{" + body + "}"))


def _selector_name(name: str, body: str) -> str:
    if name:
        return name
    for label, op, value in _body_matchers(body):
        if label == "__name__" and op == "MatchOp.Equal":
            return value
    return ""


def _rewrite(expr: str, scope_text: str, scope_labels: set[str], recorded: set[str]) -> str:
    tokens = [(m.lastgroup, m.group()) for m in _TOKEN.finditer(expr)]
    out: list[str] = []
    significant = [i for i, (kind, _) in enumerate(tokens) if kind not in ("space", "comment")]
    nxt = dict(itertools.pairwise(significant))
    i = 0
    while i < len(tokens):
        kind, text = tokens[i]
        j = nxt.get(i)
        following = tokens[j][1] if j is not None else ""
        if kind == "ident" and text.lower() in _LABEL_LISTS and following == "(":
            close = next(k for k in range(j, len(tokens)) if tokens[k][1] == ")")
            out.extend(t for _, t in tokens[i:close + 1])
            i = close + 1
            continue
        is_name = (kind == "ident" and text.lower() not in _KEYWORDS and following != "("
                   and following.lower() not in ("by", "without"))  # `sum by (x) (...)`: an aggregation
        if not is_name and text != "{":
            out.append(text)
            i += 1
            continue
        name = text if is_name else ""
        if is_name and following == "{":
            gap = "".join(t for _, t in tokens[i + 1:j])
            open_at = j
        elif is_name:
            out.append(text)
            _maybe_scope(out, name, None, scope_text, scope_labels, recorded)
            i += 1
            continue
        else:
            gap, open_at = "", i
        close = next(k for k in range(open_at, len(tokens)) if tokens[k][1] == "}")
        body = "".join(t for _, t in tokens[open_at + 1:close])
        out.append(name + gap)
        _maybe_scope(out, _selector_name(name, body), body, scope_text, scope_labels, recorded)
        i = close + 1
    return "".join(out)


def _maybe_scope(out: list[str], name: str, body: str | None, scope_text: str, scope_labels: set[str],
                 recorded: set[str]) -> None:
    skip = ":" in name or name in recorded or name in UNSCOPED_NAMES
    if body is not None and not skip:
        skip = bool(scope_labels & {label for label, _, _ in _body_matchers(body)})
    if skip:
        if body is not None:
            out.append("{" + body + "}")
        return
    if body is None or not body.strip():
        out.append("{" + scope_text + "}")
        return
    stripped = body.rstrip()
    sep = "" if stripped.endswith(",") else ", "
    out.append("{" + stripped + sep + scope_text + body[len(stripped):] + "}")


def scope_expr(expr: str, selector: str, recorded: set[str] = frozenset()) -> str:
    """expr with the selector's matchers added to every selector of a scraped series (module doc)."""
    scope = parse_scope(selector)
    scope_labels = {label for label, _, _ in scope}
    rewritten = _rewrite(expr, selector.strip(), scope_labels, set(recorded))
    before, after = _selectors(pp.parse(expr)), _selectors(pp.parse(rewritten))
    expected = Counter()
    for sel in before:
        matchers = _matchers(sel)
        name = sel.name or next((v for l, o, v in matchers if l == "__name__"), "")
        unscoped = (":" in name or name in recorded or name in UNSCOPED_NAMES
                    or scope_labels & {label for label, _, _ in matchers})
        expected[(sel.name, tuple(sorted(matchers if unscoped else matchers + scope)))] += 1
    got = Counter((sel.name, tuple(sorted(_matchers(sel)))) for sel in after)
    if got != expected:
        raise ScopeError(f"could not scope {expr!r}: the rewrite {rewritten!r} changes more than its selectors")
    return rewritten


def recorded_names(documents: list[dict]) -> set[str]:
    return {rule["record"] for doc in documents for group in doc.get("groups") or []
            for rule in group.get("rules") or [] if "record" in rule}


def runbook_url(runbook: str, base: str) -> str:
    """``docs/alerts.md#exporterdown`` -> ``<base>/alerts.md#exporterdown`` (base: where docs/ is served)."""
    relative = runbook.removeprefix("docs/")
    return base.rstrip("/") + "/" + relative


def scope_document(doc: dict, selector: str | None, runbook_base: str, recorded: set[str]) -> dict:
    """A rule file's parsed YAML, scoped (selector None or empty: not) and with runbook_url on its alerts."""
    for group in doc.get("groups") or []:
        for rule in group.get("rules") or []:
            if selector:
                rule["expr"] = scope_expr(str(rule["expr"]), selector, recorded)
            annotations = rule.get("annotations")
            if "alert" in rule and annotations and "runbook" in annotations:
                annotations["runbook_url"] = runbook_url(annotations["runbook"], runbook_base)
    return doc
