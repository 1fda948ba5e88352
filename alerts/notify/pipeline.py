"""The notification pipeline, built from one ``AlertingConfig`` in one place:

    notify(alerts) -> store -> dispatcher (route, group, timers)
        -> per receiver: MultiStage[inhibit (mute), silence (mute),
               Fanout[per integration: MultiStage[dedup, retry (outbox), set-notifies]]]
    outbox -> deliverer (backoff, jitter, expiry) -> integration.deliver

Alertmanager's wait stage (which staggers HA peers) has no counterpart: there are no peers.
``flush()`` and ``deliver()`` run one round each for tests with a fake clock; ``start()`` runs
both as background loops for the server.
"""
from __future__ import annotations

import logging
import random
import threading
import time
from pathlib import Path
from typing import Callable, Iterable

import httpx

from alerts.judged import JudgedAlerts
from alerts.model import Alert
from alerts.outbox import DEFAULT_MAX_AGE, DEFAULT_MAX_PENDING_PER_RECEIVER, Backoff, Deliverer, Outbox, Target
from alerts.silences import DEFAULT_MAX_SILENCES, SilenceStore
from alerts.notify import integrations
from alerts.notify.config import AlertingConfig, ReceiverConfig
from alerts.notify.dedup import DedupStage
from alerts.notify.dispatch import AggregationGroup, Dispatcher
from alerts.notify.enqueue import EnqueueStage
from alerts.notify.inhibit import Inhibitor
from alerts.notify.integrations import HookRegistry, Integration
from alerts.notify.metrics import NotifyMetrics
from alerts.notify.mute import MuteStage
from alerts.notify.nflog import NotificationLog
from alerts.notify.setnotifies import SetNotifiesStage
from alerts.notify.sqlite import Database
from alerts.notify.stage import Context, FanoutStage, MultiStage, Stage
from alerts.notify.store import AlertStore
from cwkernel import httpdeadline
from cwkernel.loopwatch import LoopWatch

log = logging.getLogger(__name__)

GC_INTERVAL = 60.0
# The alerts held from the webhook at most (``--alerts-max``): about 1.3 GB of the server at 2.7 KB
# an alert; at 16,384 nodes, 30 a node. Cortex's alertmanager_max_alerts_count does the same.
DEFAULT_MAX_ALERTS = 500_000
CAP_REPORT_S = 15 * 60.0  # a refusal at the cap stays a health problem this long
# Groups flushed per round of the dispatch loop: a storm's flush is many short rounds, so stopping
# never waits for all of it and the loop's metrics stay current.
FLUSH_BATCH = 1000


class IntegrationName:
    """First stage of an integration's branch: names the integration for the stages after it."""

    name = "integration"

    def __init__(self, integration: str) -> None:
        self.integration = integration

    def exec(self, ctx: Context, alerts: list[Alert]) -> tuple[Context, list[Alert]]:
        return ctx.with_(integration=self.integration), alerts


