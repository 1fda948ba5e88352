"""The subset of Go's text/template that Prometheus alert templates use, interpreted (no eval).

Supported: text and ``{{ }}`` actions with ``{{-``/``-}}`` trimming and ``{{/* comments */}}``;
pipelines (``a | f b``) of variables (``$labels.instance``, ``$value``, ``$externalLabels``,
``$externalURL``, ``$`` and variables set with ``:=``), fields of dot (``.Labels.gpu``,
``.Value``), string, raw-string, number and boolean literals, parentheses; ``if``/``else if``/
``else``/``end``, ``with`` and ``range`` (over a query's result or a list; ``$i, $x :=`` and
``{{else}}`` as in Go: fabric alerts list the nodes and jobs behind a link); functions: Prometheus's ``humanize``, ``humanize1024``,
``humanizePercentage``, ``humanizeDuration``, ``humanizeTimestamp``, ``title``, ``toUpper``,
``toLower``, ``reReplaceAll``, ``match``, ``stripPort``, ``stripDomain``, ``toTime``, ``parseDuration``,
``safeHtml``, ``args``, ``graphLink``, ``tableLink``, ``externalURL``, ``pathPrefix``,
``query``/``first``/``value``/``label``/``strvalue``/``sortByLabel`` (all of Prometheus 2.42's)
and Go's ``printf``, ``print``, ``len``, ``index``, ``not``, ``and``, ``or``, ``eq``, ``ne``,
``lt``, ``le``, ``gt``, ``ge``. Missing map keys read as "" (Prometheus sets missingkey=zero).
Anything else is refused when the template is parsed, so a rule file using it fails ``check``
instead of rendering wrongly. A template that fails while rendering reads as in Prometheus:
``<error expanding template: error executing template __alert_X: template: __alert_X:1:124:
executing "__alert_X" at <humanizeTimestamp>: error calling humanizeTimestamp: ...>`` (the line
and byte column of the failing command, counted past the definitions Prometheus puts before the
template; RE2's parse errors in Go's words). tests/alerts/test_templates_differential.py holds
renderings and failures to promtool 2.42.
"""
from __future__ import annotations

import ipaddress
import math
import re
import urllib.parse
from dataclasses import dataclass, field
from typing import Any, Callable

from alerts.evaluator import gofmt, gostrings
from alerts.regex import cached_regex
from cwkernel.gotext import parse_go_duration

__all__ = ["Template", "TemplateError", "render", "QueryFunc"]

QueryFunc = Callable[[str], list[dict[str, Any]]]  # PromQL -> [{"Labels": {...}, "Value": float}]


class TemplateError(ValueError):
    """A template that does not parse or fails while rendering; the message says where."""

    at: "_Command | None" = None  # the innermost command running when rendering failed

    def __init__(self, message: str, at: "_Command | None" = None) -> None:
        super().__init__(message)
        self.at = at


class _ArgumentError(TemplateError):
    """A function given arguments of the wrong type or number: the template's failure whatever the
    alert it renders for (``template_problems``), not one alert's data."""


# Prometheus runs each alert template behind these definitions, on the same first line, so the
# columns its errors give on line 1 count them (rules/alerting.go, 2.42).
ALERT_DEFINITIONS = ("{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}"
                     "{{$externalURL := .ExternalURL}}{{$value := .Value}}")


def alert_template_name(rule: str) -> str:
    """The name Prometheus gives an alerting rule's label and annotation templates."""
    return f"__alert_{rule}"


# ---- lexing ---------------------------------------------------------------------------------

