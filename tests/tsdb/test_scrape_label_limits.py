"""A scraped series' labels are bounded the way Prometheus's ``label_limit``,
``label_name_length_limit`` and ``label_value_length_limit`` bound them: a page with one series
past a limit fails the whole scrape (``up`` 0, the reason as Prometheus words it), stores none of
its series, and a later page within the limits is stored again.

Observed before: nothing bounded a label but the page's size (1 KiB per series the target may
expose: 50 MiB for a node). One series with a 5 MB label value was stored, and a target that put
a new such value on each scrape (a timestamp, a request id in a label) made a new 5 MB series
every interval, held in the store, its label index and the scraper's label cache, within every
series limit; 200 labels on one series were stored as well.
"""
from __future__ import annotations

import pytest

from tsdb.discovery import static_targets
from tsdb.scraper import Scraper
from tsdb.store import Limits, Store
from tests.tsdb.scrape_pages import PAGES, latest


def scrape(server: str, page: str, limits: Limits | None = None) -> tuple[Store, Scraper]:
    PAGES["/metrics"] = page
    store = Store(limits=limits or Limits())
    scraper = Scraper(store, lambda: static_targets([server], "j"), interval=5, timeout=30)
    try:
        scraper.run_once()
    finally:
        scraper.stop()
    return store, scraper


def last_error(scraper: Scraper) -> str:
    return scraper.targets_json()[0]["lastError"]


@pytest.mark.parametrize("page, error", [
    ('gpu_info{gpu="0",note="%s"} 1\n' % ("x" * 5_000_000),
     'label_value_length_limit exceeded (metric: gpu_info, label name: note, value: "xxxxxxxxxxxxxxxxxxxxxxxxxxxxx'
     'xxxxxxxxxxxxxxxxxxxxx", length: 5000000, limit: 16384)'),
    ("gpu_info{%s} 1\n" % ",".join(f'l{i}="v"' for i in range(200)),
     "label_limit exceeded (metric: gpu_info, number of labels: 203, limit: 64)"),
    ('gpu_info{%s="v"} 1\n' % ("n" * 300),
     "label_name_length_limit exceeded (metric: gpu_info, label name: nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn, "
     "length: 300, limit: 256)"),
    ("%s 1\n" % ("m" * 20_000), "label_value_length_limit exceeded (metric: mmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmm, "
     'label name: __name__, value: "mmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmm", length: 20000, limit: 16384)'),
], ids=["value", "count", "name", "metric-name"])
def test_a_series_past_a_label_limit_fails_the_scrape_and_stores_none_of_the_page(server: str, page: str,
                                                                                  error: str) -> None:
    store, scraper = scrape(server, 'gpu_util{gpu="0"} 50\n' + page)
    assert list(latest(store, "up").values()) == [0.0]
    assert last_error(scraper) == error
    assert latest(store, "gpu_util") == {}, "a half-stored page would make series flap"
    assert latest(store, "gpu_info") == {}


def test_the_limits_are_the_operators_and_zero_lifts_them(server: str) -> None:
    page = 'gpu_info{gpu="0",note="%s"} 1\n' % ("x" * 40_000)
    store, scraper = scrape(server, page, Limits(max_label_value_length=0))
    assert list(latest(store, "up").values()) == [1.0]
    assert len(latest(store, "gpu_info")) == 1
    store, scraper = scrape(server, 'gpu_info{gpu="0",a="b"} 1\n', Limits(max_labels_per_series=4))
    assert last_error(scraper) == "label_limit exceeded (metric: gpu_info, number of labels: 5, limit: 4)"


def test_a_page_within_the_limits_after_a_refused_one_is_stored(server: str) -> None:
    store = Store()
    scraper = Scraper(store, lambda: static_targets([server], "j"), interval=5, timeout=30)
    try:
        PAGES["/metrics"] = 'gpu_info{note="%s"} 1\n' % ("x" * 20_000)
        scraper.run_once()
        assert last_error(scraper).startswith("label_value_length_limit exceeded")
        PAGES["/metrics"] = 'gpu_info{note="%s"} 1\n' % ("x" * 16_384)  # at the limit: allowed
        scraper.run_once()
    finally:
        scraper.stop()
    assert last_error(scraper) == ""
    assert list(latest(store, "up").values()) == [1.0]
    assert len(latest(store, "gpu_info")) == 1
