"""The rule evaluator's state in Prometheus's HTTP API: ``/api/v1/rules`` and ``/api/v1/alerts``.

Grafana's alert list and data-source-managed rules, promtool-era scripts and dashboards built for
Prometheus read these two to see which rules exist, whether they evaluate, and which alerts are
pending or firing. The shapes are Prometheus 2.42's (web/api/v1/api.go): a rule's ``query`` is
its expression printed as Prometheus prints it (tsdb/promql/printer.py), an alert's ``value`` is
Go's ``%e`` form, times are RFC 3339 in UTC, a rule not yet evaluated has health ``unknown`` and
the zero time. ``type=alert|record`` filters as there; ``rule_name[]``, ``rule_group[]``,
``file[]`` and ``exclude_alerts`` as in later Prometheus releases, where a group left without
rules by a name, group or file filter is left out. An answer is built once per evaluation and
given again until the next (``Answers``).

Both answer from what each group's last evaluation published (``AlertingRule.active`` is replaced,
never changed), so a group in the middle of a slow query never holds them up.
"""
from __future__ import annotations

import functools
import threading
from datetime import datetime, timezone
from typing import Any, Callable

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.datastructures import QueryParams

from alerts.evaluator.alerting import INACTIVE, AlertingRule, ActiveAlert
from alerts.evaluator.manager import GroupRuntime, RuleEvaluator, RuleHealth
from alerts.evaluator.recording import RecordingRule
from cwkernel.compress import MIN_SIZE, accepts_gzip, gzip_body, mark_gzipped
from cwkernel.gotext import go_exponent
from cwkernel.promapi import failure, success
from tsdb.client import printed_query

# Go's zero time.Time, which Prometheus writes for a rule or group not evaluated yet.
ZERO_TIME = "0001-01-01T00:00:00Z"
_STATE_ORDER = {"inactive": 0, "pending": 1, "firing": 2}
_TRUE, _FALSE = {"1", "t", "true"}, {"0", "f", "false"}  # strconv.ParseBool, lower-cased


def rfc3339(ts: float | None) -> str:
    """Go's RFC3339Nano in UTC: the fraction without trailing zeros, none when whole."""
    if ts is None:
        return ZERO_TIME
    when = datetime.fromtimestamp(ts, timezone.utc)
    fraction = f"{when.microsecond:06d}".rstrip("0")
    return when.strftime("%Y-%m-%dT%H:%M:%S") + (f".{fraction}" if fraction else "") + "Z"


def go_number(seconds: float) -> float | int:
    """A whole number of seconds as an integer, as Go's JSON writes a float64 (``300``, not ``300.0``)."""
    return int(seconds) if float(seconds).is_integer() else seconds


class BadParameter(ValueError):
    """A parameter Prometheus would refuse: a 400 ``bad_data`` in its words."""


@functools.lru_cache(maxsize=4096)
def rule_query(expr: str) -> str:
    """The rule's expression as Prometheus prints it (rules were parsed when loaded)."""
    try:
        return printed_query(expr)
    except Exception:  # noqa: BLE001 - a rule file loaded by an older parser: show its text
        return expr


def api_alert(alert: ActiveAlert) -> dict[str, Any]:
    out = {"labels": dict(sorted(alert.labels.items())), "annotations": dict(sorted(alert.annotations.items())),
           "state": alert.state, "activeAt": rfc3339(alert.active_at)}
    if alert.keep_firing_since is not None:
        out["keepFiringSince"] = rfc3339(alert.keep_firing_since)
    out["value"] = go_exponent(alert.value)
    return out


def active_alerts(rule: AlertingRule) -> list[ActiveAlert]:
    """Prometheus's ActiveAlerts: pending and firing, not those resolved and kept to be sent."""
    return [alert for alert in list(rule.active.values()) if alert.state != INACTIVE]


def _health(health: RuleHealth | None) -> dict[str, Any]:
    if health is None or not health.evaluations:
        return {"health": "unknown"}
    out: dict[str, Any] = {"health": "err" if health.last_error else "ok"}
    if health.last_error:
        out["lastError"] = health.last_error
    return out


def _timing(health: RuleHealth | None) -> dict[str, Any]:
    return {"evaluationTime": health.last_duration_s if health else 0.0,
            "lastEvaluation": rfc3339(health.last_evaluation if health else None)}


def api_rule(rule: Any, health: RuleHealth | None, with_alerts: bool) -> dict[str, Any]:
    spec = rule.rule
    if isinstance(rule, RecordingRule):
        labels = {"labels": dict(sorted(spec.labels.items()))} if spec.labels else {}  # omitempty there
        return {"name": spec.name, "query": rule_query(spec.expr), **labels, **_health(health), **_timing(health),
                "type": "recording"}
    states = [alert.state for alert in list(rule.active.values())]
    state = max(states, key=_STATE_ORDER.__getitem__, default=INACTIVE)
    return {"state": state, "name": spec.name, "query": rule_query(spec.expr), "duration": go_number(spec.for_s),
            "keepFiringFor": go_number(spec.keep_firing_for_s), "labels": dict(sorted(spec.labels.items())),
            "annotations": dict(sorted(spec.annotations.items())),
            "alerts": [api_alert(a) for a in active_alerts(rule)] if with_alerts else None,
            **_health(health), **_timing(health), "type": "alerting"}


