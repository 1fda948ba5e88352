"""Simulated time: a clock moved forward by hand (a demo's past hours) can then run at a speed."""
from __future__ import annotations

from simulator.clock import SimClock


def test_a_frozen_clock_moved_forward_then_set_running_continues_from_where_it_was():
    real = [100.0]
    clock = SimClock(start=1_000.0, speed=0, monotonic=lambda: real[0])
    clock.advance(3_600)
    real[0] += 50  # frozen: real time passing moves nothing
    assert clock.now() == 4_600.0
    assert clock.set_speed(1.0) == 4_600.0
    real[0] += 10
    assert clock.now() == 4_610.0 and clock.speed == 1.0
    clock.set_speed(60.0)
    real[0] += 1
    assert clock.now() == 4_670.0
