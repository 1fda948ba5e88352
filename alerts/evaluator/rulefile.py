"""Prometheus rule files: loading and validation with errors that name file, group and rule.

The checks are those of Prometheus's rulefmt (unknown fields refused, one of record/alert, valid
names, ``for``/``keep_firing_for``/annotations only on alerts, unique group names per file),
plus parsing every expression with promql-parser and every template with our template parser,
so that a pack that passes ``clusterwatch rules check`` also loads in Prometheus and vmalert.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import promql_parser

from alerts.evaluator.templates import Template, TemplateError
from cwkernel import configfile

__all__ = ["Rule", "Group", "RuleFileError", "load_rule_files", "expand_paths", "parse_duration"]

_METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_DURATION = re.compile(r"^(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?$")
_UNIT_SECONDS = (31536000, 604800, 86400, 3600, 60, 1, 0.001)
_GROUP_KEYS = {"name", "interval", "limit", "rules"}
_RULE_KEYS = {"record", "alert", "expr", "for", "keep_firing_for", "labels", "annotations"}


class RuleFileError(ValueError):
    def __init__(self, file: str, message: str, group: str | None = None, rule: str | None = None,
                 index: int | None = None) -> None:
        where = file
        if group is not None:
            where += f': group "{group}"'
        if rule is not None or index is not None:
            where += f': rule {index + 1 if index is not None else "?"} "{rule or ""}"'
        super().__init__(f"{where}: {message}")
        self.file, self.group, self.rule = file, group, rule


@dataclass
class Rule:
    kind: str  # "alert" or "record"
    name: str
    expr: str
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    for_s: float = 0.0
    keep_firing_for_s: float = 0.0
    file: str = ""
    group: str = ""
    index: int = 0

    @property
    def key(self) -> str:
        """Stable identity of the rule across restarts (state is persisted under it)."""
        return f"{self.file}|{self.group}|{self.index}|{self.name}"


@dataclass
class Group:
    name: str
    file: str
    rules: list[Rule]
    interval_s: float | None = None  # None: the evaluator's default
    limit: int = 0

    @property
    def key(self) -> str:
        return f"{self.file}|{self.name}"


def parse_duration(text: Any) -> float:
    """Prometheus's model.ParseDuration: units y w d h m s ms in that order, integers only."""
    if not isinstance(text, str) or not text:
        raise ValueError(f"not a valid duration string: {text!r}")
    if text == "0":
        return 0.0
    match = _DURATION.fullmatch(text)
    if not match or not any(match.groups()):
        raise ValueError(f'not a valid duration string: "{text}"')
    return sum(int(part) * unit for part, unit in zip(match.groups(), _UNIT_SECONDS) if part)


def expand_paths(paths: Iterable[str | Path]) -> list[Path]:
    """Files as given, directories as their *.yml/*.yaml files in name order."""
    out: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            out.extend(sorted(p for p in path.iterdir() if p.suffix in (".yml", ".yaml") and p.is_file()))
        else:
            out.append(path)
    return out


def load_rule_files(paths: Iterable[str | Path]) -> list[Group]:
    """Every group of every file, validated; the first problem raises RuleFileError."""
    groups: list[Group] = []
    for path in expand_paths(paths):
        groups.extend(load_rule_file(path))
    return groups


def load_rule_file(path: str | Path) -> list[Group]:
    name = str(path)
    try:
        document = configfile.load_yaml(path)
    except configfile.UnreadableConfig as exc:
        raise RuleFileError(name, str(exc)) from None
    if document is None:
        return []
    if not isinstance(document, dict) or set(document) - {"groups"}:
        extra = sorted(set(document) - {"groups"}) if isinstance(document, dict) else []
        raise RuleFileError(name, f"field {extra[0]} not found in rule file" if extra
                            else "a rule file is a mapping with a 'groups' list")
    groups: list[Group] = []
    seen: set[str] = set()
    for raw in document.get("groups") or []:
        group = _group(name, raw)
        if group.name in seen:
            raise RuleFileError(name, f'groupname: "{group.name}" is repeated in the same file')
        seen.add(group.name)
        groups.append(group)
    return groups


def _group(file: str, raw: Any) -> Group:
    if not isinstance(raw, dict):
        raise RuleFileError(file, "a group must be a mapping")
    gname = raw.get("name")
    if not isinstance(gname, str) or not gname:
        raise RuleFileError(file, "groupname must not be empty")
    unknown = set(raw) - _GROUP_KEYS
    if unknown:
        raise RuleFileError(file, f"field {sorted(unknown)[0]} not found in type rulefmt.RuleGroup", gname)
    interval = None
    if raw.get("interval") is not None:
        try:
            interval = parse_duration(raw["interval"])
        except ValueError as exc:
            raise RuleFileError(file, f"interval: {exc}", gname) from None
    limit = raw.get("limit", 0) or 0
    if not isinstance(limit, int) or limit < 0:
        raise RuleFileError(file, "limit must be a non-negative integer", gname)
    rules = [_rule(file, gname, index, r) for index, r in enumerate(raw.get("rules") or [])]
    return Group(gname, file, rules, interval, limit)


def _rule(file: str, group: str, index: int, raw: Any) -> Rule:
    def fail(message: str, name: str | None = None) -> RuleFileError:
        return RuleFileError(file, message, group, name, index)

    if not isinstance(raw, dict):
        raise fail("a rule must be a mapping")
    name = raw.get("alert") or raw.get("record")
    unknown = set(raw) - _RULE_KEYS
    if unknown:
        raise fail(f"field {sorted(unknown)[0]} not found in type rulefmt.Rule", name)
    if "alert" in raw and "record" in raw:
        raise fail("only one of 'record' and 'alert' must be set", name)
    if not raw.get("alert") and not raw.get("record"):
        raise fail("one of 'record' or 'alert' must be set")
    kind = "alert" if "alert" in raw else "record"
    if not isinstance(name, str):
        raise fail(f"{kind} name must be a string")
    expr = raw.get("expr")
    if not isinstance(expr, str) or not expr.strip():
        raise fail("field 'expr' must be set in rule", name)
    try:
        promql_parser.parse(expr)
    except ValueError as exc:
        raise fail(f"could not parse expression: {exc}", name) from None
    labels = _string_map(raw.get("labels"), "labels", fail, name)
    annotations = _string_map(raw.get("annotations"), "annotations", fail, name)
    for label in labels:
        if not _LABEL_NAME.match(label) or label == "__name__":
            raise fail(f"invalid label name: {label}", name)
    durations = {}
    for key in ("for", "keep_firing_for"):
        if raw.get(key) is not None:
            if kind == "record":
                raise fail(f"invalid field '{key}' in recording rule", name)
            try:
                durations[key] = parse_duration(raw[key])
            except ValueError as exc:
                raise fail(f"{key}: {exc}", name) from None
    if kind == "record":
        if annotations:
            raise fail("invalid field 'annotations' in recording rule", name)
        if not _METRIC_NAME.match(name):
            raise fail(f"invalid recording rule name: {name}", name)
    for key, text in [*labels.items(), *annotations.items()]:
        try:
            Template(text, f"{key}")
        except TemplateError as exc:
            raise fail(f"template: {exc}", name) from None
    return Rule(kind, name, expr, labels, annotations, durations.get("for", 0.0),
                durations.get("keep_firing_for", 0.0), file, group, index)


def _string_map(raw: Any, what: str, fail: Any, name: str) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise fail(f"{what} must be a mapping", name)
    out = {}
    for key, value in raw.items():
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise fail(f"{what}.{key} must be a string", name)
        out[str(key)] = value if isinstance(value, str) else str(value)
    return out
