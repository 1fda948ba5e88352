"""``alerting.yml``: Alertmanager's configuration shape (global, route, receivers, inhibit_rules).

Loading is strict like Alertmanager's: unknown keys, missing receivers and bad durations are
errors, each a ``ConfigError`` naming the field path (``route.routes[1].group_wait``) and the file,
so an admin fixes the right line. Extensions beyond Alertmanager (webhook ``headers``,
``hmac_secret``, ``timeout``; ``log_configs``; ``hook_configs``) are marked as such in
docs/alerting-config.md.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any


from cwkernel.durations import parse_duration
from cwkernel import configfile
from cwkernel.errors import ConfigError
from alerts.notify import matchers as matcher_config
from alerts.notify.matchers import AlertMatcher
from alerts.notify.route import ALL_LABELS, Route, RouteOpts

DEFAULT_CONFIG = "default.yml"


@dataclass(frozen=True)
class IntegrationConfig:
    """One entry of a receiver's ``*_configs`` list; ``kind`` is webhook, slack, log or hook."""

    kind: str
    index: int
    send_resolved: bool
    options: dict[str, Any]

    @property
    def name(self) -> str:
        return f"{self.kind}/{self.index}"


@dataclass(frozen=True)
class ReceiverConfig:
    name: str
    integrations: tuple[IntegrationConfig, ...]


@dataclass(frozen=True)
class InhibitRule:
    source: list[AlertMatcher]
    target: list[AlertMatcher]
    equal: tuple[str, ...]


@dataclass
class AlertingConfig:
    route: Route
    receivers: dict[str, ReceiverConfig]
    inhibit_rules: list[InhibitRule] = field(default_factory=list)
    resolve_timeout: float = 300.0
    external_url: str = ""
    source: str = ""


# Per kind: allowed keys and the send_resolved default Alertmanager uses for that kind.
_INTEGRATIONS = {
    "webhook_configs": ("webhook", True, {"url", "send_resolved", "max_alerts", "http_config", "headers",
                                          "hmac_secret", "hmac_secret_file", "timeout"}),
    "slack_configs": ("slack", False, {"api_url", "send_resolved", "channel", "username", "title", "text",
                                       "http_config", "timeout", "icon_emoji"}),
    "log_configs": ("log", True, {"send_resolved", "level"}),
    "hook_configs": ("hook", True, {"send_resolved", "name"}),
}
_ROUTE_KEYS = {"receiver", "group_by", "continue", "matchers", "match", "match_re", "group_wait",
               "group_interval", "repeat_interval", "routes"}


def load(path: str | Path | None = None) -> AlertingConfig:
    """The file at ``path``, or the shipped default (everything to a log-only receiver)."""
    if path is None:
        text, source = resources.files("alerts.notify").joinpath(DEFAULT_CONFIG).read_text(), "default.yml"
    else:
        source = str(path)
        try:
            text = configfile.read_text(path)
        except configfile.UnreadableConfig as exc:
            raise ConfigError("alerting_config", str(exc), source) from None
    return parse(text, source)


def parse(text: str, source: str = "alerting.yml") -> AlertingConfig:
    try:
        data = configfile.parse_yaml(text)
    except configfile.UnreadableConfig as exc:
        raise ConfigError("alerting_config", str(exc), source) from None
    data = _mapping(data or {}, "(top level)", {"global", "route", "receivers", "inhibit_rules", "templates"},
                    source)
    glob = _mapping(data.get("global") or {}, "global", {"resolve_timeout", "external_url"}, source)
    receivers = _receivers(data.get("receivers"), source)
    if "route" not in data:
        raise ConfigError("route", "missing: the root route is required", source)
    route = _route(data["route"], "route", None, source)
    if route.matchers:
        raise ConfigError("route.matchers", "the root route must not have matchers", source)
    for node in route.walk():
        if node.opts.receiver not in receivers:
            raise ConfigError("route", f"receiver {node.opts.receiver!r} is not defined in receivers", source)
    rules = [_inhibit_rule(raw, f"inhibit_rules[{i}]", source) for i, raw in enumerate(data.get("inhibit_rules") or [])]
    return AlertingConfig(
        route=route, receivers=receivers, inhibit_rules=rules,
        resolve_timeout=_duration(glob.get("resolve_timeout", "5m"), "global.resolve_timeout", source),
        external_url=str(glob.get("external_url", "")), source=source,
    )


