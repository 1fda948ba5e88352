"""Which queries evaluate now: a gate for queries from outside, a reserved lane for the server's own.

Queries that arrive from outside (the ``/api/v1`` routes, the dashboard's request-driven queries)
take one of ``max_concurrency`` slots, as Prometheus's ``--query.max-concurrency``; the others wait
in a queue of ``max_queued``, in arrival order, their wait counted in their timeout ("query timed
out in query queue"). Where Prometheus lets the queue grow without bound, a query that finds it
full is refused at once (``unavailable``, HTTP 503), so a flood costs a ticket each and no thread.

The rule evaluator and remediation never wait here: their queries take no slot (``internal()``).
They cannot wait behind outside queries on the CPU either: with the GIL, twenty outside queries
would otherwise get twenty parts of it in twenty-one. While any internal query evaluates, outside
queries pause at their next check (``pause_for_internal``, called by their ``QueryGuard``) until the
lane is idle or their deadline passes.

Outside queries also give way to the process's memory bound (``memory``, cwkernel/memguard.py):
past its line a query is refused at the gate, one already evaluating is stopped at its next check,
and an allocation that would take the process past it is refused before it is made (its
``charge``): ``unavailable``, HTTP 503, so that the OOM killer does not end the server for them.
"""
from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import Counter, deque
from typing import Callable, Iterator, Protocol

from tsdb.promql.limits import QueryGuard, QueryLimits, timed_out
from tsdb.promql.values import PromQLError


class MemoryBound(Protocol):
    """cwkernel.memguard.MemoryGuard, as the gate uses it."""

    def pressure(self) -> str | None: ...

    def admit(self, nbytes: int) -> str | None: ...


class QueryGate:
    def __init__(self, limits: QueryLimits, memory: MemoryBound | None = None) -> None:
        self.limits = limits
        self.memory = memory
        self._lock = threading.Lock()
        self._internal_idle = threading.Condition(self._lock)
        self._running = 0  # outside queries holding a slot
        self._waiting: deque[Ticket] = deque()
        self._internal = 0  # the server's own queries evaluating now
        self.refused: Counter[str] = Counter()  # reason -> queries refused by the gate
        self.paused_seconds = 0.0  # outside queries' time held back for internal ones

    # ---- outside queries -----------------------------------------------------------------
    def enter(self, timeout_s: float | None = None) -> "Ticket":
        """A ticket holding a slot or a place in the queue; never blocks. ``unavailable`` when
        the queue is full. ``timeout_s``: the query's own (Prometheus's ``timeout`` parameter),
        capped by the limit."""
        timeout = self.limits.timeout_s if timeout_s is None else min(timeout_s, self.limits.timeout_s)
        ticket = Ticket(self, time.monotonic() + timeout)
        self._check_memory()
        with self._lock:
            if self._running < self.limits.max_concurrency and not self._waiting:
                self._running += 1
                ticket.granted = True
            elif len(self._waiting) >= self.limits.max_queued:
                self.refused["queue_full"] += 1
                raise PromQLError(f"too many queries: {self.limits.max_concurrency} evaluating and "
                                  f"{self.limits.max_queued} waiting; try again later", "unavailable",
                                  limit="queue_full")
            else:
                self._waiting.append(ticket)
        return ticket

    @contextlib.contextmanager
    def admitted(self) -> Iterator["Ticket"]:
        """A slot for the calling thread's query (waiting for it in the queue), released on exit."""
        ticket = self.enter()
        try:
            ticket.wait()
            yield ticket
        finally:
            ticket.leave()

    def refusals(self) -> Counter[str]:
        with self._lock:
            return Counter(self.refused)

    def queued(self) -> int:
        return len(self._waiting)

    def running(self) -> int:
        return self._running

    def _release(self, ticket: "Ticket") -> None:
        with self._lock:
            if ticket.done:
                return
            ticket.done = True
            if not ticket.granted:
                self._waiting.remove(ticket)
                return
            self._running -= 1
            while self._waiting and self._running < self.limits.max_concurrency:
                following = self._waiting.popleft()
                following.granted = True
                self._running += 1
                if following.wake is not None:
                    following.wake()

    def _expire(self, ticket: "Ticket") -> bool:
        """True when ``ticket`` got its slot after all; else it leaves the queue, counted."""
        with self._lock:
            if ticket.granted:
                return True
            if not ticket.done:
                ticket.done = True
                self._waiting.remove(ticket)
                self.refused["queue_timeout"] += 1
        return False

    # ---- the server's own queries -----------------------------------------------------------
    @contextlib.contextmanager
    def internal(self) -> Iterator[None]:
        with self._lock:
            self._internal += 1
        try:
            yield
        finally:
            with self._lock:
                self._internal -= 1
                if not self._internal:
                    self._internal_idle.notify_all()

    def internal_running(self) -> int:
        return self._internal

    def _check_memory(self, counted: bool = True) -> None:
        """``unavailable`` past the memory bound; ``counted`` here at the gate (a query stopped
        while evaluating is counted by the engine, with the error's ``limit``)."""
        short = self.memory.pressure() if self.memory is not None else None
        if short:
            if counted:
                with self._lock:
                    self.refused["memory"] += 1
            raise PromQLError(f"query refused: {short}", "unavailable", limit="memory")

    def reserve_memory(self, nbytes: int) -> None:
        """Before an outside query allocates ``nbytes``: ``unavailable`` if that would take the
        process past the memory bound."""
        short = self.memory.admit(nbytes) if self.memory is not None else None
        if short:
            raise PromQLError(f"query refused: {short}", "unavailable", limit="memory")

    def outside_check(self, guard: QueryGuard) -> None:
        """At each check of an outside query: stop it past the memory bound, pause it for the
        server's own queries."""
        self._check_memory(counted=False)
        self.pause_for_internal(guard)

    def pause_for_internal(self, guard: QueryGuard) -> None:
        if not self._internal:  # the usual case: one attribute read per check
            return
        began = time.monotonic()
        with self._lock:
            while self._internal:
                remaining = guard.deadline - time.monotonic()
                if remaining <= 0:
                    break  # the guard's own check reports the timeout
                self._internal_idle.wait(remaining)
            self.paused_seconds += time.monotonic() - began