_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<string>"(?:[^"\\]|\\.)*")
  | (?P<raw>`[^`]*`)
  | (?P<number>[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?)
  | (?P<declare>:=)
  | (?P<assign>=)
  | (?P<pipe>\|)
  | (?P<lparen>\()
  | (?P<rparen>\))
  | (?P<variable>\$[A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)
  | (?P<field>(?:\.[A-Za-z0-9_]+)+|\.)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
""", re.VERBOSE)

_STRING_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "a": "\a", "b": "\b",
                   "f": "\f", "v": "\v", "0": "\0"}


def _tokens(text: str, where: str, offset: int) -> list[tuple[str, str, int]]:
    """(kind, text, position in the template) of each token of an action body at ``offset``."""
    out: list[tuple[str, str, int]] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match:
            raise TemplateError(f"{where}: unexpected {text[pos]!r} in action")
        pos = match.end()
        if match.lastgroup != "ws":
            out.append((match.lastgroup, match.group(), offset + match.start()))
    return out


def _unquote(token: str) -> str:
    return re.sub(r"\\(.)", lambda m: _STRING_ESCAPES.get(m.group(1), m.group(1)), token[1:-1])


# ---- parse tree -----------------------------------------------------------------------------

@dataclass
class _Command:
    args: list[tuple[str, Any]]  # (kind, value): ident, variable, field, literal, pipeline
    pos: int = 0  # of its first token in the template: where Go's errors place it
    source: str = ""  # as Go's text/template prints the command in an error ("humanize $value")
    spans: list[tuple[int, str]] = field(default_factory=list)  # each arg's position and source

    def node(self, index: int) -> "_Command":
        """Where Go places an error about arg ``index`` (0: the function's name): at that arg, or,
        for a parenthesized pipeline, at the last node evaluated in it."""
        kind, raw = self.args[index]
        if kind == "pipeline":
            last = raw.commands[-1]
            return last.node(len(last.args) - 1)
        pos, source = self.spans[index]
        return _Command([], pos, source)


@dataclass
class _Pipeline:
    commands: list[_Command]
    declare: str | None = None  # "$x" of "$x := ..."

    @property
    def source(self) -> str:
        text = " | ".join(command.source for command in self.commands)
        return f"{self.declare} := {text}" if self.declare else text


@dataclass
class _Text:
    text: str


@dataclass
class _Action:
    pipeline: _Pipeline


@dataclass
class _Branch:
    """``if``/``with``: the pipeline's value chooses ``then`` or ``otherwise``."""

    kind: str
    pipeline: _Pipeline
    then: list = field(default_factory=list)
    otherwise: list = field(default_factory=list)


@dataclass
class _Range:
    """``range``: ``then`` once per element (dot, and the declared variables, set to it), or
    ``otherwise`` when there is none."""

    pipeline: _Pipeline
    index_var: str | None
    element_var: str | None
    then: list = field(default_factory=list)
    otherwise: list = field(default_factory=list)


_RANGE_DECLARE = re.compile(r"\s*(\$[A-Za-z0-9_]*)\s*(?:,\s*(\$[A-Za-z0-9_]*)\s*)?:=(.*)", re.DOTALL)


_ACTION = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.DOTALL)


@dataclass(frozen=True)
class _Part:
    kind: str  # "text" or "action"
    body: str  # the text, or the action's body without its delimiters and outer spaces
    offset: int = 0  # where an action's body begins in the template


def _split(text: str, where: str) -> list[_Part]:
    """Text and action bodies in order, with Go's trim markers applied to the text around them."""
    parts: list[_Part] = []
    pos = 0
    for match in _ACTION.finditer(text):
        chunk = text[pos:match.start()]
        if match.group(1):
            chunk = chunk.rstrip(" \t\r\n")
        parts.append(_Part("text", chunk))
        raw = match.group(2)
        body = raw.strip()
        if body.startswith("/*"):
            if not body.endswith("*/"):
                raise TemplateError(f"{where}: unclosed comment")
        else:
            parts.append(_Part("action", body, match.start(2) + len(raw) - len(raw.lstrip())))
        pos = match.end()
        if match.group(3):
            rest = text[pos:]
            pos += len(rest) - len(rest.lstrip(" \t\r\n"))
    tail = text[pos:]
    if "{{" in tail:
        raise TemplateError(f"{where}: unclosed action")
    parts.append(_Part("text", tail))
    return [p for p in parts if p != _Part("text", "")]


class _Parser:
    def __init__(self, text: str, where: str) -> None:
        self.where = where
        self.parts = _split(text, where)
        self.pos = 0

    def parse(self) -> list:
        nodes, end = self._list()
        if end is not None:
            raise TemplateError(f"{self.where}: unexpected {{{{{end.body}}}}}")
        return nodes

    def _list(self) -> tuple[list, _Part | None]:
        """Nodes up to an ``{{end}}`` or ``{{else...}}``, which is returned (None at the end)."""
        nodes: list = []
        while self.pos < len(self.parts):
            part = self.parts[self.pos]
            self.pos += 1
            if part.kind == "text":
                nodes.append(_Text(part.body))
                continue
            body, offset = part.body, part.offset
            keyword = body.split(None, 1)[0] if body else ""
            if keyword in ("end", "else"):
                return nodes, part
            if keyword in ("if", "with"):
                nodes.append(self._branch(keyword, body[len(keyword):], offset + len(keyword)))
            elif keyword == "range":
                nodes.append(self._range(body[len(keyword):], offset + len(keyword)))
            elif keyword in ("template", "define", "block", "break", "continue"):
                raise TemplateError(f"{self.where}: {{{{{keyword}}}}} is not supported by ClusterWatch's templates")
            else:
                nodes.append(_Action(self._pipeline(body, offset)))
        return nodes, None

    def _branch(self, kind: str, condition: str, offset: int) -> _Branch:
        branch = _Branch(kind, self._pipeline(condition, offset))
        branch.then, end = self._list()
        if end is None:
            raise TemplateError(f"{self.where}: unexpected EOF, {{{{{kind}}}}} without {{{{end}}}}")
        if end.body.startswith("else"):
            after = end.body[4:]
            rest = after.strip()
            if rest.startswith("if ") or rest.startswith("with "):
                sub = rest.split(None, 1)[0]
                at = end.offset + 4 + len(after) - len(after.lstrip()) + len(sub)
                branch.otherwise = [self._branch(sub, rest[len(sub):], at)]
                return branch  # the nested branch consumed the shared {{end}}
            branch.otherwise, end = self._list()
            if end is None or end.body != "end":
                raise TemplateError(f"{self.where}: expected {{{{end}}}}, got {{{{{end.body if end else ''}}}}}")
        elif end.body != "end":
            raise TemplateError(f"{self.where}: expected {{{{end}}}}, got {{{{{end.body}}}}}")
        return branch

    def _range(self, rest: str, offset: int) -> _Range:
        index_var = element_var = None
        declared = _RANGE_DECLARE.fullmatch(rest)
        if declared:
            first, second, _ = declared.groups()
            index_var, element_var = (first, second) if second else (None, first)
            rest, offset = declared.group(3), offset + declared.start(3)
        node = _Range(self._pipeline(rest, offset), index_var, element_var)
        node.then, end = self._list()
        if end is not None and end.body.strip() == "else":
            node.otherwise, end = self._list()
        if end is None or end.body.strip() != "end":
            raise TemplateError(f"{self.where}: expected {{{{end}}}} after {{{{range}}}}, "
                                f"got {end.body if end else None!r}")
        return node

    def _pipeline(self, body: str, offset: int) -> _Pipeline:
        tokens = _tokens(body, self.where, offset)
        declare = None
        if len(tokens) >= 2 and tokens[0][0] == "variable" and tokens[1][0] in ("declare", "assign"):
            declare = tokens[0][1]
            tokens = tokens[2:]
        pipeline, rest = self._commands(tokens)
        if rest:
            raise TemplateError(f"{self.where}: unexpected {rest[0][1]!r} in action")
        pipeline.declare = declare
        return pipeline

    def _commands(self, tokens: list[tuple[str, str, int]]) -> tuple[_Pipeline, list]:
        commands: list[_Command] = []
        current: list[tuple[str, Any]] = []
        sources: list[str] = []
        spans: list[tuple[int, str]] = []
        start = 0
        while tokens:
            kind, text, pos = tokens[0]
            if kind == "rparen":
                break
            tokens = tokens[1:]
            if not current and kind != "pipe":
                start = pos
            if kind == "pipe":
                if not current:
                    raise TemplateError(f"{self.where}: missing command before |")
                commands.append(_Command(current, start, " ".join(sources), spans))
                current, sources, spans = [], [], []
                continue
            sources.append(text)
            spans.append((pos, text))
            if kind == "lparen":
                inner, tokens = self._commands(tokens)
                if not tokens or tokens[0][0] != "rparen":
                    raise TemplateError(f"{self.where}: unclosed left paren")
                tokens = tokens[1:]
                current.append(("pipeline", inner))
                sources[-1] = f"({inner.source})"
                spans[-1] = (pos, sources[-1])
            elif kind in ("string", "raw"):
                current.append(("literal", _unquote(text) if kind == "string" else text[1:-1]))
            elif kind == "number":
                current.append(("literal", float(text) if any(c in text for c in ".eE") else int(text)))
            elif kind == "ident":
                if text in ("true", "false"):
                    current.append(("literal", text == "true"))
                elif text == "nil":
                    current.append(("literal", None))
                elif text not in FUNCTIONS:
                    raise TemplateError(f'{self.where}: function "{text}" not defined')
                else:
                    current.append(("ident", text))
            elif kind in ("variable", "field"):
                current.append((kind, text))
            else:
                raise TemplateError(f"{self.where}: unexpected {text!r} in action")
        if current:
            commands.append(_Command(current, start, " ".join(sources), spans))
        elif commands:
            raise TemplateError(f"{self.where}: missing command after |")
        if not commands:
            raise TemplateError(f"{self.where}: missing value for command")
        return _Pipeline(commands), tokens


# ---- execution ------------------------------------------------------------------------------

def _truth(value: Any) -> bool:
    return not (value is None or value is False or value == 0 or value == "" or value == {} or value == [])


def _field(value: Any, name: str) -> Any:
    if isinstance(value, dict):
        return value.get(name, "" if all(isinstance(v, str) for v in value.values()) else None)
    raise TemplateError(f"can't evaluate field {name} in type {type(value).__name__}")


def _compare(name: str) -> Callable[..., bool]:
    # As Go defines them: le is lt or eq, gt is not le, ge is not lt; so with NaN, gt and ge are true.
    ops = {"eq": lambda a, b: a == b, "ne": lambda a, b: a != b, "lt": lambda a, b: a < b,
           "le": lambda a, b: a < b or a == b, "gt": lambda a, b: not (a < b or a == b),
           "ge": lambda a, b: not a < b}

    def compare(a: Any, *others: Any) -> bool:
        for b in others:
            if type(a) is not type(b) and not (name in ("eq", "ne") and (a is None or b is None)):
                raise TemplateError(f"error calling {name}: incompatible types for comparison")
        if name == "eq":
            return any(a == b for b in others)
        return ops[name](a, others[0])  # two arguments: held to its arity before the call
    return compare


# RE2's words for a pattern it cannot parse, in Go's regexp/syntax words (the rest are the same).
_GO_REGEXP_ERRORS = {
    "missing )": "missing closing )", "missing ]": "missing closing ]",
    "bad repetition operator": "invalid nested repetition operator",
    "trailing \\": "trailing backslash at end of expression", "invalid repetition size": "invalid repeat count",
    "invalid named capture group": "invalid named capture",
    "no argument for repetition operator": "missing argument to repetition operator",
    "invalid perl operator": "invalid or unsupported Perl syntax",
}


def _regex(pattern: str):  # noqa: ANN202 - re2's pattern type
    """The pattern on RE2, as Go's regexp runs it: a label value (scraped, so anyone's) cannot
    make a backtracking engine take minutes inside the rule evaluator. A pattern that does not
    parse is a ValueError worded as Go's ``syntax.Error``."""
    try:
        return cached_regex(pattern)
    except ValueError as exc:
        code, _, fragment = str(exc).partition(": ")
        raise ValueError(f"error parsing regexp: {_GO_REGEXP_ERRORS.get(code, code)}: `{fragment}`") from None


def _must_compile(pattern: str):  # noqa: ANN202 - re2's pattern type
    """Go's ``regexp.MustCompile`` (``reReplaceAll``), whose panic text/template reports."""
    try:
        return _regex(pattern)
    except ValueError as exc:
        raise ValueError(f"regexp: Compile({_go_quote(pattern)}): {exc}") from None


def _go_quote(text: str) -> str:
    """regexp's ``quote``: between backquotes where Go's ``strconv.CanBackquote`` allows, else %q."""
    if "`" in text or "\ufeff" in text or any(c != "\t" and (c < " " or c == "\x7f") for c in text):
        return gofmt.go_sprintf("%q", text)
    return f"`{text}`"


