"""Series churn: a target whose label values change every scrape (a timestamp or a pod name in a
label) creates new series faster than retention drops old ones. Each series costs about 2 KB of
the server's memory; with only a total limit, one such exporter filled the store within an hour,
and from then on every other target's new series (a new job's) and the rules' were refused."""
from __future__ import annotations

import json
import time

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from tests.tsdb.scrape_pages import PAGES, latest
from tsdb.component import EmbeddedTSDB, TSDBConfig
from tsdb.discovery import parse_file_sd
from tsdb.matchers import EQUAL, LabelMatcher
from tsdb.scraper import Scraper
from tsdb.store import LimitError, Limits, Store

HOUR_MS = 3_600_000


def series(name: str, **labels: str) -> tuple:
    return tuple(sorted({"__name__": name, **labels}.items()))


def sessions(store: Store) -> int:
    return store.series_count([LabelMatcher.of(EQUAL, "__name__", "exporter_sessions")])


def churning_page(scrape: int, count: int) -> list:
    return [(series("exporter_sessions", session=f"{scrape}-{i}"), 1.0) for i in range(count)]


def healthy_page(node: str, scrape: int) -> list:
    """A node's steady series and the job it runs now: a new job every scrape is a new series."""
    return [(series("gpu_utilization_ratio", node=node, gpu=str(g)), 0.5) for g in range(8)] + \
        [(series("gpu_job_info", node=node, job_id=str(scrape)), 1.0)]


def test_a_target_churning_series_is_refused_before_it_fills_the_store() -> None:
    """A target may create as many new series in an hour as it may expose in one scrape."""
    store = Store(limits=Limits(max_series_per_target=1_000, max_series_total=1_000_000))
    t = 0
    store.append_scrape("churn", t, churning_page(0, 900))
    store.append_scrape("churn", t + 15_000, churning_page(1, 90))  # 990 new in the hour: allowed
    with pytest.raises(LimitError, match="series churn"):
        store.append_scrape("churn", t + 30_000, churning_page(2, 20))
    assert sessions(store) == 990
    # The same series as before are not new: a steady target is never held to the hourly count.
    store.append_scrape("churn", t + 45_000, churning_page(1, 90))
    # An hour after the first creations the allowance is back.
    store.append_scrape("churn", t + HOUR_MS + 1, churning_page(3, 900))
    assert sessions(store) == 1_890


def test_a_full_store_still_takes_new_series_from_targets_that_hold_little() -> None:
    """Near the store's total, the targets holding more than an equal share are the ones refused:
    one churning target (or a few) cannot take the new jobs of every other node from the cluster."""
    store = Store(limits=Limits(max_series_per_target=2_000, max_series_total=10_000))
    nodes = [f"gpu-{n:03}" for n in range(4)]
    refused = []
    for scrape in range(40):
        t = scrape * HOUR_MS  # an hour apart: the churn allowance alone would let it fill the store
        try:
            store.append_scrape("churn", t, churning_page(scrape, 1_500))
        except LimitError as exc:
            refused.append(str(exc))
        for node in nodes:
            store.append_scrape(node, t, healthy_page(node, scrape))
    assert refused and "share" in refused[-1]
    assert sessions(store) + len(latest(store, "gpu_job_info")) + len(latest(store, "gpu_utilization_ratio")) <= 10_000
    newest_jobs = latest(store, "gpu_job_info", job_id="39")
    assert len(newest_jobs) == 4  # every node's newest job is there


def test_rules_still_record_when_scrapes_have_filled_the_store() -> None:
    """The alerts that say the store is full are rule outputs: they keep a reserve of their own."""
    store = Store(limits=Limits(max_series_per_target=1_000, max_series_total=1_000))
    store.append_scrape("a", 1000, churning_page(0, 1_000))
    with pytest.raises(LimitError):
        store.append_scrape("b", 1000, [(series("up"), 1.0)])
    assert store.append_rule_output("rules:g/0/ALERTS", 1000, [(series("ALERTS", alertname="StoreFull"), 1.0)]) == 1


def test_a_refused_scrape_stores_nothing_and_the_target_shows_why(server: str) -> None:
    """The total was checked series by series while they were appended: a refused scrape left
    part of its series and its timestamp behind, so the scraper's ``up 0`` at the same time was
    out of order and the target's health was never updated."""
    store = Store(limits=Limits(max_series_per_target=1_000, max_series_total=1_000))
    store.append_scrape("other", 1000, churning_page(0, 995))
    PAGES["/metrics"] = "".join(f'node_thing{{n="{i}"}} 1\n' for i in range(10))
    scraper = Scraper(store, lambda: parse_file_sd(json.dumps([{"targets": [server]}]), "nodes"), interval=5)
    try:
        scraper.run_once()
    finally:
        scraper.stop()
    target = scraper.targets_json()[0]
    assert target["health"] == "down"
    assert "series" in target["lastError"]
    assert latest(store, "node_thing") == {}
    assert list(latest(store, "up", job="nodes").values()) == [0.0]


def test_the_store_says_when_it_refuses_series() -> None:
    store = Store(limits=Limits(max_series_per_target=1_000, max_series_total=1_000))
    assert store.problems() == {}
    store.append_scrape("a", 1000, churning_page(0, 1_000))
    with pytest.raises(LimitError):
        store.append_scrape("b", 2000, [(series("up", instance="b"), 1.0)])
    problems = store.problems(now_ms=2000)
    assert "series_limit" in problems and "1,000" in problems["series_limit"]
    assert store.problems(now_ms=2000 + 10 * 60_000) == {}  # a refusal long ago is no longer a problem
    assert store.refused_series == {"total": 1}


def test_a_full_store_is_a_problem_in_ready_and_metrics() -> None:
    """/-/ready and ClusterWatchDegraded read the component's problems."""
    tsdb = EmbeddedTSDB(TSDBConfig(limits=Limits(max_series_per_target=1_000, max_series_total=1_000)))
    now_ms = int(time.time() * 1000)
    tsdb.store.append_scrape("a", now_ms, churning_page(0, 1_000))
    with pytest.raises(LimitError):
        tsdb.store.append_scrape("b", now_ms, [(series("up", instance="b"), 1.0)])
    assert "maximum of 1,000 series" in tsdb.problems()["series_limit"]
    registry = CollectorRegistry()
    for collector in tsdb.component().collectors:
        registry.register(collector)
    exposition = generate_latest(registry).decode()
    assert 'clusterwatch_tsdb_appends_refused_total{reason="total"} 1.0' in exposition
