"""Log lines rate-limited per message, so a storm cannot flood the disk or the journal.

A flood of half-sent connections once produced 60 MB of log in 40 s: the same few messages
(accept failures with their tracebacks, scrape errors) a thousand times a second. The filter lets
each message template (logger name + format string, not the formatted text) through ``burst``
times per ``period``; the first line after a quiet spell says how many similar lines were
dropped. Installed on the root logger's handlers, it sees every record that reaches the log.
"""
from __future__ import annotations

import logging
import threading
import time

MAX_KEYS = 10_000  # templates remembered; beyond that the table starts over


# Loggers whose every line is something delivered, not a symptom: the log receiver's
# notifications (alerts/notify/integrations/log.py) must all reach the log, storm or not.
EXEMPT = frozenset({"clusterwatch.notifications"})


class Throttle(logging.Filter):
    def __init__(self, burst: int = 10, period: float = 60.0, exempt: frozenset[str] = EXEMPT) -> None:
        super().__init__()
        self.burst = burst
        self.period = period
        self.exempt = exempt
        self.dropped_total = 0
        self._windows: dict[tuple[str, str], list] = {}  # key -> [window start, passed, dropped]
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name in self.exempt:
            return True
        key = (record.name, str(record.msg))
        now = time.monotonic()
        with self._lock:
            window = self._windows.get(key)
            if window is None or now - window[0] >= self.period:
                if len(self._windows) >= MAX_KEYS:
                    self._windows.clear()
                dropped = window[2] if window else 0
                self._windows[key] = [now, 1, 0]
                if dropped:
                    record.msg = f"{record.msg} [{dropped} similar line(s) suppressed in the last {self.period:g} s]"
                return True
            if window[1] < self.burst:
                window[1] += 1
                return True
            window[2] += 1
            self.dropped_total += 1
            return False


def install(throttle: Throttle, logger: logging.Logger | None = None) -> None:
    """Put ``throttle`` on every handler of ``logger`` (the root logger by default)."""
    for handler in (logger or logging.getLogger()).handlers:
        if throttle not in handler.filters:
            handler.addFilter(throttle)