def _go_expansion(repl: str) -> str:
    """Go's ``$1``, ``${1}`` and ``$name`` as the ``\\g<...>`` references ``sub`` expands."""
    return re.sub(r"\$\{?(\w+)\}?", r"\\g<\1>", repl.replace("\\", "\\\\"))


def _split_host_port(address: str) -> tuple[str, str] | None:
    """Go's ``net.SplitHostPort``; None where it fails (no port, too many colons, bad brackets)."""
    if address.startswith("["):
        end = address.find("]")
        if end < 0 or not address[end + 1:].startswith(":"):
            return None
        host, port = address[1:end], address[end + 2:]
    else:
        host, colon, port = address.rpartition(":")
        if not colon or ":" in host:
            return None
    if any(c in host + port for c in "[]"):
        return None
    return host, port


def _strip_port(address: str) -> str:
    """Prometheus's ``stripPort``: the host, where the address splits into host and port."""
    split = _split_host_port(address)
    return split[0] if split else address


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return "%" not in host  # Go's ParseIP takes no IPv6 zone


def _strip_domain(address: str) -> str:
    """Prometheus's ``stripDomain``: the host's first label, port kept; an IP address as it is."""
    split = _split_host_port(address)
    host, port = split if split else (address, "")
    if _is_ip(host):
        return address
    host = host.split(".")[0]
    if not port:
        return host
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _to_time(value: Any) -> str:
    """Prometheus's ``toTime``: the time printed as Go prints it; NaN and infinities are errors."""
    number = gofmt.to_float(value)
    if not math.isfinite(number):
        raise ValueError("value is NaN or Inf")
    return gofmt.humanize_timestamp(number)


