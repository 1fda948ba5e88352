"""A scrape ends by its timeout and reads a bounded page, whatever the target does: a target that
drips its answer a byte at a time, or sends an endless page, is down with Prometheus's reason and
holds a scrape worker no longer than the timeout.

Observed before: each read waited up to the timeout afresh, so a target dripping one byte every
0.1 s held its scrape (and a worker of the pool of 16) for as long as it kept dripping; sixteen
such targets left every other target unscraped ("scrape pool busy"); a page was read whole
before its series were counted.
"""
from __future__ import annotations

import socket
import threading

import pytest

from tsdb.discovery import make_target, static_targets
from tsdb.scraper import Scraper
from tsdb.store import Limits, Store
from tests.rawserver import Answer, outcome_in_a_thread, raw_server
from tests.tsdb.scrape_pages import PAGES, latest

OK_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n"


def drip_body(conn: socket.socket, stop: threading.Event) -> None:
    conn.sendall(OK_HEAD + b"Transfer-Encoding: chunked\r\n\r\n")
    while not stop.wait(0.1):
        conn.sendall(b"1\r\n#\r\n")


def drip_headers(conn: socket.socket, stop: threading.Event) -> None:
    for byte in (OK_HEAD + b"X-Slow: " + b"x" * 60_000):
        if stop.wait(0.1):
            return
        conn.sendall(bytes([byte]))


def endless_page(conn: socket.socket, stop: threading.Event) -> None:
    conn.sendall(OK_HEAD + b"Transfer-Encoding: chunked\r\n\r\n")
    lines = b"".join(b'gpu_util{gpu="%d"} 1\n' % i for i in range(1000))
    chunk = b"%x\r\n%s\r\n" % (len(lines), lines)
    while not stop.is_set():
        conn.sendall(chunk)


def declared_large_page(conn: socket.socket, stop: threading.Event) -> None:
    conn.sendall(OK_HEAD + b"Content-Length: 10000000000\r\n\r\n")
    while not stop.is_set():
        conn.sendall(b"gpu_util 1\n" * 10_000)


def scrape_once_in_a_thread(scraper: Scraper) -> bool:
    """True when ``run_once`` came back (a timed scrape of 1 s has a minute)."""
    return outcome_in_a_thread(scraper.run_once) == [None]


def scraped_with_a_limit_of_100_series(answer: Answer) -> tuple[Scraper, Store, bool]:
    """One scrape of ``answer``'s page into a store that lets a target hold 100 series (so at
    most 100 KiB of page); whether it came back."""
    store = Store(limits=Limits(max_series_per_target=100))
    with raw_server(answer) as address:
        scraper = Scraper(store, lambda: static_targets([address], "j"), interval=5, timeout=30)
        came_back = scrape_once_in_a_thread(scraper)
    scraper.stop()
    return scraper, store, came_back


@pytest.mark.parametrize("answer", [drip_body, drip_headers], ids=["body", "headers"])
def test_a_target_that_drips_its_answer_is_down_once_the_timeout_has_passed(answer: Answer) -> None:
    store = Store()
    with raw_server(answer) as address:
        scraper = Scraper(store, lambda: static_targets([address], "j"), interval=5, timeout=1)
        came_back = scrape_once_in_a_thread(scraper)
    scraper.stop()  # once the target has stopped: a scrape still held by it ends now
    assert came_back
    assert list(latest(store, "up").values()) == [0.0]
    assert "context deadline exceeded" in scraper.targets_json()[0]["lastError"]


@pytest.mark.parametrize("answer", [endless_page, declared_large_page], ids=["chunked", "content-length"])
def test_a_page_longer_than_its_targets_series_allow_is_refused_unread(answer: Answer) -> None:
    scraper, store, came_back = scraped_with_a_limit_of_100_series(answer)
    assert came_back
    assert list(latest(store, "up").values()) == [0.0]
    assert scraper.targets_json()[0]["lastError"] == "body size limit exceeded (102,400 bytes)"


def test_dripping_targets_do_not_keep_the_others_from_being_scraped(server: str) -> None:
    PAGES["/metrics"] = "gpu_util 1\n"
    store = Store()
    with raw_server(drip_body) as dripping:
        # More dripping targets than the pool has workers: each holds one for its timeout only.
        targets = [make_target(dripping, {"instance": f"drip-{i}"}, "drip") for i in range(6)] \
            + static_targets([server], "healthy")
        # 5 s: enough for the healthy page on a busy machine; each dripping target holds a worker that long.
        scraper = Scraper(store, lambda: targets, interval=5, timeout=5, workers=2)
        came_back = scrape_once_in_a_thread(scraper)
    scraper.stop()
    assert came_back
    assert latest(store, "up", job="healthy") == {(("__name__", "up"), ("instance", server), ("job", "healthy")): 1.0}


def test_a_page_within_the_limit_is_read_whole(server: str) -> None:
    PAGES["/metrics"] = "".join(f'gpu_util{{gpu="{i}"}} {i}\n' for i in range(97))  # and up, duration, samples
    store = Store(limits=Limits(max_series_per_target=100))
    scraper = Scraper(store, lambda: static_targets([server], "j"), interval=5, timeout=30)
    try:
        scraper.run_once()
    finally:
        scraper.stop()
    assert len(latest(store, "gpu_util")) == 97


def many_series_page(conn: socket.socket, stop: threading.Event) -> None:
    body = b"".join(b'a{i="%d"} 1\n' % i for i in range(1000))  # 1,000 series in 14 kB
    conn.sendall(OK_HEAD + b"Content-Length: %d\r\n\r\n" % len(body) + body)


def test_a_page_with_more_series_than_its_target_may_hold_leaves_nothing_remembered() -> None:
    """What the scraper keeps of a target's page between scrapes (its lines, their labels) is for
    pages the store takes: one with more series than the target may hold is refused, and kept, it
    would hold as much memory as the page until the next scrape, every scrape."""
    scraper, store, came_back = scraped_with_a_limit_of_100_series(many_series_page)
    assert came_back
    assert list(latest(store, "up").values()) == [0.0]
    assert "limit" in scraper.targets_json()[0]["lastError"]
    health = scraper.health()[0]
    assert health.series_text == {} and len(health.label_cache) <= 100
