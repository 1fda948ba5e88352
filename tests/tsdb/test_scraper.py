"""The scraper against a real HTTP server on 127.0.0.1: file_sd targets with __metrics_path__
and instance labels, report series, staleness, and up=0 on a malformed page."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from tsdb.discovery import DiscoveryError, FileSD, parse_file_sd
from tsdb.scraper import Scraper
from tests.tsdb.scrape_pages import PAGES, latest
from tsdb.store import Limits, Store, is_stale


def write_sd(path: Path, groups: list) -> None:
    path.write_text(json.dumps(groups))
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # a visible change


def test_file_sd_targets_paths_instance_and_report_series(server: str, tmp_path: Path) -> None:
    PAGES["/nodes/gpu-001/metrics"] = 'gpu_util{gpu="0",instance="exported"} 0.5\ngpu_util{gpu="1"} 0.25\n'
    sd = tmp_path / "targets.json"
    write_sd(sd, [{"targets": [server], "labels": {"__metrics_path__": "/nodes/gpu-001/metrics",
                                                   "instance": "gpu-001", "rack": "r1"}}])
    store = Store()
    scraper = Scraper(store, FileSD([str(sd)], "fleet").targets, interval=5)
    try:
        scraper.run_once()
    finally:
        scraper.stop()
    util = latest(store, "gpu_util")
    assert util[(("__name__", "gpu_util"), ("exported_instance", "exported"), ("gpu", "0"), ("instance", "gpu-001"),
                 ("job", "fleet"), ("rack", "r1"))] == 0.5
    up = latest(store, "up")
    assert up == {(("__name__", "up"), ("instance", "gpu-001"), ("job", "fleet"), ("rack", "r1")): 1.0}
    assert list(latest(store, "scrape_samples_scraped").values()) == [2.0]
    assert list(latest(store, "scrape_duration_seconds").values())[0] > 0
    target = scraper.targets_json()[0]
    assert target["health"] == "up" and target["scrapeUrl"].endswith("/nodes/gpu-001/metrics")


def test_malformed_page_sets_up_0_and_makes_series_stale(server: str) -> None:
    PAGES["/metrics"] = "gpu_util 1\n"
    store = Store()
    scraper = Scraper(store, lambda: parse_file_sd(json.dumps([{"targets": [server]}]), "j"), interval=5)
    try:
        scraper.run_once()
        PAGES["/metrics"] = "gpu_util{gpu=0} 1\n"
        time.sleep(0.002)  # a scrape is stamped with its start to the ms: two in one ms are out of order
        scraper.run_once()
    finally:
        scraper.stop()
    assert list(latest(store, "up").values()) == [0.0]
    assert is_stale(list(latest(store, "gpu_util").values())[0])
    assert "malformed labels" in scraper.targets_json()[0]["lastError"]


def test_limit_exceeded_and_unreachable_targets_are_down_not_fatal(server: str) -> None:
    PAGES["/metrics"] = "".join(f'gpu_util{{gpu="{i}"}} 1\n' for i in range(10))
    store = Store(limits=Limits(max_series_per_target=5))
    targets = parse_file_sd(json.dumps([{"targets": [server, "127.0.0.1:1"]}]), "j")
    scraper = Scraper(store, lambda: targets, interval=5, timeout=2)
    try:
        scraper.run_once()
    finally:
        scraper.stop()
    errors = {t["labels"]["instance"]: t["lastError"] for t in scraper.targets_json()}
    assert "more than the limit of 5" in errors[server]
    assert errors["127.0.0.1:1"]
    assert set(latest(store, "up").values()) == {0.0}
    assert latest(store, "gpu_util") == {}


def test_target_leaving_file_sd_goes_stale_and_bad_file_keeps_targets(server: str, tmp_path: Path) -> None:
    PAGES["/metrics"] = "gpu_util 1\n"
    sd = tmp_path / "targets.json"
    write_sd(sd, [{"targets": [server]}])
    discovery = FileSD([str(sd)], "j")
    store = Store()
    scraper = Scraper(store, discovery.targets, interval=5)
    try:
        scraper.run_once()
        sd.write_text("{not json")
        assert len(discovery.targets()) == 1 and "cannot parse" in next(iter(discovery.errors.values()))
        write_sd(sd, [])
        scraper.run_once()
    finally:
        scraper.stop()
    assert is_stale(list(latest(store, "gpu_util").values())[0])
    assert is_stale(list(latest(store, "up").values())[0])


def test_file_sd_rejects_wrong_shapes() -> None:
    with pytest.raises(DiscoveryError, match="list of target groups"):
        parse_file_sd('{"targets": []}', "j")
    with pytest.raises(DiscoveryError, match="labels"):
        parse_file_sd('[{"targets": ["a:1"], "labels": {"x": 1}}]', "j")
