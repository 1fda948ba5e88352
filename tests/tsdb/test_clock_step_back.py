"""The server's clock stepped back by more than a minute (a clock that ran ahead corrected by NTP's
step at boot, a VM's clock set back): what the store holds stamped ahead of the clock came from a
clock that was wrong, and keeping it must not blind the watcher.

Observed before: every target's last sample was ahead of the clock, so each scrape, each rule
output and the server's own health were refused as out of order until the clock passed them
again: an hour's step meant an hour with nothing stored, no alert able to fire (every rule read
nothing), and ClusterWatchDegraded, which reads the server's own health from the store, silent
too. Only ``/-/ready`` (still 200) said anything.

Now the store drops what is stamped more than a minute ahead of the clock, once, for every
target (said in ``/-/ready`` and counted), and the append goes on; the write-ahead log records
the drop, so a restart gives the same store back. A smaller step is still a skip (it passes by
itself within the minute). Alerts pending since a time ahead of the clock count their ``for``
from now."""
from __future__ import annotations

import time
from pathlib import Path

from alerts.evaluator.alerting import FIRING, AlertingRule
from alerts.evaluator.manager import RuleEvaluator
from alerts.evaluator.rulefile import Group, Rule
from alerts.model import Alert
from alerts.notify.dispatch import Dispatcher
from tests.alerts.notify_support import config
from tsdb.client import LocalQueryClient
from tsdb.promql.engine import Engine
from tests.tsdb.scrape_pages import PAGES, latest
from tsdb.component import EmbeddedTSDB, TSDBConfig
from tsdb.discovery import static_targets
from tsdb.matchers import EQUAL, LabelMatcher
from tsdb.scraper import Scraper
from tsdb.selfmetrics import TSDBCollector
from tsdb.store import Store

HOUR_MS = 3_600_000


def series(name: str, **labels: str) -> tuple:
    return tuple(sorted({"__name__": name, **labels}.items()))


def times_of(store: Store, name: str) -> list[int]:
    found = store.select([LabelMatcher.of(EQUAL, "__name__", name)], 0, 2**62)
    return sorted(int(t) for d in found for t in d.timestamps)


def scraped_across_a_step(server: str, ahead_ms: int) -> tuple[Store, Scraper, int]:
    """A target scraped, then samples stored an hour after it, ``ahead_ms`` ahead of the clock the
    store judges by (by a clock that ran fast and has since been corrected: its own and a rule's),
    then scraped again; and that time. The scrapes are stamped an hour before it whatever the
    machine's pace, so a slow run cannot pass the step."""
    PAGES["/metrics"] = "gpu_temperature_celsius 40\n"
    store = Store(clock=lambda: time.time() + (HOUR_MS - ahead_ms) / 1000)
    scraper = Scraper(store, lambda: static_targets([server], "node"), interval=5)
    try:
        scraper.run_once()
        key = scraper.health()[0].target.key
        ahead = round(time.time() * 1000) + HOUR_MS
        store.append_scrape(key, ahead, [(series("gpu_temperature_celsius", instance=server, job="node"), 99.0)])
        store.append_rule_output("rules:g/0/r", ahead, [(series("node:hot", instance=server), 1.0)])
        PAGES["/metrics"] = "gpu_temperature_celsius 41\n"
        scraper.run_once()
    finally:
        scraper.stop()
    return store, scraper, ahead


def test_a_step_back_within_a_minute_is_a_skip_not_a_crash_of_the_scrape(server: str) -> None:
    """Before row 30 of docs/reliability.md: each scrape older than the target's last one was
    refused by the store, and then the ``up 0`` written at the same time; the scrape thread raised
    and logged a traceback per target per interval, and the targets kept their old health. Now a
    step of under a minute is the server's problem, said in /-/ready, and waited out."""
    store, scraper, ahead = scraped_across_a_step(server, 30_000)
    assert scraper.targets_json()[0]["health"] == "up"
    assert scraper.skipped["clock_went_back"] == 1
    assert "clock" in scraper.problems()["scrapes_skipped_clock_went_back"]
    assert list(latest(store, "gpu_temperature_celsius").values()) == [99.0]
    assert "clock_went_back" not in store.problems()


def test_after_a_step_back_scrapes_are_stored_at_once_and_the_future_is_dropped(server: str) -> None:
    store, scraper, ahead = scraped_across_a_step(server, HOUR_MS)
    assert list(latest(store, "gpu_temperature_celsius").values()) == [41.0]
    assert all(t < ahead - HOUR_MS / 2 for t in times_of(store, "gpu_temperature_celsius"))
    assert times_of(store, "node:hot") == [], "every target's samples ahead of the clock go, not only this one's"
    assert scraper.skipped.get("clock_went_back", 0) == 0
    problem = store.problems()["clock_went_back"]
    assert "3600 s ahead of this server's clock were dropped" in problem
    exposed = {m.name: m for m in TSDBCollector(store, EmbeddedTSDB(TSDBConfig()).engine, None).collect()}
    assert exposed["clusterwatch_tsdb_clock_steps_back"].samples[0].value == 1
    # The two samples, and the stale markers the hour-ahead scrape wrote for the series it lacked
    # (up, scrape_duration_seconds, scrape_samples_scraped).
    assert exposed["clusterwatch_tsdb_samples_dropped_ahead_of_clock"].samples[0].value == 5


