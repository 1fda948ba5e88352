"""Windowed functions over a range selector hold a bounded part of its samples at once (issue 17,
item 4): a day of every GPU's utilisation for the overview's idle window was one matrix of all of
it (~3 GB at 131,072 GPUs); now the engine reads and applies a part of the series at a time when
all of them would exceed ``WINDOW_SAMPLES_AT_ONCE``, with the same answers."""
from __future__ import annotations

import math
import tracemalloc

import numpy as np
import pytest

from tests.tsdb.helpers import load
from tsdb.promql import evaluator
from tsdb.promql.engine import Engine
from tsdb.promql.limits import WINDOW_SAMPLES_AT_ONCE
from tsdb.store import Store, TimeColumn, sorted_labels

DAY_MINUTES = 1440
# The bound docs/dashboard.md and docs/reliability.md state for one windowed function's read.
BOUND_BYTES = 64 * 2**20


def _fleet_day(gpus: int, nodes_per_column: int = 8) -> Store:
    """``gpus`` utilisation series, a sample a minute for a day; 8 GPUs per node share its
    timestamps, as one target's series do."""
    store = Store(retention_s=10 * 365 * 86400)
    times = [i * 60_000 for i in range(DAY_MINUTES + 1)]
    rng = np.random.default_rng(1)
    column = None
    for i in range(gpus):
        if i % nodes_per_column == 0:
            column = TimeColumn()
            column.ts.extend(times)
        labels = sorted_labels([("__name__", "gpu_utilization_ratio"), ("instance", f"n{i // 8:05d}"),
                                ("gpu", str(i % 8))])
        store.append_series(labels, times, rng.random(len(times)).tolist(), column)
    return store


def test_a_day_of_every_gpu_is_read_in_bounded_memory() -> None:
    """10,000 GPUs over 24 h: 14.4 M samples, 115 MB of values in the store; the whole window
    as one matrix (with its timestamps and the store's copy) peaked at ~350 MB."""
    gpus = 10_000
    store = _fleet_day(gpus)
    assert gpus * DAY_MINUTES > 5 * WINDOW_SAMPLES_AT_ONCE  # the read is well over what is held at once
    engine = Engine(store)
    engine.instant("count(gpu_utilization_ratio)", DAY_MINUTES * 60)  # the selection cached, as on a live server
    tracemalloc.start()
    try:
        result = engine.instant("max_over_time(gpu_utilization_ratio[24h])", DAY_MINUTES * 60)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(result.series) == gpus
    assert peak < BOUND_BYTES, f"peak {peak / 2**20:.0f} MiB"


QUERIES = ["max_over_time(u[2h])", "avg_over_time(u[2h])", "sum_over_time(u[90m])", "count_over_time(u[2h])",
           "quantile_over_time(0.5, u[2h])", "rate(c[30m])", "increase(c[1h])", "last_over_time(u[2h])",
           "max_over_time({__name__=~\"u|v\"}[1h])", "deriv(u[1h])"]


@pytest.mark.parametrize("query", QUERIES)
def test_a_read_in_parts_answers_as_a_read_at_once(query: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Instant and range queries; series that start late, restart or stop early."""
    series = {**{f'u{{instance="n{i}",gpu="{g}"}}': f"{i}+0.5x180" for i in range(7) for g in range(3)},
              **{f'v{{instance="n{i}"}}': "_x60 1+1x120" for i in range(5)},
              **{f'c{{instance="n{i}"}}': "0+10x100 0+10x60" for i in range(6)}}
    store = load(series)
    whole = Engine(store)
    expected = [whole.instant(query, 150 * 60), whole.range(query, 20 * 60, 170 * 60, 600)]
    monkeypatch.setattr(evaluator, "WINDOW_SAMPLES_AT_ONCE", 50)  # a part of a few series at a time
    parts = Engine(store)
    got = [parts.instant(query, 150 * 60), parts.range(query, 20 * 60, 170 * 60, 600)]
    for want, have in zip(expected, got):
        assert _samples(have) == _samples(want)
        assert len(want.series) > 3


def _samples(result) -> dict:
    return {tuple(sorted(s.labels.items())): [(t, round(v, 9) if math.isfinite(v) else str(v))
                                             for t, v in zip(s.timestamps, s.values)]
            for s in result.series}
