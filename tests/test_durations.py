"""Durations ClusterWatch writes into PromQL (a view's range selector, a rule's window) must be
spellings PromQL reads back as the same time: ``f"{seconds:g}s"`` wrote 1,000,000 s as ``1e+06s``,
so the dashboard's views over a range of 11.6 days or more, and the job page of a job that ran
that long, answered 502."""
from __future__ import annotations

import promql_parser as pp
import pytest

from cwkernel.durations import format_duration, parse_duration


@pytest.mark.parametrize("seconds", [0.25, 1, 59, 90, 3600, 5400, 86400, 999_999, 1_000_000, 1_080_123,
                                     31 * 86400 + 7, 12.5, 2_678_400.5])
def test_every_spelling_is_a_promql_duration_of_the_same_time(seconds):
    text = format_duration(seconds)
    selector = pp.parse(f"up[{text}]")
    assert selector.range.total_seconds() == pytest.approx(round(seconds * 1000) / 1000)
    assert parse_duration(text) == pytest.approx(round(seconds * 1000) / 1000)
