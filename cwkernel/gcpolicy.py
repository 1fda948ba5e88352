"""The cyclic garbage collector kept off the server's long-lived heap.

Why: the server holds a large heap that lives as long as the process (the store's label sets,
the alerts, the caches), and CPython's full collection walks all of it while every thread
waits. Watched on `serve` scraping the 140-node simulator, full collections came every few
seconds, found nothing to free, and took 57 ms growing to 280 ms within a minute: they were the
server's p99 (`/-/healthy`, `/metrics`, the dashboard) on a quiet day.

So every ``interval`` seconds what has survived so far is moved out of the collector's sight
(``gc.freeze()``; reference counting still frees those objects when they are dropped, only
cycles among them wait), after a collection of the young generations so that young garbage is
not frozen. Full collections then walk only what was allocated since. Once every ``thaw_every``
the frozen objects are given back and collected in one full pass, so cycles that died meanwhile
are freed too: one pause of that length an hour instead of one every few seconds.
"""
from __future__ import annotations

import gc
import logging
import time
from typing import TYPE_CHECKING, Any, Mapping

from cwkernel.periodic import Periodic

if TYPE_CHECKING:
    from cwkernel.server import Component, Deps

log = logging.getLogger(__name__)


class GCPolicy:
    def __init__(self, interval: float = 10.0, thaw_every: float = 3600.0) -> None:
        self.interval = interval
        self.thaw_every = thaw_every
        self.freezes = 0
        self.thaws = 0
        self.last_thaw_seconds = 0.0
        self._periodic = Periodic("gc-policy", interval, self._run)
        self._last_thaw = time.monotonic()

    def freeze(self) -> None:
        """Collect the young generations, then freeze what survived."""
        gc.collect(1)
        gc.freeze()
        self.freezes += 1

    def thaw(self) -> None:
        """Everything back in the collector's sight, one full collection, frozen again."""
        began = time.perf_counter()
        gc.unfreeze()
        gc.collect()
        gc.freeze()
        self.last_thaw_seconds = time.perf_counter() - began
        self.thaws += 1
        self._last_thaw = time.monotonic()
        log.info("full garbage collection of the long-lived heap took %.0f ms", self.last_thaw_seconds * 1e3)

    def start(self) -> None:
        self.freeze()  # what start-up built: modules, the restored store, the loaded alerts
        self._periodic.start()

    def stop(self) -> None:
        self._periodic.stop()

    def _run(self) -> None:
        # An exception is logged by Periodic: the policy is an optimisation, never a stop.
        if time.monotonic() - self._last_thaw >= self.thaw_every:
            self.thaw()
        else:
            self.freeze()

    def component(self):
        from cwkernel.server import Component

        return Component("gc", start=self.start, stop=self.stop)


def build(values: Mapping[str, Any], deps: Deps) -> Component:
    """The policy as the server's last component: what the others built at start is frozen."""
    return GCPolicy().component()
