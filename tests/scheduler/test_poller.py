"""Caching, minimum interval, one poll at a time, failures keep the last good snapshot."""
import threading

import pytest

from scheduler.errors import SchedulerTimeout
from scheduler.poller import Poller
from tests.scheduler.fakes import FakeBackend, fixture_snapshot


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


def make(backend, clock, min_interval=15.0):
    return Poller(backend.fetch, min_interval=min_interval, timeout=5.0, monotonic=clock, wall_clock=clock)


def test_readers_get_the_cache_within_the_minimum_interval(clock):
    backend = FakeBackend()
    poller = make(backend, clock)
    assert poller.snapshot() is None  # reading never polls
    poller.refresh()
    clock.now += 14.9
    for _ in range(10):
        poller.refresh()
    assert backend.fetches == 1
    clock.now += 0.2
    poller.refresh()
    assert backend.fetches == 2
    assert poller.status().polls == 2


def test_interval_counts_from_the_end_of_a_slow_poll(clock):
    backend = FakeBackend()

    def slow_fetch(timeout):
        clock.now += 60  # a squeue that takes a minute
        return backend.snapshot

    poller = Poller(slow_fetch, min_interval=15, timeout=120, monotonic=clock, wall_clock=clock)
    poller.refresh()
    clock.now += 10
    assert not poller.due()
    status = poller.status()
    assert status.last_duration == 60


def test_failure_keeps_last_good_data_and_exposes_its_age(clock):
    backend = FakeBackend(snapshot=fixture_snapshot(taken_at=100.0))
    poller = make(backend, clock)
    poller.refresh()
    backend.fail_with = SchedulerTimeout("squeue: no answer within 5.0s")
    clock.now += 20
    status = poller.refresh()
    assert status.snapshot is backend.snapshot
    assert status.errors == 1 and "no answer" in status.last_error and not status.healthy
    assert status.age(clock.now) == 20
    assert status.last_success == 100.0
    backend.fail_with = None
    clock.now += 20
    assert poller.refresh().healthy


def test_expire_allows_an_early_poll(clock):
    backend = FakeBackend()
    poller = make(backend, clock)
    poller.refresh()
    poller.expire()
    poller.refresh()
    assert backend.fetches == 2
    poller.refresh()
    assert backend.fetches == 2


def test_one_poll_at_a_time_and_concurrent_readers_get_the_cache():
    release = threading.Event()
    started = threading.Event()
    calls = []
    snapshot = fixture_snapshot()

    def blocking_fetch(timeout):
        calls.append(1)
        started.set()
        release.wait(5)
        return snapshot

    poller = Poller(blocking_fetch, min_interval=0.001, timeout=5)
    worker = threading.Thread(target=poller.refresh)
    worker.start()
    assert started.wait(5)
    readers = [poller.refresh() for _ in range(5)]  # return at once with the (empty) cache
    assert all(status.snapshot is None and status.in_progress for status in readers)
    release.set()
    worker.join(5)
    assert calls == [1]
    assert poller.snapshot() is snapshot


def test_background_loop_polls_and_stops():
    backend = FakeBackend()
    poller = Poller(backend.fetch, min_interval=0.01, timeout=1)
    poller.start()
    try:
        for _ in range(200):
            if backend.fetches >= 3:
                break
            threading.Event().wait(0.01)
    finally:
        poller.stop()
    assert backend.fetches >= 3
    assert poller.status().polls == backend.fetches