class Pipeline:
    def __init__(self, config: AlertingConfig, db: Database | str | Path = ":memory:", *,
                 clock: Callable[[], float] = time.time, http: httpx.Client | None = None,
                 hooks: HookRegistry | None = None, backoff: Backoff = Backoff(),
                 max_age: float = DEFAULT_MAX_AGE, rng: Callable[[], float] = random.random,
                 max_pending_per_receiver: int = DEFAULT_MAX_PENDING_PER_RECEIVER,
                 max_silences: int = DEFAULT_MAX_SILENCES, max_alerts: int = DEFAULT_MAX_ALERTS) -> None:
        self.config = config
        self.clock = clock
        self.metrics = NotifyMetrics(self.pending_by_target, lambda: self.store.refused_total)
        self.db = db if isinstance(db, Database) else Database(db)
        self.outbox = Outbox(self.db, max_pending_per_receiver, on_drop=self.metrics.drop)
        self.store = AlertStore(self.db, max_alerts)
        self.silences = SilenceStore(self.db, clock, max_silences)
        self.nflog = NotificationLog(self.db)
        self.hooks = hooks or HookRegistry()
        self.http = http or httpdeadline.client()  # a webhook's timeout ends the whole attempt
        self.inhibitor = Inhibitor(config.inhibit_rules, self.store.current())
        self.judged = JudgedAlerts(self)
        self._deliver_wake = threading.Event()
        self._flush_wake = threading.Event()
        self.integrations = self._integrations(config)
        self.receivers: dict[str, Stage] = {r.name: self._receiver_stage(r, self.integrations, config.external_url)
                                            for r in config.receivers.values()}
        self.dispatcher = Dispatcher(config.route, self._notify_group)
        self.deliverer = Deliverer(self.outbox, lambda r, i: self.integrations.get((r, i)), self.metrics, clock,
                                   backoff, max_age, rng, workers=_delivery_workers(self.integrations),
                                   wake=self._deliver_wake.set)
        self._reload_lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self.loops = LoopWatch()
        self._stop = threading.Event()
        self._last_gc = 0.0
        # Alerts that were current before a restart go back into their groups; the notification
        # log keeps the groups from re-sending what was already sent.
        self.dispatcher.put(self.store.current(), clock())

    def _integrations(self, config: AlertingConfig) -> dict[tuple[str, str], Integration]:
        return {(receiver.name, c.name): integrations.build(receiver.name, c, self.hooks, self.http)
                for receiver in config.receivers.values() for c in receiver.integrations}

    def reload(self, config: AlertingConfig) -> None:
        """Route by ``config`` from now on (a reload of alerting.yml), as Alertmanager reloads.

        The alerts held, silences, the notification log and the outbox are kept: the current
        alerts go into the new routes' groups, whose first flush waits ``group_wait`` and sends
        only what the notification log says each receiver has not had (nothing again within its
        ``repeat_interval``). Notifications already queued for a receiver that is gone stay in
        the outbox and are delivered if it comes back, else expire as after a restart."""
        with self._reload_lock:
            fresh = self._integrations(config)
            receivers = {r.name: self._receiver_stage(r, fresh, config.external_url) for r in config.receivers.values()}
            self.deliverer.resize(_delivery_workers(fresh))
            inhibitor = Inhibitor(config.inhibit_rules, self.store.current())
            dispatcher = Dispatcher(config.route, self._notify_group)
            # Swapped between two flushes of the old groups; an alert stored meanwhile reaches the
            # new groups through the store (the put below), whichever dispatcher it was handed.
            with self.dispatcher.flushing():
                self.config, self.integrations, self.receivers = config, fresh, receivers
                self.inhibitor, self.dispatcher = inhibitor, dispatcher
            dispatcher.put(self.store.current(), self.clock())
            self._flush_wake.set()
            self._deliver_wake.set()

    def _receiver_stage(self, receiver: ReceiverConfig, built: dict[tuple[str, str], Integration],
                        external_url: str) -> Stage:
        branches = [
            MultiStage(f"{receiver.name}/{c.name}", [
                IntegrationName(c.name),
                DedupStage(self.nflog, c.send_resolved),
                EnqueueStage(self.outbox, built[(receiver.name, c.name)], external_url, self._deliver_wake.set),
                SetNotifiesStage(self.nflog),
            ]) for c in receiver.integrations
        ]
        return MultiStage(receiver.name, [
            MuteStage("inhibit", self.inhibitor),
            MuteStage("silence", self.silences),
            FanoutStage("receiver", branches),
        ])

    def _notify_group(self, group: AggregationGroup, alerts: list[Alert], now: float) -> bool:
        ctx = Context(receiver=group.route.opts.receiver, group_key=group.key, group_labels=group.labels, now=now,
                      repeat_interval=group.route.opts.repeat_interval)
        self.receivers[ctx.receiver].exec(ctx, alerts)
        return True

    # Entry points ------------------------------------------------------------------------

    def notify(self, alerts: Iterable[Alert]) -> None:
        """For the embedded evaluator: current alerts (firing, and resolved ones with endsAt).
        A firing alert not re-sent within resolve_timeout is resolved."""
        self._put(alerts, "evaluator", timeout=True)

    def receive(self, alerts: Iterable[Alert], source: str = "alertmanager") -> list[Alert]:
        """For the inbound webhook: alerts whose sender reports their resolution. A new alert past ``max_alerts`` is refused: left out of the answer."""
        return self._put(alerts, source, timeout=False, capped=True)

    def _put(self, alerts: Iterable[Alert], source: str, timeout: bool, capped: bool = False) -> list[Alert]:
        now = self.clock()
        return self._take_in(self.store.put(list(alerts), source, timeout, now, capped), now)

    def _take_in(self, stored: list[Alert], now: float) -> list[Alert]:
        """Alerts just stored, into the inhibitor's sources and their groups."""
        self.inhibitor.update(stored)
        self.dispatcher.put(stored, now)
        self._flush_wake.set()
        return stored

    def pending_by_target(self) -> dict[Target, int]:
        """Pending notifications per target, zero for every configured one."""
        return {**{target: 0 for target in self.integrations}, **self.outbox.pending_counts()}

    def health(self) -> dict[str, str]:
        """Problems worked around (cwkernel/health.py): stored rows left out of every view, new
        alerts refused at the cap within ``CAP_REPORT_S``."""
        problems = {}
        unreadable = self.silences.unreadable
        if unreadable:
            ids = ", ".join(sorted(unreadable)[:5]) + (", ..." if len(unreadable) > 5 else "")
            problems["silences_unreadable"] = (f"{len(unreadable)} stored silence(s) cannot be read and are "
                                               f"ignored ({ids}); see the log")
        refused = self.store.last_refused
        if refused is not None and self.clock() - refused[0] < CAP_REPORT_S:
            problems["alerts_at_cap"] = (f"{refused[1]:,} new alert(s) from the webhook refused at "
                                         f"{time.strftime('%H:%M:%S', time.gmtime(refused[0]))} UTC: "
                                         f"{self.store.max_alerts:,} alerts held (--alerts-max)")
        return problems

    def register_hook(self, name: str, fn: Callable) -> None:
        """An in-process receiver for ``hook_configs: [{name: NAME}]`` (the remediation engine)."""
        self.hooks.register(name, fn)

    # One round each (the loops call these; tests call them with a fake clock) ------------------

    def flush(self, limit: int | None = None) -> int:
        """Flush the groups that are due (at most ``limit``); returns how many."""
        now = self.clock()
        expired = self.store.timed_out(now, self.config.resolve_timeout)
        if expired:
            self._take_in(self.store.put(expired, "resolve_timeout", True, now), now)
        flushed = self.dispatcher.tick(now, limit)
        if now - self._last_gc >= GC_INTERVAL:
            self._last_gc = now
            self.store.gc(now)
            self.silences.gc(now)
            self.nflog.gc(now)
            self.outbox.gc(now)
        return flushed

    def deliver(self) -> int:
        return self.deliverer.run_once()

    # Background loops -------------------------------------------------------------------------

    def start(self) -> None:
        self._stop.clear()
        for name, round_, wake, deadline, pause in (
            # The dispatcher as of each round: a reload replaces it.
            ("dispatch", lambda: self.flush(FLUSH_BATCH), self._flush_wake, lambda: self.dispatcher.next_deadline(),
             lambda: 0.0),
            # A flush of 10,000 groups wakes the delivery loop 10,000 times: it rests as the
            # deliverer says (in proportion to the cost of its look at the lanes).
            ("deliver", self.deliverer.dispatch, self._deliver_wake, self.deliverer.next_due,
             lambda: self.deliverer.pause_s),
        ):
            thread = threading.Thread(target=self._loop, args=(name, round_, wake, deadline, pause),
                                      name=f"cw-notify-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def _loop(self, name: str, round_: Callable[[], object], wake: threading.Event,
              deadline: Callable[[], float | None], pause: Callable[[], float]) -> None:
        while not self._stop.is_set():
            # A round rests a second at most; two minutes is a round wedged (its store, a lock).
            self.loops.tick(f"notification {name}", 120)
            wake.clear()
            started = time.monotonic()
            try:
                round_()
                self.metrics.loop(name, time.monotonic() - started, True, self.clock())
            except Exception:  # noqa: BLE001 - the loop must outlive one bad round
                log.exception("notification %s loop failed", name)
                self.metrics.loop(name, time.monotonic() - started, False, self.clock())
            try:
                due = deadline()
            except Exception:  # noqa: BLE001 - e.g. the database busy: look again in a second
                log.exception("notification %s loop: next deadline unknown", name)
                due = None
            rest = pause()
            if rest:
                self._stop.wait(rest)
            wait = 1.0 if due is None else min(1.0, max(0.0, due - self.clock()))
            if wait:
                wake.wait(wait)

    def stop(self) -> None:
        self._stop.set()
        self._flush_wake.set()
        self._deliver_wake.set()
        for thread in self._threads:
            thread.join(timeout=15)
        self._threads.clear()
        self.loops.stopped()
        self.deliverer.close()

    def close(self) -> None:
        self.http.close()
        self.db.close()


def _delivery_workers(targets: dict) -> int:
    """A worker per target, so that every receiver can be attempted while others hang; the spare
    ones serve targets of an older configuration still in the outbox."""
    return min(64, len(targets) + 4)