def test_the_drop_is_in_the_write_ahead_log_and_a_restart_gives_the_same_store(tmp_path: Path) -> None:
    wall = [1_700_000_000.0]
    config = TSDBConfig(snapshot_path=str(tmp_path / "store.npz"), retention_s=1e11)
    tsdb = EmbeddedTSDB(config, clock=lambda: wall[0])
    tsdb.load()
    t0 = round(wall[0] * 1000)
    tsdb.store.append_scrape("a", t0, [(series("temp", i="a"), 40.0)])
    tsdb.store.append_scrape("a", t0 + HOUR_MS, [(series("temp", i="a"), 41.0)])
    wall[0] += 15
    tsdb.store.append_scrape("a", t0 + 15_000, [(series("temp", i="a"), 42.0)])  # no crash: the log has it all
    assert times_of(tsdb.store, "temp") == [t0, t0 + 15_000]
    again = EmbeddedTSDB(config, clock=lambda: wall[0])
    again.load()
    assert times_of(again.store, "temp") == [t0, t0 + 15_000]


def test_an_alert_pending_since_a_time_ahead_of_the_clock_counts_its_for_from_now() -> None:
    rule = AlertingRule(Rule("alert", "GpuHot", "gpu_temperature_celsius > 90", for_s=60))
    hot = [({"instance": "gpu-001"}, 95.0)]
    t = 1_700_000_000.0
    rule.eval(t + 3600, hot)  # pending since an hour ahead of the clock that is corrected next
    rule.eval(t, hot)
    out = dict(rule.eval(t + 60, hot))
    assert [alert.state for alert in rule.active.values()] == [FIRING], "firing a minute after the step, not an hour"
    assert out[(("__name__", "ALERTS_FOR_STATE"), ("alertname", "GpuHot"), ("instance", "gpu-001"))] == t
    assert [a.starts_at for a in rule.to_send(t + 60, resend_delay=60, interval=15)] == [t + 60]


def test_the_scrape_loop_scrapes_within_an_interval_of_a_step_back() -> None:
    """Each target's next scrape was due an interval after its last, by the clock: after an hour's
    step back, an hour away. The scraper stopped scraping, and the store's fix above never ran."""
    scraper = Scraper(Store(), lambda: static_targets(["127.0.0.1:9"], "node"), interval=5)
    t = 1_700_000_000.0
    try:
        assert len(scraper.due(t + 3600)) + len(scraper.due(t + 3605)) == 1  # the clock an hour fast
        scraped = [len(scraper.due(t + step)) for step in (0, 2.5, 5)]  # corrected
    finally:
        scraper.stop()
    assert sum(scraped) >= 1, "no scrape due within an interval of the step back"


def test_rule_groups_evaluate_within_an_interval_of_a_step_back() -> None:
    t = 1_700_000_010.0
    wall = [t + 3600]  # the clock an hour fast
    store = Store(retention_s=1e11, clock=lambda: wall[0])
    group = Group("g", "f.yml", [Rule("record", "one", "vector(1)", group="g")], interval_s=15)
    evaluator = RuleEvaluator([group], LocalQueryClient(Engine(store)), writer=store.append_rule_output,
                              clock=lambda: wall[0])
    evaluator.run_due(wall[0])
    wall[0] = t  # corrected
    evaluator.run_due(wall[0])
    runtime = evaluator.groups[0]
    assert runtime.evaluations == 2 and runtime.failures == 0 and runtime.next_due <= t + 15
    assert times_of(store, "one") == [round(t * 1000)], "the output stored at once, the hour-fast one dropped"


def test_notification_groups_flush_within_their_interval_of_a_step_back() -> None:
    route = config("""
route: {receiver: hook, group_by: [alertname], group_wait: 30s, group_interval: 5m}
receivers: [{name: hook, webhook_configs: [{url: "http://127.0.0.1:9/"}]}]
""").route
    flushed: list[float] = []
    dispatcher = Dispatcher(route, lambda group, alerts, now: flushed.append(now) or True)
    t = 1_700_000_000.0
    dispatcher.put([Alert({"alertname": "GpuHot"}, starts_at=t + 3600)], t + 3600)  # the clock an hour fast
    dispatcher.tick(t + 3630)
    dispatcher.put([Alert({"alertname": "GpuHot", "gpu": "1"}, starts_at=t)], t)  # corrected: a new alert
    for step in range(0, 301, 30):
        dispatcher.tick(t + step)
    assert len(flushed) == 2, "the group's next flush was an hour away"
