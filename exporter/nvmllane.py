"""The NVML collectors' own thread, which the collection waits for only so long.

On a GPU in a bad state an NVML call can block for minutes or for good (the driver holds it in
D state; NVIDIA/gpu-monitoring-tools#46). Run on the collection's thread, such a call stopped the
whole node's collection. Here the NVML work (the session's refresh and the NVML collectors) runs on
one worker thread (so NVML is still called from one thread at a time); the collection waits for it
up to ``timeout`` and otherwise goes on without it. While a call is in flight no other is started:
each would strand another thread on the driver. The worker is a daemon thread, never joined: a
process stopping while NVML hangs must not wait for it.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Generic, TypeVar

log = logging.getLogger(__name__)

Result = TypeVar("Result")


class NvmlLane(Generic[Result]):
    def __init__(self, work: Callable[[], Result], timeout: float) -> None:
        self._work = work
        self.timeout = timeout
        self._asked = threading.Event()
        self._done = threading.Event()
        self._result: Result | None = None
        self._thread: threading.Thread | None = None  # started on first use: 16,384 simulated nodes
        self._in_flight = False
        self._started_at = 0.0
        self._closed = False

    def collect(self) -> Result | None:
        """This cycle's result: the work started now if it ends within ``timeout``, or the one
        still in flight from an earlier cycle if it has ended since; None while it has not. A
        call that already missed a cycle is not waited for again: while NVML hangs, the node's
        other metrics come at the collection interval, not at ``timeout``."""
        waited_before = self._in_flight
        if not self._in_flight:
            if self._thread is None:
                self._thread = threading.Thread(target=self._serve, name="nvml", daemon=True)
                self._thread.start()
            self._done.clear()
            self._in_flight, self._started_at = True, time.monotonic()
            self._asked.set()
        if not self._done.wait(0 if waited_before else self.timeout):
            if not waited_before:
                log.warning("NVML has not answered for %.1fs: reporting it down, collecting the rest",
                            time.monotonic() - self._started_at)
            return None
        self._in_flight = False
        return self._result

    def stuck_for(self) -> float:
        """Seconds the work in flight has been running, once a cycle stopped waiting; else 0."""
        if not self._in_flight or self._done.is_set():
            return 0.0
        return time.monotonic() - self._started_at

    def close(self) -> None:
        self._closed = True
        self._asked.set()

    def _serve(self) -> None:
        while True:
            self._asked.wait()
            self._asked.clear()
            if self._closed:
                return
            try:
                self._result = self._work()
            except Exception:  # noqa: BLE001 - a bug in the NVML work must not end the collection
                log.exception("NVML collection failed")
                self._result = None
            self._done.set()
