"""A function run every so often on a daemon thread of its own, for the server's small background
duties (the garbage-collector policy, the heartbeat, systemd's watchdog): the first run one
interval after ``start``, a run that raises logged and the next one run all the same, ``stop``
ending the thread between runs."""
from __future__ import annotations

import logging
import threading
from typing import Callable

log = logging.getLogger(__name__)


class Periodic:
    def __init__(self, name: str, interval: float, run: Callable[[], object], join_timeout: float = 5.0) -> None:
        self.name = name
        self.interval = interval
        self.run = run
        self.join_timeout = join_timeout  # how long ``stop`` waits for a run in progress
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.join_timeout)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.run()
            except Exception:  # noqa: BLE001 - a background duty must outlive one bad round
                log.exception("%s failed", self.name)
