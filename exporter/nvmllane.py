"""The NVML collectors' own thread, which the collection waits for only so long.

On a GPU in a bad state an NVML call can block for minutes or for good (the driver holds it in
D state; NVIDIA/gpu-monitoring-tools#46). Run on the collection's thread, such a call stopped the
whole node's collection. Here the NVML work (the session's refresh and the NVML collectors) runs on
one worker thread (so NVML is still called from one thread at a time); the collection waits for it
up to ``timeout`` and otherwise goes on without it. While a call is in flight no other is started:
each would strand another thread on the driver.
"""
from __future__ import annotations

import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Callable, Generic, TypeVar

log = logging.getLogger(__name__)

Result = TypeVar("Result")


class NvmlLane(Generic[Result]):
    def __init__(self, work: Callable[[], Result], timeout: float) -> None:
        self._work = work
        self.timeout = timeout
        self._executor: ThreadPoolExecutor | None = None  # started on first use: 16,384 simulated nodes
        self._in_flight: Future | None = None
        self._started_at = 0.0

    def collect(self) -> Result | None:
        """This cycle's result: the work started now (or the one still in flight from an earlier
        cycle) if it ends within ``timeout``; None while it does not."""
        if self._in_flight is None:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nvml")
            self._in_flight = self._executor.submit(self._work)
            self._started_at = time.monotonic()
        try:
            result = self._in_flight.result(timeout=self.timeout)
        except FutureTimeout:
            log.warning("NVML has not answered for %.1fs: reporting it down, collecting the rest",
                        time.monotonic() - self._started_at)
            return None
        except Exception:  # noqa: BLE001 - a bug in the NVML work must not end the collection
            log.exception("NVML collection failed")
            result = None
        self._in_flight = None
        return result

    def stuck_for(self) -> float:
        """Seconds the call in flight has been running, once it missed a cycle; else 0."""
        if self._in_flight is None or self._in_flight.done():
            return 0.0
        return time.monotonic() - self._started_at

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)  # a hung call's thread stays hung