def api_group(runtime: GroupRuntime, kinds: set[type], names: set[str], with_alerts: bool) -> dict[str, Any]:
    rules = [api_rule(rule, runtime.health.get(rule.rule.key), with_alerts) for rule in runtime.rules
             if isinstance(rule, tuple(kinds)) and (not names or rule.rule.name in names)]
    return {"name": runtime.group.name, "file": runtime.group.file, "rules": rules, "interval": go_number(runtime.interval_s),
            "limit": runtime.group.limit, "evaluationTime": runtime.last_duration_s,
            "lastEvaluation": rfc3339(runtime.last_eval)}


def _kinds(params: QueryParams) -> set[type]:
    kind = (params.get("type") or "").lower()
    if kind not in ("", "alert", "record"):
        raise BadParameter(f'invalid parameter "type": not supported value "{kind}"')
    return {k for k, wanted in ((AlertingRule, kind != "record"), (RecordingRule, kind != "alert")) if wanted}


def _exclude_alerts(params: QueryParams) -> bool:
    text = (params.get("exclude_alerts") or "").lower()
    if text in ("", *_FALSE):
        return False
    if text in _TRUE:
        return True
    raise BadParameter(f'invalid parameter "exclude_alerts": error converting exclude_alerts: '
                   f'strconv.ParseBool: parsing "{text}": invalid syntax')


def rules_data(evaluator: RuleEvaluator, params: QueryParams) -> dict[str, Any]:
    kinds, with_alerts = _kinds(params), not _exclude_alerts(params)
    names, groups = set(params.getlist("rule_name[]")), set(params.getlist("rule_group[]"))
    files = set(params.getlist("file[]"))
    out = []
    for runtime in evaluator.groups:
        if (groups and runtime.group.name not in groups) or (files and runtime.group.file not in files):
            continue
        group = api_group(runtime, kinds, names, with_alerts)
        if group["rules"] or not (names or groups or files):
            out.append(group)
    return {"groups": out}


def alerts_data(evaluator: RuleEvaluator) -> dict[str, Any]:
    return {"alerts": [api_alert(alert) for rule in evaluator.alerting_rules() for alert in active_alerts(rule)]}


class Answers:
    """The answers given since the rules last changed (``RuleEvaluator.generation``), by query.

    In a storm, 50,000 active alerts take about a second to list; dashboards and Grafana asking
    every few seconds would spend a core on the same answer. Nothing in an answer depends on the
    time it is asked, only on the evaluations before it, so one built after the last evaluation is
    given again until the next. The generation is read before building: an answer built while a
    group evaluates is kept under the generation it started from, which that evaluation ends."""

    # Kept per generation: this many distinct queries (filters), this many bytes in all (a storm's
    # full lists of rules and of alerts are about 22 MB each).
    MAX_KEPT = 16
    MAX_KEPT_BYTES = 64 << 20

    def __init__(self, evaluator: RuleEvaluator) -> None:
        self.evaluator = evaluator
        self._lock = threading.Lock()
        self._generation = -1
        self._kept: dict[tuple, tuple[int, bytes, bool]] = {}  # key -> (status, body, gzipped)

    def get(self, key: tuple, build: Callable[[], JSONResponse], gzip: bool) -> Response:
        """The answer for ``key`` (gzipped when ``gzip``), built by ``build`` if not kept. Called on
        a worker thread: the building and the compressing happen there."""
        key = (*key, gzip)
        generation = self.evaluator.generation
        with self._lock:
            kept = self._kept.get(key) if generation == self._generation else None
        if kept is None:
            answer = build()
            body = gzip_body(answer.body) if gzip and len(answer.body) >= MIN_SIZE else answer.body
            kept = (answer.status_code, body, body is not answer.body)
            with self._lock:
                if generation != self._generation:
                    self._generation, self._kept = generation, {}
                kept_bytes = sum(len(other[1]) for other in self._kept.values())
                if len(self._kept) < self.MAX_KEPT and kept_bytes + len(body) <= self.MAX_KEPT_BYTES:
                    self._kept[key] = kept
        status, body, packed = kept
        # A response object is sent once: each request gets its own around the kept bytes.
        response = Response(body, status_code=status, media_type="application/json")
        if packed:
            mark_gzipped(response, len(body))
        return response


def build_router(evaluator: RuleEvaluator) -> APIRouter:
    router = APIRouter(prefix="/api/v1", tags=["prometheus-api"])
    answers = Answers(evaluator)

    # Plain (not async) handlers: FastAPI runs them in its threads, so an answer listing a storm's
    # 50,000 alerts is built off the event loop.
    @router.get("/rules", operation_id="prometheus_rules_get")
    def rules(request: Request) -> Response:
        params = request.query_params

        def build() -> JSONResponse:
            try:
                return success(rules_data(evaluator, params))
            except BadParameter as exc:
                return failure("bad_data", str(exc))
        return answers.get(("rules", tuple(sorted(params.multi_items()))), build, accepts_gzip(request))

    @router.get("/alerts", operation_id="prometheus_alerts_get")
    def alerts(request: Request) -> Response:
        return answers.get(("alerts",), lambda: success(alerts_data(evaluator)), accepts_gzip(request))

    return router
