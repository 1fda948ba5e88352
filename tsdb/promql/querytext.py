"""What a query's text may be before it reaches the parser: a cheap, linear look at its size.

promql-parser's cost grows with the size of the tree times its depth, in time and in memory
(each Python node keeps its own copy of its subtree): a 6 KB ``1+1+...+1`` took 5-6 s and
1.25 GB, and 20,000 nested parentheses overflow its (Rust) stack and kill the process. So before
parsing, one pass over the text counts what makes a tree expensive, skipping string literals (a
long regex alternation is cheap) and comments, and refuses past these limits:

- ``MAX_QUERY_CHARS``: 256 Ki characters. A dashboard variable listing 16,384 nodes in one
  ``instance=~"..."`` is about 180 K; the /api/v1 form limit (1 MiB) leaves room for it.
- ``MAX_OPERATORS``: 256 binary operators (``+ - * / % ^``, comparisons, ``and or unless
  atan2``; a ``-`` sign counts too). Real rules and panels have a few dozen at most.
- ``MAX_NESTING``: 64 levels of ``(`` ``[`` ``{`` (calls, groups, subqueries). Evaluation recurses
  once or twice per level, so this and the operator limit keep every accepted query well inside
  Python's recursion limit too.
- ``MAX_PARSE_BYTES``: 32 MiB, the parse's memory as estimated from the counts: depth (operators
  + nesting) times size (characters + 64 bytes per operator or bracket), which tracks the measured
  cost within a factor of two (256 chained operators in 770 characters: 4 MB; 200 chained
  selectors with 1 KB regexes: 54 MB, refused).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from tsdb.promql.values import PromQLError

MAX_QUERY_CHARS = 256 * 1024
MAX_OPERATORS = 256
MAX_NESTING = 64
MAX_PARSE_BYTES = 32 << 20
_NODE_BYTES = 64  # per operator or bracket, in the parse estimate

# One token of interest per match; everything else (names, numbers, durations, spaces) is skipped.
# Possessive quantifiers: a string literal is consumed once, never backtracked into.
_TOKENS = re.compile(r"""
    "(?:[^"\\]++|\\.)*+"?          # string literals, to their end (or the query's)
  | '(?:[^'\\]++|\\.)*+'?
  | `[^`]*+`?
  | \#[^\n]*+                      # a comment, to the end of the line
  | (?P<open>[(\[{])
  | (?P<close>[)\]}])
  | (?P<op>[-+*/%^<>=!~]++)
  | (?P<word>(?i:\b(?:and|or|unless|atan2)\b))
""", re.VERBOSE | re.DOTALL)
_MATCHER_OPS = frozenset({"=", "=~", "!~"})  # label matchers, not operators (!= may be either: counted)


def _refused(message: str) -> PromQLError:
    return PromQLError(message, "bad_data", limit="query_text")


@dataclass(frozen=True)
class QueryShape:
    chars: int
    operators: int
    brackets: int
    nesting: int

    @property
    def parse_bytes(self) -> int:
        """Estimated memory of the parse (see the module's docstring)."""
        return (self.operators + self.nesting + 1) * (self.chars + _NODE_BYTES * (self.operators + self.brackets))


def check_query_text(query: str) -> QueryShape:
    """The query's size in the units above; ``bad_data`` naming the limit it passes."""
    if len(query) > MAX_QUERY_CHARS:
        raise _refused(f"query is too long: {len(query):,} characters (the limit is {MAX_QUERY_CHARS:,})")
    operators = brackets = depth = deepest = 0
    for token in _TOKENS.finditer(query):
        kind = token.lastgroup
        if kind == "open":
            brackets += 1
            depth += 1
            if depth > MAX_NESTING:
                raise _refused(f"query is nested too deeply: more than {MAX_NESTING} levels of parentheses, "
                               f"brackets or braces")
            deepest = max(deepest, depth)
        elif kind == "close":
            depth = max(depth - 1, 0)
        elif kind == "word" or (kind == "op" and token.group() not in _MATCHER_OPS):
            operators += 1
    if operators > MAX_OPERATORS:
        raise _refused(f"query has too many operators: {operators:,} (the limit is {MAX_OPERATORS})")
    shape = QueryShape(len(query), operators, brackets, deepest)
    if shape.parse_bytes > MAX_PARSE_BYTES:
        raise _refused(f"query is too complex to parse: {operators} operators and {brackets:,} brackets over "
                       f"{len(query):,} characters would take about {shape.parse_bytes >> 20} MiB to parse "
                       f"(the limit is {MAX_PARSE_BYTES >> 20} MiB); split it into smaller queries")
    return shape
