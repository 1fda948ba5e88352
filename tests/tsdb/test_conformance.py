"""PromQL conformance against a real Prometheus 2.42 over both HTTP APIs.

One deterministic OpenMetrics file is backfilled into Prometheus with ``promtool tsdb
create-blocks-from openmetrics`` and loaded into ``clusterwatch serve --import-openmetrics``;
every query of the corpus runs at fixed instants, and every vector/scalar one also as a range
query, on both. Every query must agree except those listed in KNOWN_DIFFERENCES, each with its
reason (and in docs/promql.md); a listed query that agrees again fails too, so the list stays true.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.tsdb.conformance import compare_everywhere, corpus, start_pair

# Corpus queries whose answer may differ from Prometheus 2.42: query -> why (empty: every query agrees).
KNOWN_DIFFERENCES: dict[str, str] = {}


def test_corpus_is_large_enough() -> None:
    queries = corpus()
    assert len(queries) >= 300
    assert len(set(queries)) == len(queries), "duplicate queries in the corpus"
    assert set(KNOWN_DIFFERENCES) <= set(queries), "known differences that are not in the corpus"
    assert all(reason.strip() for reason in KNOWN_DIFFERENCES.values()), "a known difference without its reason"


@pytest.mark.real_component
def test_conformance_with_prometheus(tmp_path: Path, process_factory) -> None:
    our_client, prom_client = start_pair(tmp_path, process_factory)

    failures: dict[str, str] = {}
    total = 0
    for query in corpus():
        problems = compare_everywhere(our_client, prom_client, query)
        total += 1
        if problems:
            failures[query] = f"{query}\n    " + "\n    ".join(problems)
    passed = total - len(failures)
    print(f"\nPromQL conformance: {passed}/{total} queries agree ({passed / total:.1%}), "
          f"{len(KNOWN_DIFFERENCES)} known differences")
    for query, failure in failures.items():
        print(f"{'KNOWN' if query in KNOWN_DIFFERENCES else 'FAIL'} {failure}")
    unexpected = [failure for query, failure in failures.items() if query not in KNOWN_DIFFERENCES]
    assert not unexpected, (f"{len(unexpected)} queries differ from Prometheus (fix them, or list them with the "
                            "reason in KNOWN_DIFFERENCES and docs/promql.md):\n" + "\n".join(unexpected))
    agree_now = sorted(set(KNOWN_DIFFERENCES) - set(failures))
    assert not agree_now, f"listed in KNOWN_DIFFERENCES but agreeing now (remove them): {agree_now}"
