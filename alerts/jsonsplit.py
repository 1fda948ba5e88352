"""Decode a JSON object whose one large array is decoded an element at a time.

Why: ``json.loads`` of a 10,000-alert webhook is one C call of ~50 ms (more for larger bodies)
that holds the GIL all along, so every other request of the server waits behind it. Decoding
the top level here and each element of the big array with its own ``raw_decode`` gives the
interpreter a chance to switch threads between elements; ``each`` turns an element into what
the caller keeps as soon as it is decoded, so the decoded dicts die young (they never reach the
collector's oldest generation, whose full collections would stall every thread). Anything
unexpected (not an object, bad syntax) is left to ``json.loads``, whose answer (or error) is then
the result: this is a fast path, never a second JSON dialect.
"""
from __future__ import annotations

import json
import re
from typing import Any, Callable

_WHITESPACE = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()


class _Unexpected(Exception):
    """The text is not shaped as the fast path expects."""


def split_object(text: str, key: str, each: Callable[[int, Any], Any] = lambda index, item: item,
                 ) -> tuple[Any, list | None]:
    """``(value, items)``: the decoded document and, if it is an object whose ``key`` is an
    array, ``each(index, element)`` of that array's elements (the object then holds ``key: []``);
    else ``items`` is None.

    Raises what ``json.loads`` raises for invalid JSON (JSONDecodeError, RecursionError), and
    whatever ``each`` raises."""
    try:
        return _walk(text, key, each)
    except (_Unexpected, json.JSONDecodeError):
        return json.loads(text), None


def _walk(text: str, key: str, each: Callable[[int, Any], Any]) -> tuple[dict, list | None]:
    obj: dict[str, Any] = {}
    items: list | None = None
    pos = _expect(text, _skip(text, 0), "{")
    if text.startswith("}", _skip(text, pos)):
        _end(text, _skip(text, pos) + 1)
        return obj, None
    while True:
        name, pos = _DECODER.raw_decode(text, _skip(text, pos))
        if not isinstance(name, str):
            raise _Unexpected
        pos = _skip(text, _expect(text, _skip(text, pos), ":"))
        if name == key and text.startswith("[", pos):
            items, pos = _array(text, pos + 1, each)
            obj[name] = []
        else:
            obj[name], pos = _DECODER.raw_decode(text, pos)
            if name == key:
                items = None
        pos = _skip(text, pos)
        if text.startswith("}", pos):
            _end(text, pos + 1)
            return obj, items
        pos = _expect(text, pos, ",")


def _array(text: str, pos: int, each: Callable[[int, Any], Any]) -> tuple[list, int]:
    items: list = []
    pos = _skip(text, pos)
    if text.startswith("]", pos):
        return items, pos + 1
    while True:
        item, pos = _DECODER.raw_decode(text, _skip(text, pos))
        items.append(each(len(items), item))
        pos = _skip(text, pos)
        if text.startswith("]", pos):
            return items, pos + 1
        pos = _expect(text, pos, ",")


def _skip(text: str, pos: int) -> int:
    return _WHITESPACE.match(text, pos).end()


def _expect(text: str, pos: int, char: str) -> int:
    if not text.startswith(char, pos):
        raise _Unexpected
    return pos + 1


def _end(text: str, pos: int) -> None:
    if _skip(text, pos) != len(text):
        raise _Unexpected  # extra data: json.loads says where