def _route(raw: Any, where: str, parent: Route | None, source: str) -> Route:
    raw = _mapping(raw, where, _ROUTE_KEYS, source)
    inherited = parent.opts if parent else RouteOpts(receiver="")
    receiver = raw.get("receiver", inherited.receiver)
    if not receiver:
        raise ConfigError(f"{where}.receiver", "missing: the root route needs a receiver", source)
    group_by = inherited.group_by
    if "group_by" in raw:
        labels = raw["group_by"] or []
        if not isinstance(labels, list) or not all(isinstance(v, str) for v in labels):
            raise ConfigError(f"{where}.group_by", "must be a list of label names", source)
        if "..." in labels and len(labels) > 1:
            raise ConfigError(f"{where}.group_by", "'...' must be the only entry when used", source)
        if labels:  # an empty list inherits, as in Alertmanager (its parsed GroupBy stays nil)
            group_by = ALL_LABELS if labels == ["..."] else frozenset(labels)
    opts = RouteOpts(
        receiver=str(receiver), group_by=group_by,
        **{name: _duration(raw[name], f"{where}.{name}", source) if name in raw else getattr(inherited, name)
           for name in ("group_wait", "group_interval", "repeat_interval")},
    )
    try:
        found = matcher_config.from_config(raw.get("matchers"), raw.get("match"), raw.get("match_re"))
    except ValueError as exc:
        raise ConfigError(f"{where}.matchers", str(exc), source) from None
    route = Route(opts=opts, matchers=found, continue_=bool(raw.get("continue", False)), parent=parent)
    children = raw.get("routes") or []
    if not isinstance(children, list):
        raise ConfigError(f"{where}.routes", "must be a list of routes", source)
    route.routes = [_route(child, f"{where}.routes[{i}]", route, source) for i, child in enumerate(children)]
    return route


def _receivers(raw: Any, source: str) -> dict[str, ReceiverConfig]:
    if not isinstance(raw, list) or not raw:
        raise ConfigError("receivers", "must be a non-empty list", source)
    receivers: dict[str, ReceiverConfig] = {}
    for i, item in enumerate(raw):
        where = f"receivers[{i}]"
        item = _mapping(item, where, {"name", *_INTEGRATIONS}, source)
        name = item.get("name")
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{where}.name", "missing: every receiver needs a name", source)
        if name in receivers:
            raise ConfigError(f"{where}.name", f"duplicate receiver {name!r}", source)
        integrations = []
        for key, (kind, resolved_default, allowed) in _INTEGRATIONS.items():
            for j, options in enumerate(item.get(key) or []):
                at = f"{where}.{key}[{j}]"
                options = dict(_mapping(options, at, allowed, source))
                _check_integration(kind, options, at, source)
                integrations.append(IntegrationConfig(kind, len(integrations), bool(options.pop("send_resolved", resolved_default)), options))
        receivers[name] = ReceiverConfig(name, tuple(integrations))
    return receivers


def _check_integration(kind: str, options: dict, where: str, source: str) -> None:
    required = {"webhook": "url", "slack": "api_url", "hook": "name"}.get(kind)
    if required and not isinstance(options.get(required), str):
        raise ConfigError(f"{where}.{required}", "missing (a string is required)", source)
    if kind in ("webhook", "slack") and not options[required].startswith(("http://", "https://")):
        raise ConfigError(f"{where}.{required}", "must be an http:// or https:// URL", source)
    if "timeout" in options:
        options["timeout"] = _duration(options["timeout"], f"{where}.timeout", source)
    if "max_alerts" in options and (not isinstance(options["max_alerts"], int) or options["max_alerts"] < 0):
        raise ConfigError(f"{where}.max_alerts", "must be a non-negative integer (0 = no limit)", source)
    if "headers" in options and not (isinstance(options["headers"], dict)
                                     and all(isinstance(v, str) for v in options["headers"].values())):
        raise ConfigError(f"{where}.headers", "must be a mapping of header names to strings", source)
    if "hmac_secret_file" in options:
        try:
            options["hmac_secret"] = Path(options.pop("hmac_secret_file")).read_text().strip()
        except OSError as exc:
            raise ConfigError(f"{where}.hmac_secret_file", f"cannot read: {exc.strerror}", source) from None
    if "http_config" in options:
        _mapping(options["http_config"], f"{where}.http_config", {"authorization", "bearer_token"}, source)


def _inhibit_rule(raw: Any, where: str, source: str) -> InhibitRule:
    raw = _mapping(raw, where, {"source_matchers", "target_matchers", "source_match", "source_match_re",
                                "target_match", "target_match_re", "equal"}, source)
    try:
        found = {side: matcher_config.from_config(raw.get(f"{side}_matchers"), raw.get(f"{side}_match"),
                                                  raw.get(f"{side}_match_re")) for side in ("source", "target")}
    except ValueError as exc:
        raise ConfigError(where, str(exc), source) from None
    equal = raw.get("equal") or []
    if not isinstance(equal, list) or not all(isinstance(v, str) for v in equal):
        raise ConfigError(f"{where}.equal", "must be a list of label names", source)
    return InhibitRule(found["source"], found["target"], tuple(equal))


def _mapping(raw: Any, where: str, allowed: set[str], source: str) -> dict:
    if not isinstance(raw, dict):
        raise ConfigError(where, "must be a mapping", source)
    unknown = sorted(set(map(str, raw)) - allowed)
    if unknown:
        raise ConfigError(f"{where}.{unknown[0]}" if where != "(top level)" else unknown[0],
                          f"unknown field (known: {', '.join(sorted(allowed))})", source)
    return raw


def _duration(raw: Any, where: str, source: str) -> float:
    try:
        return parse_duration(raw)
    except ValueError as exc:
        raise ConfigError(where, str(exc), source) from None