class Ticket:
    """An outside query's place at the gate: ``wait()`` (or ``await wait_async()``) until it
    holds a slot, then ``leave()`` when done, whatever happened."""

    __slots__ = ("gate", "deadline", "granted", "done", "wake")

    def __init__(self, gate: QueryGate, deadline: float) -> None:
        self.gate = gate
        self.deadline = deadline  # time.monotonic(): arrival + the query timeout
        self.granted = False
        self.done = False
        self.wake: Callable[[], None] | None = None

    def wait(self) -> None:
        event = threading.Event()
        if not self._waits_with(event.set):
            return
        event.wait(max(0.0, self.deadline - time.monotonic()))
        if not self.gate._expire(self):
            raise timed_out("query queue")

    async def wait_async(self) -> None:
        """``wait`` on the event loop: a queued request holds no thread."""
        loop = asyncio.get_running_loop()
        woken = loop.create_future()

        def wake() -> None:
            loop.call_soon_threadsafe(lambda: woken.done() or woken.set_result(None))

        if not self._waits_with(wake):
            return
        await asyncio.wait({woken}, timeout=max(0.0, self.deadline - time.monotonic()))
        if not self.gate._expire(self):
            raise timed_out("query queue")

    def leave(self) -> None:
        self.gate._release(self)

    def guard(self, max_samples: int) -> QueryGuard:
        """The query's guard: its deadline counts from arrival; it pauses for internal queries and
        stops past the memory bound."""
        return QueryGuard(self.deadline, max_samples, self.gate.outside_check,
                          self.gate.reserve_memory if self.gate.memory is not None else None)

    def _waits_with(self, wake: Callable[[], None]) -> bool:
        with self.gate._lock:
            if self.granted:
                return False
            self.wake = wake
            return True
