"""Simulated time: runs ``speed`` times faster than real time, or only when a test advances it."""
from __future__ import annotations

import threading
import time


class SimClock:
    """Unix-epoch seconds of the simulated world.

    ``speed=60`` makes one real second one simulated minute. ``speed=0`` freezes time so a test
    moves it explicitly with ``advance()``; that is what makes runs under a seed deterministic.
    """

    def __init__(self, start: float | None = None, speed: float = 1.0, monotonic=time.monotonic) -> None:
        if speed < 0:
            raise ValueError("speed must be >= 0")
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._base_sim = time.time() if start is None else float(start)
        self._base_real = monotonic()
        self._speed = speed

    @property
    def speed(self) -> float:
        return self._speed

    def now(self) -> float:
        with self._lock:
            return self._base_sim + (self._monotonic() - self._base_real) * self._speed

    def set_speed(self, speed: float) -> float:
        """Run at ``speed`` from now on, continuing from the current simulated time: a history
        moved forward explicitly at speed 0 (the demo's past hours), then real time."""
        if speed < 0:
            raise ValueError("speed must be >= 0")
        with self._lock:
            real = self._monotonic()
            self._base_sim += (real - self._base_real) * self._speed
            self._base_real, self._speed = real, speed
            return self._base_sim

    def advance(self, seconds: float) -> float:
        """Move simulated time forward by ``seconds`` (on top of any real-time flow)."""
        if seconds < 0:
            raise ValueError("time only moves forward")
        with self._lock:
            self._base_sim += seconds
            return self._base_sim + (self._monotonic() - self._base_real) * self._speed