def _expression_link(tab: int) -> Callable[[str], str]:
    """``graphLink``/``tableLink``: the Prometheus UI's link to an expression (strutil)."""
    return lambda expression: f"/graph?g0.expr={urllib.parse.quote_plus(expression)}&g0.tab={tab}"


def _first(samples: list) -> Any:
    if not samples:
        raise TemplateError("first() called on vector with no elements")
    return samples[0]


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "humanize": gofmt.humanize, "humanize1024": gofmt.humanize1024,
    "humanizePercentage": gofmt.humanize_percentage, "humanizeDuration": gofmt.humanize_duration,
    "humanizeTimestamp": gofmt.humanize_timestamp,
    "printf": lambda fmt, *args: gofmt.go_sprintf(fmt, *args),
    "print": lambda *args: "".join(gofmt.go_value(a) if isinstance(a, str) else
                                   (" " if i and not isinstance(args[i - 1], str) else "") + gofmt.go_value(a)
                                   for i, a in enumerate(args)),
    "title": gostrings.go_title, "toUpper": gostrings.go_upper, "toLower": gostrings.go_lower,
    "reReplaceAll": lambda pattern, repl, text: _must_compile(pattern).sub(_go_expansion(repl), text),
    "match": lambda pattern, text: _regex(pattern).search(text) is not None,
    "stripPort": _strip_port,
    "len": gostrings.go_len, "index": lambda item, *keys: _index(item, keys),
    "not": lambda value: not _truth(value),
    "and": lambda *args: next((a for a in args if not _truth(a)), args[-1]),
    "or": lambda *args: next((a for a in args if _truth(a)), args[-1]),
    **{name: _compare(name) for name in ("eq", "ne", "lt", "le", "gt", "ge")},
    "query": None,  # bound per rendering to the evaluator's query function
    "first": _first,
    "value": lambda sample: sample["Value"],
    "label": lambda name, sample: sample["Labels"].get(name, ""),
    "sortByLabel": lambda name, samples: sorted(samples, key=lambda sample: sample["Labels"].get(name, "")),
    "strvalue": lambda sample: sample["Labels"].get("__value__", ""),
    "stripDomain": _strip_domain, "toTime": _to_time, "parseDuration": parse_go_duration,
    "safeHtml": lambda text: text,  # its string parameter is held to a string before the call
    "graphLink": _expression_link(0), "tableLink": _expression_link(1),
    "args": lambda *values: {f"arg{i}": value for i, value in enumerate(values)},
    "externalURL": None, "pathPrefix": None,  # bound per rendering, as query is
}


