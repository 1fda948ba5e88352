"""The rule evaluator: rule groups evaluated through a QueryClient at explicit times.

``RuleEvaluator.evaluate(ts)`` runs every group once at ``ts`` (tests, the promtool-compatible
runner, the benchmark); ``start()`` runs a thread per group that evaluates it on its own
interval at wall-clock times aligned to that interval. Rule outputs (recording rules' series, ALERTS and
ALERTS_FOR_STATE) go to ``writer(target, timestamp_ms, samples)``, one target per rule, which is
``Store.append_rule_output`` for the embedded store (scrape limits do not apply; a group's
``limit`` does): a series a rule stops returning gets a stale
marker at once, as in Prometheus. Without a writer (a remote Prometheus holds the data) nothing
is written back. Alerts due to be sent go to ``notify(alerts)`` after each group evaluation.
"""
from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from alerts.evaluator.alerting import AlertingRule
from alerts.evaluator.recording import RecordingRule
from alerts.evaluator.rulefile import Group, Rule
from alerts.evaluator.state import AlertStateStore
from alerts.evaluator.vector import RuleEvalError, query_vector
from alerts.model import Alert
from cwkernel.loopwatch import LoopWatch
from cwkernel.series import Labels
from tsdb.client import QueryClient

log = logging.getLogger(__name__)

Writer = Callable[[str, int, Sequence[tuple[Labels, float]]], Any]
Notify = Callable[[list[Alert]], Any]


@dataclass
class RuleHealth:
    last_error: str = ""
    last_duration_s: float = 0.0
    last_evaluation: float | None = None  # the time of its last evaluation
    evaluations: int = 0
    failures: int = 0


@dataclass
class GroupRuntime:
    group: Group
    interval_s: float
    rules: list[Any]  # AlertingRule | RecordingRule, in file order
    health: dict[str, RuleHealth] = field(default_factory=dict)
    last_eval: float | None = None
    last_duration_s: float = 0.0
    evaluations: int = 0
    failures: int = 0
    missed: int = 0
    next_due: float = 0.0
    # Held while the group evaluates. Readers do not take it: each rule's ``active`` dict is
    # replaced, never changed, by an evaluation (AlertingRule.eval), so they never wait for a
    # group whose query is slow.
    lock: threading.Lock = field(default_factory=threading.Lock)


def rule_target(rule: Rule) -> str:
    """The store target a rule's output is written as (one per rule: staleness per rule)."""
    return f"rules:{rule.group}/{rule.index}/{rule.name}"


