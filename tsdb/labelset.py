"""A series' label set as the query engine passes it around: a dict built once per series and
shared by every query that selects it, immutable by convention.

Why: building a dict per series per query, then sorting it again to compare or group, was most
of the engine's per-series cost. A ``LabelSet`` caches its sorted key and its copy without
``__name__``, so functions and operators that drop the name, and vector matching that compares
label sets, pay for that once per series instead of once per series per query. It is a plain
dict to everything else (JSON, ``dict(...)``, ``{**labels}``); nothing may mutate it.
"""
from __future__ import annotations

from array import array
from typing import Iterable


class LabelSet(dict):
    __slots__ = ("_key", "_no_name")

    def __init__(self, items: Iterable[tuple[str, str]] = (), key: tuple | None = None) -> None:
        super().__init__(items)
        self._key = key  # sorted (name, value) pairs, when the caller already has them
        self._no_name: LabelSet | None = None

    @property
    def key(self) -> tuple:
        if self._key is None:
            self._key = tuple(sorted(self.items()))
        return self._key

    def without_name(self) -> "LabelSet":
        if "__name__" not in self:
            return self
        if self._no_name is None:
            pairs = tuple(pair for pair in self.key if pair[0] != "__name__")
            self._no_name = LabelSet(pairs, pairs)
        return self._no_name


def labels_key(labels: dict[str, str]) -> tuple:
    """The label set as sorted (name, value) pairs, the identity of a series."""
    if type(labels) is LabelSet:
        return labels.key
    return tuple(sorted(labels.items()))


def drop_name(labels: dict[str, str]) -> dict[str, str]:
    if type(labels) is LabelSet:
        return labels.without_name()
    if "__name__" not in labels:
        return labels
    return {k: v for k, v in labels.items() if k != "__name__"}


class ListMemo:
    """Facts derived from a list of label sets (its grouping, its signatures, whether its sets
    are distinct), remembered by the identities of the list's members.

    Why it is safe: label sets are never mutated, and an entry holds its members, so no id in a
    key can be reused by another object while the entry lives. Why it pays: a rule's selector
    returns the store's own label-set objects (and their cached copies without ``__name__``) in
    the same order every cycle, so the per-series Python work of grouping and matching is done
    once per series set, not once per evaluation. Small lists are not worth a key.
    """

    MIN_ROWS = 64

    def __init__(self, max_entries: int = 256, max_rows: int = 2_000_000) -> None:
        # A rule pack's cycle uses ~150 lists. The row bound caps the memory entries take: 16
        # bytes a row (key and members) plus what was derived, at most ~200 bytes a row (a
        # grouping where every row is its own group), so ~400 MB at worst. The overview of a
        # 16,384-node fleet alone touches ~1.2 M rows a refresh; a bound below that evicts
        # its entries before they are used again (measured: 400,000 rows cost ~0.5 s a refresh).
        self._max_entries = max_entries
        self._max_rows = max_rows
        self._rows = 0
        # key -> [members, value, alias]: ``alias`` is the key in ``_aliases`` of the last list
        # object that found this entry.
        self._entries: dict[tuple, list] = {}
        # (id(list), extra) -> (the list, entry key). The selection a selector returns, and a
        # remembered grouping's label list, are the very same list object on every query, so its
        # identity finds the entry without building the key (~5 ms for 131,072 rows). The alias
        # holds its list, so the id cannot be reused while it lives; one alias per entry.
        self._aliases: dict[tuple, tuple[list, tuple]] = {}

    def get(self, labels: list, extra: tuple, compute):
        if len(labels) < self.MIN_ROWS:
            return compute()
        alias = self._aliases.get((id(labels), extra))
        if alias is not None and alias[0] is labels:
            entry = self._entries.get(alias[1])
            if entry is not None and len(entry[0]) == len(labels):  # (lists are never changed: a guard)
                return entry[1]
        members = tuple(labels)
        key = (extra, array("q", map(id, members)).tobytes())  # 8 bytes a row, hashed in C
        entry = self._entries.get(key)
        if entry is None:
            value = compute()
            if len(members) > self._max_rows:
                return value
            self._evict(len(members))
            entry = self._entries[key] = [members, value, None]
            self._rows += len(members)
        self._alias(labels, extra, key, entry)
        return entry[1]

    def _alias(self, labels: list, extra: tuple, key: tuple, entry: list) -> None:
        alias = (id(labels), extra)
        if entry[2] is not None and entry[2] != alias:
            self._aliases.pop(entry[2], None)
        entry[2] = alias
        self._aliases[alias] = (labels, key)

    def _evict(self, incoming: int) -> None:
        """Oldest entries first, until the new one fits."""
        while self._entries and (len(self._entries) >= self._max_entries or self._rows + incoming > self._max_rows):
            try:
                key = next(iter(self._entries))
                members, _, alias = self._entries.pop(key)
            except (StopIteration, KeyError, RuntimeError):  # another thread evicted it first
                return
            if alias is not None:
                self._aliases.pop(alias, None)
            self._rows -= len(members)


MEMO = ListMemo()


def without_names(labels: list[dict[str, str]]) -> list[dict[str, str]]:
    """``drop_name`` of every member (the result is shared: never mutate it)."""
    return MEMO.get(labels, ("without_names",), lambda: [drop_name(item) for item in labels])


def distinct(labels: list[dict[str, str]]) -> bool:
    """True when no two members are the same label set."""
    return MEMO.get(labels, ("distinct",), lambda: len({labels_key(item) for item in labels}) == len(labels))