def _index(item: Any, keys: tuple) -> Any:
    for key in keys:
        if isinstance(item, dict) and not isinstance(key, str):  # the maps here are map[string]...
            raise ValueError(f"value has type {gofmt.go_type(key)}; should be string")
        item = item.get(key, "") if isinstance(item, dict) else item[key]
    return item


@dataclass
class _Scope:
    dot: Any
    variables: dict[str, Any]
    query: QueryFunc | None


def _exec(nodes: list, scope: _Scope, out: list[str]) -> None:
    for node in nodes:
        if isinstance(node, _Text):
            out.append(node.text)
        elif isinstance(node, _Range):
            _range(node, scope, out)
        elif isinstance(node, _Action):
            value = _pipeline(node.pipeline, scope)
            if node.pipeline.declare is None:
                out.append(gofmt.go_value(value))
        else:
            value = _pipeline(node.pipeline, scope)
            if _truth(value):
                inner = _Scope(value if node.kind == "with" else scope.dot, scope.variables, scope.query)
                _exec(node.then, inner, out)
            else:
                _exec(node.otherwise, scope, out)


def _range(node: _Range, scope: _Scope, out: list[str]) -> None:
    items = _pipeline(node.pipeline, scope)
    if isinstance(items, dict):
        items = [items[key] for key in sorted(items)]  # Go ranges over a map in key order
    elif items is None:
        items = []
    elif not isinstance(items, (list, tuple)):
        raise TemplateError(f"range can't iterate over {gofmt.go_value(items)}")
    if not items:
        _exec(node.otherwise, scope, out)
        return
    for index, item in enumerate(items):
        variables = dict(scope.variables)
        if node.index_var:
            variables[node.index_var] = index
        if node.element_var:
            variables[node.element_var] = item
        _exec(node.then, _Scope(item, variables, scope.query), out)


