"""Engine semantics as data: input series in promtool notation (one sample a minute from 0),
a query at a time, the expected {labels: value}."""
import math

import pytest

from tests.tsdb.helpers import load
from tsdb.promql.engine import Engine
from tsdb.promql.values import PromQLError

SERIES = {
    'gpu_util{instance="n1",gpu="0"}': "0+0.1x10",
    'gpu_util{instance="n1",gpu="1"}': "1x10",
    'gpu_util{instance="n2",gpu="0"}': "0.5x4 stale",
    'energy_total{instance="n1"}': "0+60x5 0+60x4",  # resets at minute 6
    'job_info{instance="n1",gpu="0",job_id="7"}': "1x10",
    'job_info{instance="n1",gpu="1",job_id="7"}': "1x10",
}
ENGINE = Engine(load(SERIES))


def run(query: str, at: float) -> dict:
    result = ENGINE.instant(query, at)
    if result.result_type == "scalar":
        return {"scalar": result.scalar}
    return {tuple(sorted(s.labels.items())): s.value for s in result.series}


CASES = [
    # query, time (s), expected {labels: value}
    ('gpu_util{gpu="0"}', 150, {(("__name__", "gpu_util"), ("gpu", "0"), ("instance", "n1")): 0.2,
                                 (("__name__", "gpu_util"), ("gpu", "0"), ("instance", "n2")): 0.5}),
    # stale marker at 300 s: the series is gone at once, not after the 5 m lookback
    ('gpu_util{instance="n2"}', 299, {(("__name__", "gpu_util"), ("gpu", "0"), ("instance", "n2")): 0.5}),
    ('gpu_util{instance="n2"}', 300, {}),
    # lookback: the last sample (600 s) is still seen at 900 s, not after
    ('gpu_util{instance="n1",gpu="1"}', 900, {(("__name__", "gpu_util"), ("gpu", "1"), ("instance", "n1")): 1.0}),
    ('gpu_util{instance="n1",gpu="1"}', 901, {}),
    ("avg by (instance) (gpu_util)", 120, {(("instance", "n1"),): 0.6, (("instance", "n2"),): 0.5}),
    ('gpu_util{gpu="0"} offset 1m', 120, {(("__name__", "gpu_util"), ("gpu", "0"), ("instance", "n1")): 0.1,
                                         (("__name__", "gpu_util"), ("gpu", "0"), ("instance", "n2")): 0.5}),
    ('gpu_util{instance="n1",gpu="0"} @ 300', 600, {(("__name__", "gpu_util"), ("gpu", "0"), ("instance", "n1")): 0.5}),
    # the window holds 240 300 | 0 60 120 180: the reset adds back the 300 lost
    ('increase(energy_total[5m])', 540, {(("instance", "n1"),): 240.0}),
    ('resets(energy_total[10m])', 540, {(("instance", "n1"),): 1.0}),
    ("sum by (job_id) (job_info * on(instance, gpu) group_left gpu_util)", 300, {(("job_id", "7"),): 1.5}),
    ("count(gpu_util > 0.5)", 300, {(): 1.0}),
    ("scalar(sum(gpu_util))", 60, {"scalar": 1.6}),
    ('absent(gpu_util{instance="n9"})', 60, {(("instance", "n9"),): 1.0}),
    ("max_over_time(gpu_util{gpu=\"0\",instance=\"n1\"}[10m:2m])", 600, {(("gpu", "0"), ("instance", "n1")): 1.0}),
    ("histogram_quantile(0.5, gpu_util)", 60, {}),
]


@pytest.mark.parametrize("query, at, expected", CASES)
def test_semantics(query: str, at: float, expected: dict) -> None:
    got = run(query, at)
    assert set(got) == set(expected)
    for key, value in expected.items():
        assert math.isclose(got[key], value, rel_tol=1e-9), (key, got[key], value)


