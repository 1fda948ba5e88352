"""Regular expressions in queries behave as in Prometheus 2.42 (Go's RE2, anchored, no dot-all)
and run in linear time: a backtracking pattern cannot freeze the server (issue 14, finding 1)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.tsdb.helpers import load
from tsdb.promql.engine import Engine
from tsdb.promql.values import PromQLError
from tsdb.store import Store

ROOT = Path(__file__).resolve().parents[2]
EVIL = "a" * 40 + "!"  # (a+)+$ backtracks 2**40 times on this in Python's re

# Run in a child process: a backtracking engine holds the GIL for hours and could not be
# interrupted from the test's own thread.
CATASTROPHIC = f"""
from tsdb.store import Store
from tsdb.promql.engine import Engine
store = Store(retention_s=10 * 365 * 86400)
store.append_series((("__name__", "m"), ("x", "{EVIL}")), [60_000], [1.0])
engine = Engine(store)
q = 'label_replace(label_replace(vector(1),"x","{EVIL}","",""),"y","z","x","(a+)+$")'
print(sorted(engine.instant(q, 60).series[0].labels.items()))
print(len(engine.instant('m{{x=~"(a+)+$"}}', 60)), len(engine.instant('m{{x!~"(a+)+$"}}', 60)))
"""


def test_backtracking_patterns_answer_at_once() -> None:
    done = subprocess.run([sys.executable, "-c", CATASTROPHIC], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [f"[('x', '{EVIL}')]", "0 1"]


def _labels_after_replace(value: str, pattern: str) -> dict[str, str]:
    # PromQL string escapes: the value reaches the label as the characters it names.
    escaped = value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
    query = (f'label_replace(label_replace(vector(1), "x", "{escaped}", "", ""), '
             f'"y", "matched $1", "x", "{pattern.replace(chr(92), chr(92) * 2)}")')
    return Engine(Store()).instant(query, 60).series[0].labels


@pytest.mark.parametrize("value, pattern, matched", [
    # Answers of a real Prometheus 2.42 (label_replace of vector(1), as below).
    ("a\n", "(a)", False),      # $ is the end of the text, not before a final newline
    ("a\nb", "(a.b)", False),   # . does not match a newline (dot-all only since Prometheus 3.0)
    ("٣", "(\\d)", False),      # \d, \w, \s are ASCII classes in RE2
    ("é", "(\\w)", False),
    ("é", "(.)", True),         # one character, not one byte
    ("ab", "(a)", False),       # anchored at both ends
    ("ab", "(a)|(b)", False),
    ("Ab", "(?i)(ab)", True),
    ("xyz", "(?P<mid>y)|(x.z)", True),
])
def test_label_replace_matches_as_prometheus(value: str, pattern: str, matched: bool) -> None:
    labels = _labels_after_replace(value, pattern)
    assert ("y" in labels) == matched, labels


def test_selector_regex_semantics() -> None:
    store = load({'m{x="1"}': "1", 'm{x="a1"}': "1"})
    store.append_series((("__name__", "m"), ("x", "٣")), [0], [1.0])
    store.append_series((("__name__", "m"), ("x", "a\nb")), [0], [1.0])
    engine = Engine(store)

    def xs(selector: str) -> set[str]:
        return {s.labels.get("x") for s in engine.instant(selector, 0).series}

    assert xs('m{x=~"\\\\d"}') == {"1"}
    assert xs('m{x=~"."}') == {"1", "٣"}
    assert xs('m{x=~"a.*"}') == {"a1"}  # not "a\nb": . stops at the newline
    assert xs('m{x!~"a.+|1"}') == {"٣", "a\nb"}
    assert xs('m{x=~"1|a1"}') == {"1", "a1"}  # literal alternation: a set lookup, same answer


@pytest.mark.parametrize("query, error_type, message", [
    ('m{x=~"(?=a)"}', "bad_data", "parse error: error parsing regexp: invalid or unsupported Perl syntax: `(?=`"),
    ('m{x=~"(a)\\\\1"}', "bad_data", "parse error: error parsing regexp: invalid escape sequence: `\\1`"),
    ('m{x!~"\\\\C"}', "bad_data", "parse error: error parsing regexp: invalid escape sequence: `\\C`"),
    ('m{x=~"(?<n>a)"}', "bad_data", "parse error: error parsing regexp: invalid or unsupported Perl syntax: `(?<`"),
    ('m{x=~"a**"}', "bad_data", "parse error: error parsing regexp: invalid nested repetition operator: `**`"),
    ('m{x=~"a{1001}"}', "bad_data", "parse error: error parsing regexp: invalid repeat count: `{1001}`"),
    ('m{x=~"["}', "bad_data", "parse error: error parsing regexp: missing closing ]: `[)$`"),
    # Prometheus checks label_replace's pattern when it evaluates, as an execution error.
    ('label_replace(vector(1), "y", "", "x", "(?=a)")', "execution",
     "invalid regular expression in label_replace(): (?=a)"),
])
def test_patterns_go_refuses_are_refused_with_its_message(query: str, error_type: str, message: str) -> None:
    with pytest.raises(PromQLError) as caught:
        Engine(load({'m{x="a"}': "1"})).instant(query, 0)
    assert (caught.value.error_type, caught.value.message) == (error_type, message)
