import math

import numpy as np
import pytest

from tsdb.matchers import EQUAL, NOT_EQUAL, NOT_REGEX, REGEX, LabelMatcher
from tsdb.snapshot import load_snapshot, save_snapshot
from tsdb.store import LimitError, Limits, Store, is_stale, sorted_labels


def L(name: str, **labels: str) -> tuple:
    return sorted_labels([("__name__", name), *labels.items()])


def select(store: Store, *matchers: LabelMatcher, mint: int = 0, maxt: int = 10**13) -> dict:
    return {tuple(sorted(d.labels.items())): (d.timestamps.tolist(), d.values.tolist())
            for d in store.select(list(matchers), mint, maxt)}


NAME_A = LabelMatcher.of(EQUAL, "__name__", "a")


def test_series_missing_from_a_scrape_get_a_stale_marker_then_resume() -> None:
    store = Store()
    store.append_scrape("t", 1000, [(L("a", x="1"), 1.0), (L("a", x="2"), 2.0)])
    store.append_scrape("t", 2000, [(L("a", x="1"), 1.5)])
    store.append_scrape("t", 3000, [(L("a", x="1"), 1.7), (L("a", x="2"), 2.2)])
    got = select(store, NAME_A)
    times, values = got[L("a", x="2")]
    assert times == [1000, 2000, 3000]
    assert values[0] == 2.0 and is_stale(values[1]) and values[2] == 2.2
    assert got[L("a", x="1")] == ([1000, 2000, 3000], [1.0, 1.5, 1.7])


def test_a_target_that_disappears_makes_all_its_series_stale() -> None:
    store = Store()
    store.append_scrape("t", 1000, [(L("a", x="1"), 1.0), (L("up"), 1.0)])
    store.mark_target_gone("t", 5000)
    for times, values in select(store, LabelMatcher.of(REGEX, "__name__", ".+")).values():
        assert times[-1] == 5000 and is_stale(values[-1])


def test_a_series_skipping_scrapes_reads_back_without_padding() -> None:
    store = Store()
    store.append_scrape("t", 1000, [(L("a", x="1"), 1.0), (L("a", x="2"), 2.0)])
    for t in (2000, 3000, 4000):
        store.append_scrape("t", t, [(L("a", x="1"), 1.0)])
    store.append_scrape("t", 5000, [(L("a", x="1"), 1.0), (L("a", x="2"), 5.0)])
    times, values = select(store, LabelMatcher.of(EQUAL, "x", "2"))[L("a", x="2")]
    assert times == [1000, 2000, 5000] and values[2] == 5.0  # 2000 is the stale marker


def test_matchers_follow_prometheus_semantics() -> None:
    store = Store()
    store.append_scrape("t", 1000, [(L("a", x="1"), 1.0), (L("a", x="2"), 2.0), (L("a"), 3.0)])
    assert len(select(store, NAME_A, LabelMatcher.of(NOT_EQUAL, "x", "1"))) == 2  # missing label is ""
    assert len(select(store, NAME_A, LabelMatcher.of(EQUAL, "x", ""))) == 1
    assert len(select(store, NAME_A, LabelMatcher.of(REGEX, "x", "1|2"))) == 2
    assert len(select(store, NAME_A, LabelMatcher.of(REGEX, "x", "1|"))) == 2  # anchored; "" matches no label
    assert len(select(store, NAME_A, LabelMatcher.of(NOT_REGEX, "x", "."))) == 1
    assert len(select(store, NAME_A, LabelMatcher.of(REGEX, "x", "1."))) == 0


def test_retention_drops_old_samples_and_empty_series() -> None:
    store = Store(retention_s=60)
    store.append_scrape("t", 0, [(L("a", x="old"), 1.0), (L("a", x="new"), 1.0)])
    for t in range(10_000, 130_000, 10_000):
        store.append_scrape("t", t, [(L("a", x="new"), float(t))])
    store.apply_retention()
    got = select(store, NAME_A)
    assert L("a", x="old") not in got
    assert got[L("a", x="new")][0][0] >= 120_000 - 60_000
    assert store.min_time_ms == 60_000


def test_limits_reject_the_whole_scrape_with_a_clear_error() -> None:
    store = Store(limits=Limits(max_series_per_target=2))
    with pytest.raises(LimitError, match="exposes 3 series, more than the limit of 2"):
        store.append_scrape("t", 1000, [(L("a", x=str(i)), 1.0) for i in range(3)])
    assert store.stats()["series"] == 0
    store = Store(limits=Limits(max_series_per_target=0, max_label_values_per_target=3))
    with pytest.raises(LimitError, match="label 'x' has more than 3 values"):
        store.append_scrape("t", 1000, [(L("a", x=str(i)), 1.0) for i in range(5)])
    store = Store(limits=Limits(max_series_total=2))
    store.append_scrape("t", 1000, [(L("a", x="1"), 1.0), (L("a", x="2"), 1.0)])
    with pytest.raises(LimitError, match="maximum of 2 series"):
        store.append_scrape("u", 1000, [(L("b"), 1.0)])


