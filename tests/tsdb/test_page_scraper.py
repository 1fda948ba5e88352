"""The in-process scraper's memory of each page's series (tsdb/local.py ``PageScraper``): a second
scrape of the same series stores exactly what a scrape without the memory stores, new series and
awkward lines (timestamps, tabs, NaN) included, and a node that stops answering is forgotten."""
from __future__ import annotations

from tsdb.local import PageScraper, scrape_pages
from tsdb.store import Store

FIRST = '# HELP a_total A.\n# TYPE a_total counter\na_total{gpu="0",uuid="x"} 1\nb 2\nc{path="/a b"} 3\n'
SECOND = ('a_total{gpu="0",uuid="x"} 5\nb NaN\nc{path="/a b"} +Inf\nd{k="v"} 7 1700000000000\n'
          'e{k="} y"}\t8\nf\t9\na_total{gpu="1",uuid="y"} 6\n')


class Pages:
    def __init__(self) -> None:
        self.text = {"gpu-001": FIRST}

    def node_names(self) -> list[str]:
        return ["gpu-001"]

    def render_metrics(self, node: str) -> bytes:
        if self.text[node] is None:
            raise ConnectionError("down")
        return self.text[node].encode()


def scraped(pages: Pages, memory: bool) -> list:
    store, rows = Store(retention_s=3600), []
    original = store.append_scrape

    def capture(target, ts, samples):
        rows.append((target, ts, sorted(samples, key=repr)))
        return original(target, ts, samples)

    store.append_scrape = capture
    scraper = PageScraper(store, pages, target_labels={"gpu-001": {"rack": "r1"}})
    for ts, text in ((1000, FIRST), (2000, SECOND), (3000, SECOND), (4000, None), (5000, SECOND)):
        pages.text["gpu-001"] = text
        if memory:
            scraper.scrape(ts)
        else:
            scrape_pages(store, pages, ts, target_labels={"gpu-001": {"rack": "r1"}})
    return rows


def test_the_memory_changes_nothing_that_is_stored():
    with_memory, without = scraped(Pages(), True), scraped(Pages(), False)
    assert repr(with_memory) == repr(without)  # repr: NaN == NaN
    second = dict(with_memory[1][2])
    assert second[(("__name__", "e"), ("instance", "gpu-001"), ("job", "clusterwatch"), ("k", "} y"), ("rack", "r1"))] == 8
    assert [row for row in with_memory[3][2] if row[0][0] == ("__name__", "up")][0][1] == 0.0


def test_an_empty_label_value_is_no_label_as_the_http_scraper_stores_it():
    """Prometheus: a label whose value is empty does not exist. The demo's past went through this
    scraper and its live fleet through the HTTP one: gpu_job_info{pod="",namespace="",container=""}
    was two series for the same GPU for five minutes after the demo started, and the users page,
    which joins on it, answered 502 (duplicate series for the match group)."""
    pages = Pages()
    pages.text["gpu-001"] = 'gpu_job_info{gpu="0",job_id="7",pod="",namespace=""} 1\n'
    rows = []
    store = Store(retention_s=3600)
    original = store.append_scrape
    store.append_scrape = lambda target, ts, samples: rows.append(sorted(samples)) or original(target, ts, samples)
    scraper = PageScraper(store, pages)
    scraper.scrape(1000)
    scraper.scrape(2000)  # from the memory
    expected = (("__name__", "gpu_job_info"), ("gpu", "0"), ("instance", "gpu-001"), ("job", "clusterwatch"), ("job_id", "7"))
    assert [labels for labels, _ in rows[0] if ("__name__", "gpu_job_info") in labels] == [expected]
    assert rows[1] == rows[0]



def test_the_label_limits_hold_for_the_in_process_scraper_as_for_the_http_one():
    """The simulated nodes are scraped in process (benches, the demo's past): a page past the
    store's label limits (tsdb/store.py ``Limits``, as tests/tsdb/test_scrape_label_limits.py holds
    the HTTP scraper to them) fails its scrape whole there too, ``up`` 0, nothing of it stored,
    instead of storing what the real server would refuse."""
    from tsdb.store import Limits

    page = FIRST + 'big{v="' + "x" * 20_000 + '"} 1\n'
    for limits, refused in ((Limits(), True), (Limits(max_label_value_length=0), False)):
        pages = Pages()
        pages.text["gpu-001"] = page
        store = Store(retention_s=3600, limits=limits)
        PageScraper(store, pages).scrape(1000)
        stored = {dict(labels)["__name__"]: value for labels, _, values in store.iter_series() for value in values}
        assert stored["up"] == (0.0 if refused else 1.0)
        assert ("big" in stored) is not refused and ("b" in stored) is not refused
