"""A PromQL expression as Prometheus 2.42 prints it (promql/parser/printer.go's ``String()``).

Prometheus shows a rule's query in its API, its rules page and Grafana's rule list as the parsed
expression printed back, not the text of the rule file: spaces normalised, ``by`` before the
operands, label matchers sorted, durations in their largest units (``90m`` is ``1h30m``), numbers
in Go's shortest form (``1000000`` is ``1e+06``), and matching clauses that cannot apply (``on()``
beside a scalar) gone. ``expression_text`` writes the same, so a tool that compares or searches
rules by their query finds ours as it finds Prometheus's.

promql-parser folds a unary ``+`` away (``+x`` is ``x``), where Prometheus keeps it (``+x``); no
rule in the shipped pack uses one.
"""
from __future__ import annotations

import promql_parser as pp

from cwkernel.gotext import go_duration, go_quote, go_shortest
from tsdb.promql.evaluator import at_millis, millis

_MATCH_OP_TEXT = {"Equal": "=", "NotEqual": "!=", "Re": "=~", "NotRe": "!~"}
# The functions whose result is a scalar (promql/parser/functions.go, ReturnType ValueTypeScalar).
_SCALAR_FUNCTIONS = {"pi", "scalar", "time"}
_SCALAR, _VECTOR, _MATRIX, _STRING = "scalar", "vector", "matrix", "string"


def expression_text(expr: pp.Expr) -> str:
    """``expr`` as Prometheus's ``Expr.String()`` writes it."""
    return _text(expr)


def query_text(query: str) -> str:
    """A query's text as Prometheus prints it once parsed (raises as ``promql_parser.parse``)."""
    return _text(pp.parse(query))


def _text(expr: pp.Expr) -> str:
    if isinstance(expr, pp.ParenExpr):
        return f"({_text(expr.expr)})"
    if isinstance(expr, pp.NumberLiteral):
        return go_shortest(float(expr.val))
    if isinstance(expr, pp.StringLiteral):
        return go_quote(expr.val)
    if isinstance(expr, pp.VectorSelector):
        return _selector(expr)
    if isinstance(expr, pp.MatrixSelector):
        selector = expr.vector_selector
        return f"{_selector(selector, modifiers=False)}[{_duration(expr.range)}]{_modifiers(selector)}"
    if isinstance(expr, pp.SubqueryExpr):
        step = _duration(expr.step) if expr.step else ""
        return f"{_text(expr.expr)}[{_duration(expr.range)}:{step}]{_modifiers(expr)}"
    if isinstance(expr, pp.UnaryExpr):
        return f"-{_text(expr.expr)}"
    if isinstance(expr, pp.BinaryExpr):
        return _binary(expr)
    if isinstance(expr, pp.AggregateExpr):
        return _aggregation(expr)
    if isinstance(expr, pp.Call):
        return f"{expr.func.name}({', '.join(_text(arg) for arg in expr.args)})"
    raise TypeError(f"no PromQL text for {type(expr).__name__}")


def _duration(delta) -> str:  # noqa: ANN001 - a timedelta from the parser
    return go_duration(millis(delta))


def _modifiers(node) -> str:  # noqa: ANN001 - a selector or subquery: both carry at and offset
    """`` @ <time>`` then `` offset <duration>``, in that order whatever the query's order."""
    out = ""
    at = node.at
    if at is not None:
        if at.type == pp.AtModifierType.Start:
            out += " @ start()"
        elif at.type == pp.AtModifierType.End:
            out += " @ end()"
        else:
            out += f" @ {at_millis(at) / 1000:.3f}"
    offset = millis(node.offset)
    if offset > 0:
        out += f" offset {go_duration(offset)}"
    elif offset < 0:
        out += f" offset -{go_duration(-offset)}"
    return out


def _matcher(m) -> str:  # noqa: ANN001 - promql_parser.Matcher
    return f"{m.name}{_MATCH_OP_TEXT[str(m.op).rsplit('.', 1)[-1]]}{go_quote(m.value)}"


def _selector(selector: pp.VectorSelector, modifiers: bool = True) -> str:
    name = selector.name or ""
    groups = [selector.matchers.matchers, *(selector.matchers.or_matchers or [])]
    texts = [",".join(sorted(_matcher(m) for m in group
                             if not (m.name == "__name__" and _MATCH_OP_TEXT[str(m.op).rsplit(".", 1)[-1]] == "="
                                     and m.value == name)))
             for group in groups if group]
    suffix = _modifiers(selector) if modifiers else ""
    texts = [t for t in texts if t]
    if not texts:
        return f"{name}{suffix}"
    return f"{name}{{{' or '.join(texts)}}}{suffix}"


def _binary(expr: pp.BinaryExpr) -> str:
    modifier = expr.modifier
    returns_bool = " bool" if modifier is not None and modifier.return_bool else ""
    return f"{_text(expr.lhs)} {expr.op}{returns_bool}{_matching(expr)} {_text(expr.rhs)}"


def _matching(expr: pp.BinaryExpr) -> str:
    modifier = expr.modifier
    # Prometheus's parser drops the matching of an operation with a scalar side, so it prints none.
    if modifier is None or modifier.matching is None or _SCALAR in (_type(expr.lhs), _type(expr.rhs)):
        return ""
    matching = modifier.matching
    on = matching.type == pp.LabelModifierType.Include
    if not on and not matching.labels:
        return ""
    out = f" {'on' if on else 'ignoring'} ({', '.join(matching.labels)})"
    if modifier.card in (pp.VectorMatchCardinality.ManyToOne, pp.VectorMatchCardinality.OneToMany):
        side = "left" if modifier.card == pp.VectorMatchCardinality.ManyToOne else "right"
        out += f" group_{side} ({', '.join(modifier.group_labels or [])})"
    return out


def _aggregation(expr: pp.AggregateExpr) -> str:
    out = str(expr.op)
    modifier = expr.modifier
    if modifier is not None and modifier.type == pp.AggModifierType.Without:
        out += f" without ({', '.join(modifier.labels)}) "
    elif modifier is not None and modifier.labels:
        out += f" by ({', '.join(modifier.labels)}) "
    param = f"{_text(expr.param)}, " if expr.param is not None else ""
    return f"{out}({param}{_text(expr.expr)})"


def _type(expr: pp.Expr) -> str:
    """The value type of ``expr``, as the parser's type check sees it."""
    while isinstance(expr, (pp.ParenExpr, pp.UnaryExpr)):
        expr = expr.expr
    if isinstance(expr, pp.NumberLiteral):
        return _SCALAR
    if isinstance(expr, pp.StringLiteral):
        return _STRING
    if isinstance(expr, (pp.MatrixSelector, pp.SubqueryExpr)):
        return _MATRIX
    if isinstance(expr, pp.BinaryExpr):
        return _SCALAR if _type(expr.lhs) == _SCALAR and _type(expr.rhs) == _SCALAR else _VECTOR
    if isinstance(expr, pp.Call) and expr.func.name in _SCALAR_FUNCTIONS:
        return _SCALAR
    return _VECTOR
