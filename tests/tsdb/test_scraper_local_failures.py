"""A scrape that fails because of the server itself (finding 6 of issue 14) never reads as the
target being down: with the process out of file descriptors, nothing is written for the target
(no ``up 0``), the skip is counted by reason and the health hook says so; once descriptors are
back the same target scrapes as up. The scraper's sockets stay within their budget."""
from __future__ import annotations

import os
import resource
from contextlib import contextmanager
from typing import Iterator

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from tsdb.discovery import static_targets
from tsdb.promql.engine import Engine
from tsdb.scraper import Scraper
from tsdb.selfmetrics import TSDBCollector
from tsdb.store import Store
from tests.pages import page_servers, one_gauge
from tests.tsdb.scrape_pages import PAGES, latest


@contextmanager
def no_free_descriptors() -> Iterator[None]:
    """Every descriptor below a lowered soft RLIMIT_NOFILE taken, so the next socket() fails EMFILE."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + 8, hard))
    fillers = []
    try:
        while True:
            try:
                fillers.append(os.open(os.devnull, os.O_RDONLY))
            except OSError:
                break
        yield
    finally:
        for fd in fillers:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def skipped_metric(store: Store, scraper: Scraper) -> str:
    registry = CollectorRegistry()
    registry.register(TSDBCollector(store, Engine(store), scraper))
    return generate_latest(registry).decode()


def test_out_of_descriptors_is_a_skip_not_a_down_target(server: str) -> None:  # noqa: F811
    PAGES["/metrics"] = "gpu_temperature_celsius 40\n"
    store = Store()
    scraper = Scraper(store, lambda: static_targets([server], "node"), interval=5)
    try:
        with no_free_descriptors():
            scraper.run_once()
        assert latest(store, "up") == {}, "a scrape the server could not make was recorded for the target"
        assert scraper.targets_json()[0]["health"] != "down"
        assert 'clusterwatch_scrape_skipped_total{reason="fd_exhausted"} 1.0' in skipped_metric(store, scraper)
        assert "scrapes_skipped_fd_exhausted" in scraper.problems()
        scraper.run_once()
        assert list(latest(store, "up").values()) == [1.0]
    finally:
        scraper.stop()


@pytest.fixture
def keepalive_servers() -> Iterator[list[str]]:
    # Connections stay open between scrapes, as with real exporters.
    with page_servers(one_gauge, count=3, keep_alive=True) as addresses:
        yield addresses


def test_scraper_sockets_stay_within_their_budget(keepalive_servers: list[str]) -> None:
    # Three keep-alive targets, a budget of two sockets: every scrape still succeeds, the least
    # recently used idle connection closed to make room.
    store = Store()
    scraper = Scraper(store, lambda: static_targets(keepalive_servers, "node"), interval=5, max_connections=2)
    try:
        for _ in range(3):
            scraper.run_once()
            assert scraper._fetcher.open_connections <= 2
        assert list(latest(store, "up").values()) == [1.0, 1.0, 1.0]
    finally:
        scraper.stop()
