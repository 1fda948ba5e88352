"""What the store says of its clock stepping back (``Store._drop_ahead_of_clock``): how often, how
many samples stamped ahead of the clock it dropped, and, for a while after the last step, a
problem for ``/-/ready`` and ClusterWatchDegraded (which the server's own health, stored again
at once, can now fire)."""
from __future__ import annotations

REPORT_S = 15 * 60.0  # long enough for ClusterWatchDegraded's `for: 2m` at any evaluation interval


class ClockSteps:
    """Counted under the store's lock; read by /metrics and the health hook."""

    def __init__(self) -> None:
        self.count = 0
        self.dropped = 0
        self._last: tuple[float, str] | None = None  # (when, in seconds of the clock then; what happened)

    def note(self, now_ms: int, newest_ms: int, dropped: int) -> None:
        self.count += 1
        self.dropped += dropped
        self._last = (now_ms / 1000, f"{dropped} samples stamped up to {(newest_ms - now_ms) / 1000:.0f} s ahead of "
                                     "this server's clock were dropped (it stepped back: check NTP)")

    def problems(self, now: float) -> dict[str, str]:
        if self._last is None:
            return {}
        when, detail = self._last
        if not when - REPORT_S <= now <= when + REPORT_S:  # over, or the clock went far back again
            return {}
        return {"clock_went_back": detail}