class RuleEvaluator:
    def __init__(self, groups: Sequence[Group], client: QueryClient, writer: Writer | None = None,
                 notify: Notify | None = None, state: AlertStateStore | None = None,
                 default_interval_s: float = 60.0, resend_delay_s: float = 60.0,
                 external_labels: dict[str, str] | None = None, external_url: str = "",
                 clock: Callable[[], float] = time.time) -> None:
        self.client = client
        self.writer = writer
        self.notify = notify  # the notification pipeline sets this hook
        self.state = state
        self.resend_delay_s = resend_delay_s
        self.clock = clock
        self.groups = [GroupRuntime(g, g.interval_s or default_interval_s,
                                    [self._build(r, external_labels, external_url) for r in g.rules])
                       for g in groups]
        self.notify_errors = 0
        self.alerts_sent = 0
        self._counts_lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.loops = LoopWatch()
        if state is not None:
            self._restore(clock())

    @staticmethod
    def _build(rule: Rule, external_labels: dict[str, str] | None, external_url: str) -> Any:
        return AlertingRule(rule, external_labels, external_url) if rule.kind == "alert" else RecordingRule(rule)

    def _restore(self, now: float) -> None:
        for runtime in self.groups:
            for rule in runtime.rules:
                if isinstance(rule, AlertingRule):
                    rule.active = self.state.load(rule.rule.key, now)

    # ---- evaluation -------------------------------------------------------------------------

    def evaluate(self, ts: float) -> None:
        """Evaluate every group at ``ts`` (seconds), in order."""
        for runtime in self.groups:
            self.evaluate_group(runtime, ts)

    def evaluate_group(self, runtime: GroupRuntime, ts: float) -> None:
        started = time.perf_counter()
        to_send: list[Alert] = []
        failed = False
        with runtime.lock:
            for rule in runtime.rules:
                health = runtime.health.setdefault(rule.rule.key, RuleHealth())
                rule_started = time.perf_counter()
                try:
                    samples = self._eval_rule(rule, runtime, ts)
                    health.last_error = ""
                except RuleEvalError as exc:
                    failed = True
                    health.failures += 1
                    health.last_error = str(exc)
                    log.warning("rule %s: %s", rule.rule.key, exc)
                    samples = None
                health.evaluations += 1
                health.last_evaluation = ts
                health.last_duration_s = time.perf_counter() - rule_started
                if samples is not None and self.writer is not None:
                    try:
                        self.writer(rule_target(rule.rule), int(round(ts * 1000)), samples)
                    except Exception as exc:  # noqa: BLE001 - a store refusal must not stop the group
                        failed = True
                        health.last_error = f"writing results: {exc}"
                        log.warning("rule %s: writing results failed: %s", rule.rule.key, exc)
                if isinstance(rule, AlertingRule):
                    to_send.extend(rule.to_send(ts, self.resend_delay_s, runtime.interval_s))
            if self.state is not None:
                self.state.save({r.rule.key: r.active for r in runtime.rules if isinstance(r, AlertingRule)}, ts)
        runtime.last_eval = ts
        runtime.evaluations += 1
        runtime.failures += failed
        runtime.last_duration_s = time.perf_counter() - started
        if to_send and self.notify is not None:
            try:
                self.notify(to_send)
                with self._counts_lock:  # groups send from threads of their own
                    self.alerts_sent += len(to_send)
            except Exception:  # noqa: BLE001 - the pipeline's failure is counted, evaluation goes on
                with self._counts_lock:
                    self.notify_errors += 1
                log.exception("notify failed for %d alerts", len(to_send))

    def _eval_rule(self, rule: Any, runtime: GroupRuntime, ts: float) -> list[tuple[Labels, float]]:
        vector = query_vector(self.client, rule.rule.expr, ts)
        if isinstance(rule, RecordingRule):
            return rule.eval(vector, runtime.group.limit)
        return rule.eval(ts, vector, self._template_query(ts), runtime.group.limit)

    def _template_query(self, ts: float) -> Callable[[str], list[dict[str, Any]]]:
        def query(expr: str) -> list[dict[str, Any]]:
            return [{"Labels": labels, "Value": value} for labels, value in query_vector(self.client, expr, ts)]
        return query

    # ---- reading ------------------------------------------------------------------------------

    def alerting_rules(self) -> list[AlertingRule]:
        return [r for g in self.groups for r in g.rules if isinstance(r, AlertingRule)]

    def active_alerts(self) -> list[tuple[AlertingRule, Any]]:
        """As of each group's last evaluation, without waiting for one under way."""
        return [(rule, alert) for rule in self.alerting_rules() for alert in list(rule.active.values())]

    # ---- the loop -----------------------------------------------------------------------------

    def run_due(self, now: float) -> float:
        """Evaluate the groups that are due at ``now``, in order; returns when the next one is due
        (tests and the benchmarks drive simulated time with it)."""
        for runtime in self.groups:
            self._run_if_due(runtime, now)
        return min((g.next_due for g in self.groups), default=now + 60.0)

    def _run_if_due(self, runtime: GroupRuntime, now: float) -> None:
        if runtime.next_due > now + runtime.interval_s:
            # Set by a clock that has since stepped back: waiting for it would stop the group
            # (an hour's step, an hour without alerts).
            runtime.next_due = now
        if now >= runtime.next_due:
            ts = math.floor(now / runtime.interval_s) * runtime.interval_s
            if runtime.last_eval is not None and ts - runtime.last_eval > runtime.interval_s:
                runtime.missed += int((ts - runtime.last_eval) / runtime.interval_s) - 1
            self.evaluate_group(runtime, ts)
            runtime.next_due = ts + runtime.interval_s

    def start(self) -> None:
        """A thread per group, as Prometheus runs a goroutine per group: a group whose query takes
        its whole timeout misses its own intervals (counted), never the other groups'."""
        def loop(runtime: GroupRuntime) -> None:
            name = f"rule group {runtime.group.name}"
            while not self._stop.is_set():
                # Its queries end at their timeout (2 minutes by default): past that and three
                # intervals, the group is wedged, not slow.
                self.loops.tick(name, 3 * runtime.interval_s + 300)
                try:
                    self._run_if_due(runtime, self.clock())
                except Exception:  # noqa: BLE001 - one bad cycle must not end alerting
                    log.exception("rule group %s: evaluation failed", runtime.group.name)
                    runtime.next_due = self.clock() + 5.0
                self._stop.wait(max(0.05, runtime.next_due - self.clock()))

        self._threads = [threading.Thread(target=loop, args=(runtime,), name=f"rules-{runtime.group.name}"[:40],
                                          daemon=True) for runtime in self.groups]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        deadline = time.monotonic() + 10
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        self.loops.stopped()
        if self.state is not None:
            self.state.close()