def test_a_jobs_own_series_limit_holds_for_its_targets_only() -> None:
    """One fabric collector exposes every cable of a fabric: its job gets its own limit (series and
    label values), while any other target keeps the default."""
    store = Store(limits=Limits(max_series_per_target=2, max_label_values_per_target=2,
                                series_per_target_by_job=(("clusterwatch-fabric", 5),)))
    five = [(L("a", x=str(i)), 1.0) for i in range(5)]
    assert store.append_scrape("fabric", 1000, five, job="clusterwatch-fabric") == 5
    with pytest.raises(LimitError, match="more than the limit of 5"):
        store.append_scrape("fabric", 2000, five + [(L("a", x="5"), 1.0)], job="clusterwatch-fabric")
    with pytest.raises(LimitError, match="more than the limit of 2"):
        store.append_scrape("node", 1000, five, job="gpu-nodes")


def test_rule_outputs_are_not_held_to_a_scrape_targets_limits() -> None:
    """A per-node recording rule over 16,384 nodes has 16,384 ``instance`` values: scrape limits
    rejected every evaluation of it (a group's own ``limit`` bounds rule outputs)."""
    store = Store(limits=Limits(max_series_per_target=3, max_label_values_per_target=3, max_series_total=10))
    assert store.append_rule_output("rules:g/0/r", 1000, [(L("r", instance=str(i)), 1.0) for i in range(5)]) == 5
    assert store.append_rule_output("rules:g/0/r", 2000, [(L("r", instance="0"), 2.0)]) == 1
    assert is_stale(store.select([LabelMatcher.of(EQUAL, "instance", "4")], 0, 3000)[0].values[-1])
    # The store's own bound still holds, with the reserve of a tenth above it that rules may use.
    assert store.append_rule_output("rules:g/1/q", 1000, [(L("q", instance=str(i)), 1.0) for i in range(6)]) == 6
    with pytest.raises(LimitError, match="maximum of 10 series and its reserve"):
        store.append_rule_output("rules:g/2/s", 1000, [(L("s"), 1.0)])


def test_samples_of_a_scrape_share_one_timestamp_column() -> None:
    store = Store()
    series = [(L("gpu_util", gpu=str(i)), 0.5) for i in range(1000)]
    for t in range(100):
        store.append_scrape("t", t * 5000, series)
    stats = store.stats()
    assert stats["samples"] == 100_000
    assert stats["sample_bytes"] / stats["samples"] < 8.01  # 8 bytes of value + a shared timestamp


def test_snapshot_round_trip_then_scraping_continues(tmp_path) -> None:
    store = Store()
    store.append_scrape("t", 1000, [(L("a", x="1"), 1.0), (L("a", x="2"), 2.0)])
    store.append_scrape("t", 2000, [(L("a", x="1"), math.nan)])
    save_snapshot(store, tmp_path / "snap.npz")
    restored = Store()
    assert load_snapshot(restored, tmp_path / "snap.npz").series == 2
    restored.append_scrape("t", 3000, [(L("a", x="1"), 3.0)])
    times, values = select(restored, NAME_A)[L("a", x="1")]
    assert times == [1000, 2000, 3000] and math.isnan(values[1]) and not is_stale(values[1])
    _, values = select(restored, NAME_A)[L("a", x="2")]
    assert is_stale(values[1])
    assert np.isfinite(values[0])


def test_stats_count_series_at_once_and_walk_the_samples_at_most_every_half_minute(monkeypatch) -> None:
    """Counting samples walks every series (~0.1 s at 130,000), and self-ingest asks at every
    scrape interval: on the demo, scraping every 5 s, it was an eighth of the server's time under
    the interpreter lock. The sample figures may be half a minute old; the series and targets
    held are counted at every call."""
    import tsdb.store as store_module
    clock = [1000.0]
    monkeypatch.setattr(store_module.time, "monotonic", lambda: clock[0])
    store = Store()
    store.append_scrape("t", 1000, [(L("a", x="1"), 1.0)])
    assert store.stats() == {"series": 1, "targets": 1, "samples": 1, "sample_bytes": 16}
    store.append_scrape("u", 2000, [(L("a", x="2"), 1.0), (L("a", x="3"), 1.0)])
    clock[0] += store_module.STATS_MAX_AGE_S - 1
    assert store.stats() == {"series": 3, "targets": 2, "samples": 1, "sample_bytes": 16}
    clock[0] += 1
    assert store.stats() == {"series": 3, "targets": 2, "samples": 3, "sample_bytes": 40}