@pytest.mark.parametrize("query, error_type, message", [
    ("sum(gpu_util", "bad_data", "parse error: unclosed left parenthesis"),
    ('{gpu=""}', "bad_data", "at least one non-empty matcher"),
    ("gpu_util + on() gpu_util", "execution", "many-to-many matching not allowed"),
    ("job_info * on(instance) gpu_util", "execution", "many-to-many matching not allowed"),
    ('label_replace(gpu_util, "1x", "", "gpu", ".*")', "execution", "invalid destination label name"),
])
def test_errors_have_prometheus_types(query: str, error_type: str, message: str) -> None:
    with pytest.raises(PromQLError) as caught:
        ENGINE.instant(query, 120)
    assert caught.value.error_type == error_type and message in caught.value.message


def test_range_query_points_and_limits() -> None:
    result = ENGINE.range('gpu_util{instance="n2"}', 0, 600, 60)
    assert result.result_type == "matrix"
    assert result.series[0].timestamps == [0.0, 60.0, 120.0, 180.0, 240.0]  # stale at 300 ends it
    with pytest.raises(PromQLError, match="exceeded maximum resolution of 11,000 points"):
        ENGINE.range("gpu_util", 0, 100_000, 1)
    with pytest.raises(PromQLError, match="zero or negative query resolution"):
        ENGINE.range("gpu_util", 0, 100, 0)
    with pytest.raises(PromQLError, match='invalid expression type "range vector"'):
        ENGINE.range("gpu_util[5m]", 0, 100, 10)


@pytest.mark.parametrize("query", [
    'gpu_util{instance="n9"} + on(instance) gpu_util',  # nothing on the left, duplicates on the right
    'gpu_util{instance="n9"} * on(instance) group_left job_info',
    'job_info * on(instance) group_right gpu_util{instance="n9"}',
])
def test_no_many_to_many_error_when_one_side_is_empty(query: str) -> None:
    """Prometheus returns nothing at once when either side of a vector match is empty, before it
    looks for duplicates on the one side: a rule joining on a series that is absent for a while (a
    job's info between jobs) must not fail meanwhile. Found by comparing random queries with
    Prometheus 2.42."""
    assert ENGINE.instant(query, 120).series == []


def test_the_one_side_may_repeat_at_a_step_where_the_other_side_is_empty() -> None:
    repeated_early = {'rhs{instance="n1",gpu="0"}': "1x10", 'rhs{instance="n1",gpu="1"}': "1x3 stale"}
    late = Engine(load({'lhs{instance="n1"}': "_x5 1x5", **repeated_early}))  # lhs from minute 6
    (series,) = late.range("lhs + on(instance) rhs", 0, 600, 60).series
    assert series.timestamps == [360.0, 420.0, 480.0, 540.0, 600.0] and set(series.values) == {2.0}
    always = Engine(load({'lhs{instance="n1"}': "1x10", **repeated_early}))
    with pytest.raises(PromQLError, match="many-to-many matching not allowed"):
        always.range("lhs + on(instance) rhs", 0, 600, 60)


def test_stddev_and_stdvar_of_one_sample_are_zero_even_when_it_is_not_finite() -> None:
    """Prometheus's running variance starts at 0 and adds nothing for the first sample, so a group
    of one is 0 whatever its value (a NaN from deriv over a gap, an Inf); a NaN among several
    makes the group NaN. Found by comparing random queries with Prometheus 2.42."""
    engine = Engine(load({'v{i="nan"}': "NaN", 'v{i="inf"}': "Inf", 'v{i="one"}': "1",
                          'w{i="a"}': "NaN", 'w{i="b"}': "1"}))
    for op in ("stddev", "stdvar"):
        alone = {s.labels["i"]: s.value for s in engine.instant(f"{op} by (i) (v)", 0).series}
        assert alone == {"nan": 0.0, "inf": 0.0, "one": 0.0}
        (together,) = engine.instant(f"{op}(w)", 0).series
        assert math.isnan(together.value)


def test_instant_matrix_selector_and_scalar_results() -> None:
    matrix = ENGINE.instant('gpu_util{instance="n1",gpu="0"}[2m]', 120)
    assert matrix.result_type == "matrix" and matrix.series[0].timestamps == [0.0, 60.0, 120.0]
    assert ENGINE.instant("1 + 2", 5).scalar == 3.0
    assert ENGINE.instant('"text"', 5).string == "text"