def _pipeline(pipeline: _Pipeline, scope: _Scope) -> Any:
    value: Any = _NO_PREVIOUS
    for command in pipeline.commands:
        value = _command(command, scope, value)
    if pipeline.declare:
        scope.variables[pipeline.declare] = value
    return value


_NO_PREVIOUS = object()


def _operand(kind: str, raw: Any, scope: _Scope) -> Any:
    if kind == "literal":
        return raw
    if kind == "pipeline":
        return _pipeline(raw, scope)
    if kind == "variable":
        name, *fields = raw.split(".")
        if name not in scope.variables:
            raise TemplateError(f"undefined variable: {name}")
        value = scope.variables[name]
    elif kind == "field":
        value, fields = scope.dot, [f for f in raw.split(".") if f]
    else:
        return _call(raw, [], scope)
    for name in fields:
        value = _field(value, name)
    return value


def _call(name: str, args: list, scope: _Scope) -> Any:
    if name == "query":
        if scope.query is None:
            raise TemplateError("query is not available in this template")
        return scope.query(*args)
    if name in ("externalURL", "pathPrefix"):
        url = scope.variables["$externalURL"]
        return url if name == "externalURL" else urllib.parse.urlsplit(url).path
    try:
        return FUNCTIONS[name](*args)
    except TemplateError:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever a function hits is this template's error, never the rule's
        raise TemplateError(f"error calling {name}: {exc}") from None


# Go's signatures, which text/template holds calls to before calling: (parameters, variadic)...
_ARITY: dict[str, tuple[int, bool]] = {
    **dict.fromkeys(("humanize", "humanize1024", "humanizePercentage", "humanizeDuration", "humanizeTimestamp",
                     "title", "toUpper", "toLower", "stripPort", "len", "not", "query", "first", "value", "strvalue",
                     "stripDomain", "toTime", "parseDuration", "safeHtml", "graphLink", "tableLink"), (1, False)),
    **dict.fromkeys(("match", "label", "sortByLabel", "ne", "lt", "le", "gt", "ge"), (2, False)),
    "reReplaceAll": (3, False), "externalURL": (0, False), "pathPrefix": (0, False),
    **dict.fromkeys(("printf", "index", "and", "or", "eq"), (1, True)), **dict.fromkeys(("print", "args"), (0, True)),
}
# ...and how many of their first parameters are strings (Go's "expected string" errors).
_STRING_PARAMS = {**dict.fromkeys(("title", "toUpper", "toLower", "stripPort", "stripDomain", "safeHtml", "graphLink",
                                   "tableLink", "parseDuration", "printf", "label", "sortByLabel", "query"), 1),
                  "match": 2, "reReplaceAll": 3}


def _check_arity(name: str, given: int, command: _Command) -> None:
    want, variadic = _ARITY.get(name, (given, False))
    if given < want if variadic else given != want:
        raise _ArgumentError(f"wrong number of args for {name}: want {'at least ' if variadic else ''}{want} got {given}",
                            command.node(0))


