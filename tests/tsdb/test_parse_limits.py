"""A query that would be expensive to parse is refused before parsing, with a bad_data that names
the limit; what is accepted is parsed cheaply and large trees are not kept (issue 14, finding 3)."""
from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.tsdb.helpers import load
from tsdb.promql.engine import Engine
from tsdb.promql.values import PromQLError

ROOT = Path(__file__).resolve().parents[2]
ENGINE = Engine(load({'up{job="a"}': "1x10", 'up{job="b"}': "0x10"}))


def _refusal(query: str) -> str:
    with pytest.raises(PromQLError) as caught:
        ENGINE.instant(query, 60)
    assert caught.value.error_type == "bad_data"
    return caught.value.message


@pytest.mark.parametrize("query, names", [
    ("+".join(["1"] * 3000), "too many operators: 2,999 (the limit is 256)"),  # the 6 KB bomb: 5 s, 1.25 GB
    (" and ".join(["up"] * 300), "too many operators: 299"),
    ("(" * 1000 + "1" + ")" * 1000, "nested too deeply: more than 64 levels"),
    ("abs(" * 100 + "up" + ")" * 100, "nested too deeply"),
    ("+".join(["(" * 30 + "up" + ")" * 30] * 200), "too complex to parse"),  # 160 MB to parse
    ('up{job="' + "x" * 300_000 + '"}', "too long: 300,010 characters"),
])
def test_expensive_queries_are_refused_naming_the_limit(query: str, names: str) -> None:
    assert names in _refusal(query)


def test_what_is_inside_strings_and_comments_does_not_count() -> None:
    alternation = "|".join(f"(n{i}|m{i})+" for i in range(2000))  # 2,000 groups and operators in a regex
    result = ENGINE.instant(f'count(up{{job=~"a|{alternation}"}}) # ((((( + + +', 60)
    assert result.series[0].value == 1.0
    assert ENGINE.instant("+".join(["up"] * 200) + ' + on(job) up{job="a"}', 60).series[0].value == 201.0


def test_nesting_that_crashed_the_parser_is_refused() -> None:
    # 20,000 nested parentheses overflowed promql-parser's stack: a segfault, the whole server gone.
    child = ("from tsdb.promql.engine import Engine\nfrom tsdb.store import Store\n"
             "from tsdb.promql.values import PromQLError\n"
             "try:\n    Engine(Store()).instant('(' * 20000 + '1' + ')' * 20000, 0)\n"
             "except PromQLError as exc:\n    print(exc.error_type)\n")
    done = subprocess.run([sys.executable, "-c", child], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stdout.strip()) == (0, "bad_data"), done.stderr[-2000:]


def test_deepest_accepted_query_evaluates_in_a_worker_thread() -> None:
    # The limits keep evaluation's recursion inside Python's limit, in a server's thread too.
    query = "+".join(["up"] * 256) + " + " + "abs(" * 60 + 'up{job="a"}' + ")" * 60
    answers: list = []
    worker = threading.Thread(target=lambda: answers.append(ENGINE.instant(query, 60).series[0].value))
    worker.start()
    worker.join(60)
    assert answers == [257.0]


def test_recursion_error_is_a_bad_data() -> None:
    # Whatever still recurses too deep (a thread already deep in its stack) is a 400, not a 500.
    outcome: list = []

    def deep(n: int) -> None:
        if n:
            return deep(n - 1)
        try:
            ENGINE.instant("abs(" * 60 + "up" + ")" * 60, 60)
            outcome.append("answered")
        except PromQLError as exc:
            outcome.append((exc.error_type, exc.message))

    limit = sys.getrecursionlimit()
    worker = threading.Thread(target=deep, args=(limit - 60,))
    worker.start()
    worker.join(60)
    assert outcome == [("bad_data", "query is nested too deeply to evaluate")]


def test_large_trees_are_not_kept() -> None:
    # 40 distinct queries of 250 chained operators: each tree is ~10 MB; the parse cache kept
    # them all (380 MB here, and the server's memory never came back).
    child = ("from tsdb.promql.engine import Engine\nfrom tsdb.store import Store\n"
             "def rss():\n    return int(open('/proc/self/statm').read().split()[1]) * 4096 >> 20\n"
             "engine = Engine(Store())\nengine.instant('1', 0)\nbefore = rss()\n"
             "for i in range(40):\n    engine.instant('+'.join(['1'] * 250) + f'+{i}', 0)\n"
             "print(rss() - before)\n")
    done = subprocess.run([sys.executable, "-c", child], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert int(done.stdout) < 100, f"RSS grew {done.stdout.strip()} MB"
