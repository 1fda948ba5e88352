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
from dataclasses import dataclass, field, replace
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
    retired: bool = False  # replaced by a reload: it evaluates no more
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
        self.external_labels, self.external_url = external_labels, external_url
        self.default_interval_s = default_interval_s
        self.groups = self._runtimes(groups)
        self.notify_errors = 0
        self.alerts_sent = 0
        self._counts_lock = threading.Lock()
        self._reload_lock = threading.Lock()
        self._stop = threading.Event()  # this generation of group threads'; a reload starts another
        self._threads: list[threading.Thread] = []
        self._retired_threads: list[threading.Thread] = []
        self._stopped = False
        self.generation = 0  # counts evaluations and reloads: while unchanged, so is every rule's state
        self.loops = LoopWatch()
        if state is not None:
            self._restore(clock())

    def _runtimes(self, groups: Sequence[Group]) -> list[GroupRuntime]:
        return [GroupRuntime(g, g.interval_s or self.default_interval_s, [self._build(r) for r in g.rules])
                for g in groups]

    def _build(self, rule: Rule) -> Any:
        return AlertingRule(rule, self.external_labels, self.external_url) if rule.kind == "alert" \
            else RecordingRule(rule)

    # ---- reload -------------------------------------------------------------------------------

    def replace_groups(self, groups: Sequence[Group]) -> None:
        """Run ``groups`` in place of the running ones (a reload of the rule files).

        A rule still there (same group file and name, kind, name and labels, as Prometheus's
        CopyState matches them) keeps its alerts, so a pending alert keeps its ``for`` clock and
        a firing one is not sent again before its resend delay; it keeps its health too, and its
        group its schedule. The rest start afresh; a removed rule's alerts are no longer sent,
        and receivers resolve them when they expire, as after a Prometheus reload.

        Groups are handed over one at a time: a group in the middle of an evaluation finishes it
        (its lock), evaluates no more, and its successor's thread starts; the groups not handed
        over yet go on evaluating meanwhile, so a group stuck in a slow query holds up only itself
        and the reload, never the other groups' alerts."""
        with self._reload_lock:
            running = bool(self._threads) and not self._stopped
            old_stop, stop = self._stop, threading.Event()
            fresh = self._runtimes(groups)
            old_groups = {(g.group.file, g.group.name): g for g in self.groups}
            threads = []
            for runtime in fresh:
                old = old_groups.pop((runtime.group.file, runtime.group.name), None)
                if old is not None:
                    with old.lock:
                        _carry_over(old, runtime)
                        old.retired = True
                if running:
                    threads.append(self._start_group(runtime, stop))
            for old in old_groups.values():
                with old.lock:
                    old.retired = True
                self.loops.stopped(f"rule group {old.group.name}")
            self.groups = fresh
            self.generation += 1
            if self.state is not None:
                self.state.retain({r.rule.key for g in fresh for r in g.rules if isinstance(r, AlertingRule)})
            old_stop.set()  # the retired threads wake and end
            if self._stopped:  # stopped while handing over: the new threads end too
                stop.set()
            # Kept to be joined at stop while they finish; those already ended are let go.
            self._retired_threads = [t for t in self._retired_threads + self._threads if t.is_alive()]
            self._stop, self._threads = stop, threads

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
            if runtime.retired:  # a reload replaced it while this thread waited
                return
            for rule in runtime.rules:
                health = runtime.health.setdefault(rule.rule.key, RuleHealth())
                rule_started = time.perf_counter()
                try:
                    samples = self._eval_rule(rule, runtime, ts)
                    health.last_error = ""
                except Exception as exc:  # noqa: BLE001 - one rule's failure, even a bug's, stops only that rule
                    failed = True
                    health.failures += 1
                    if isinstance(exc, RuleEvalError):
                        health.last_error = str(exc)
                        log.warning("rule %s: %s", rule.rule.key, exc)
                    else:
                        health.last_error = f"internal error: {type(exc).__name__}: {exc}"
                        log.exception("rule %s: evaluation failed", rule.rule.key)
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
        self.generation += 1  # what the rules show has changed (the rules API's answers)
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
        self._threads = [self._start_group(runtime, self._stop) for runtime in self.groups]

    def _start_group(self, runtime: GroupRuntime, stop: threading.Event) -> threading.Thread:
        """The thread of ``runtime``, until ``stop`` (its generation's: a reload starts another) or
        until a reload retires the group."""
        def loop() -> None:
            name = f"rule group {runtime.group.name}"
            while not stop.is_set() and not runtime.retired:
                # Its queries end at their timeout (2 minutes by default): past that and three
                # intervals, the group is wedged, not slow.
                self.loops.tick(name, 3 * runtime.interval_s + 300)
                try:
                    self._run_if_due(runtime, self.clock())
                except Exception:  # noqa: BLE001 - one bad cycle must not end alerting
                    log.exception("rule group %s: evaluation failed", runtime.group.name)
                    runtime.next_due = self.clock() + 5.0
                stop.wait(max(0.05, runtime.next_due - self.clock()))

        thread = threading.Thread(target=loop, name=f"rules-{runtime.group.name}"[:40], daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stopped = True
        self._stop.set()
        deadline = time.monotonic() + 10
        for thread in self._retired_threads + self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        self.loops.stopped()
        if self.state is not None:
            self.state.close()


def _carry_over(old: GroupRuntime, new: GroupRuntime) -> None:
    """What a reload keeps of a group still there: its schedule, and of each rule still there
    (matched by kind, name and labels, in order where several match) its alerts and health."""
    if new.interval_s == old.interval_s:
        new.last_eval, new.next_due = old.last_eval, old.next_due
    new.evaluations, new.failures, new.missed = old.evaluations, old.failures, old.missed
    new.last_duration_s = old.last_duration_s
    unmatched: dict[tuple, list[Any]] = {}
    for rule in old.rules:
        unmatched.setdefault(_identity(rule), []).append(rule)
    for rule in new.rules:
        candidates = unmatched.get(_identity(rule))
        if not candidates:
            continue
        previous = candidates.pop(0)
        if previous.rule.key in old.health:
            new.health[rule.rule.key] = old.health[previous.rule.key]
        if isinstance(rule, AlertingRule):
            rule.active = {key: replace(alert) for key, alert in previous.active.items()}
            rule.carry_clock(previous)


def _identity(rule: Any) -> tuple:
    return (type(rule).__name__, rule.rule.name, tuple(sorted(rule.rule.labels.items())))