def _not_a_string(value: Any, constant: bool, source: str) -> str:
    """text/template's words for a non-string given to a string parameter: a constant in the
    template, or a value (a variable, a field, a pipeline's result)."""
    if constant:
        return "cannot assign nil to string" if value is None else f"expected string; found {source}"
    return f"wrong type for value; expected string; got {gofmt.go_type(value)}"


def _command(command: _Command, scope: _Scope, previous: Any) -> Any:
    try:
        return _run_command(command, scope, previous)
    except TemplateError as exc:
        if exc.at is None:
            exc.at = command
        raise


def _run_command(command: _Command, scope: _Scope, previous: Any) -> Any:
    (kind, raw), rest = command.args[0], command.args[1:]
    if kind == "ident":
        piped = previous is not _NO_PREVIOUS
        _check_arity(raw, len(rest) + piped, command)
        strings = _STRING_PARAMS.get(raw, 0)
        args = []
        for index, (arg_kind, arg_raw) in enumerate(rest):
            args.append(_operand(arg_kind, arg_raw, scope))
            if index < strings and not isinstance(args[-1], str):
                raise _ArgumentError(_not_a_string(args[-1], arg_kind == "literal", command.spans[index + 1][1]),
                                    command.node(index + 1))
        if piped:
            if len(rest) < strings and not isinstance(previous, str):
                raise _ArgumentError(_not_a_string(previous, False, ""), command.node(0))
            args.append(previous)
        return _call(raw, args, scope)
    if rest or previous is not _NO_PREVIOUS:
        raise _ArgumentError(f"can't give argument to non-function {raw}")
    return _operand(kind, raw, scope)


class Template:
    """A parsed template; ``render`` runs it with Prometheus's alert-template data. With ``name``
    (``alert_template_name``), a failure while rendering is worded as Prometheus words it: the
    template's name, the line and column of the failing command, and the command."""

    def __init__(self, text: str, where: str = "template", name: str | None = None) -> None:
        self.text = text
        self.where = where
        self.name = name
        self.nodes = _Parser(text, where).parse() if "{{" in text else [_Text(text)]

    def render(self, labels: dict[str, str], value: float, external_labels: dict[str, str] | None = None,
               external_url: str = "", query: QueryFunc | None = None) -> str:
        data = {"Labels": dict(labels), "Value": value, "ExternalLabels": dict(external_labels or {}),
                "ExternalURL": external_url}
        variables = {"$": data, "$labels": data["Labels"], "$value": value,
                     "$externalLabels": data["ExternalLabels"], "$externalURL": external_url}
        out: list[str] = []
        try:
            _exec(self.nodes, _Scope(data, variables, query), out)
        except TemplateError as exc:
            if self.name is None or exc.at is None:
                raise
            raise TemplateError(self._go_error(exc.at, str(exc))) from None
        return "".join(out)

    def _go_error(self, command: _Command, message: str) -> str:
        """text/template's ``ExecError`` as Prometheus's expander reports it: line and column
        (in bytes, from the line's start) of the command in the definitions and the template."""
        before = ALERT_DEFINITIONS + self.text[:command.pos]
        line = before.count("\n") + 1
        column = len(before[before.rfind("\n") + 1:].encode())
        name = self.name
        return (f"error executing template {name}: template: {name}:{line}:{column}: "
                f'executing "{name}" at <{command.source}>: {message}')


def template_problems(text: str, where: str = "template") -> list[str]:
    """What fails in ``text`` whatever the alert it renders for: it is rendered for a sample alert
    (an ``instance`` label, a value of 1) and a failure of that kind is reported. Prometheus finds
    these only when the alert fires, and then writes the error into the annotation."""
    try:
        Template(text, where).render({"instance": "node-1:9400", "alertname": "Check"}, 1.0)
    except _ArgumentError as exc:
        return [f"{where}: {exc}"]
    except TemplateError:
        pass  # this sample alert's data: another alert's may render
    return []


def render(text: str, labels: dict[str, str], value: float, name: str | None = None, **kwargs: Any) -> str:
    """Render ``text``; a failure renders as Prometheus does: ``<error expanding template: ...>``."""
    try:
        return Template(text, name=name).render(labels, value, **kwargs)
    except (TemplateError, gofmt.TemplateFuncError) as exc:
        return f"<error expanding template: {exc}>"
