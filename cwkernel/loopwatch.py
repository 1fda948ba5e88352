"""Whether a component's background loops still go round: each loop ticks once a round, saying how
long it may take to come round again, and a loop overdue is stalled (wedged in a call that never
returns, or its thread dead). The health report lists stalled loops (``/-/ready``,
ClusterWatchDegraded) and the heartbeat withholds its ping while any is stalled
(cwkernel/heartbeat.py): a watcher whose loops stopped must not tell a dead man's switch that it
is alive. A degraded but moving loop (late, failing) is its own component's report, not this one's.
"""
from __future__ import annotations

import threading
import time
from typing import Callable


class LoopWatch:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._ticks: dict[str, tuple[float, float]] = {}  # loop -> (last round began, longest allowed)

    def tick(self, loop: str, allowed_s: float) -> None:
        """``loop`` began a round and will begin its next within ``allowed_s``."""
        with self._lock:
            self._ticks[loop] = (self.clock(), allowed_s)

    def stopped(self, loop: str | None = None) -> None:
        """``loop`` (None: every loop) ended on purpose, the server stopping: not stalled."""
        with self._lock:
            if loop is None:
                self._ticks.clear()
            else:
                self._ticks.pop(loop, None)

    def stalled(self) -> dict[str, str]:
        """Loop -> one sentence, for each loop overdue now."""
        now = self.clock()
        with self._lock:
            ticks = dict(self._ticks)
        return {loop: f"the {loop} loop has not come round for {now - began:.0f} s (at most {allowed:.0f} s "
                      "expected): wedged, or its thread gone" for loop, (began, allowed) in sorted(ticks.items())
                if now - began > allowed}
