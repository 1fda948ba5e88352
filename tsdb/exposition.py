"""Parsing of the Prometheus text format 0.0.4 and OpenMetrics 1.0 into flat samples.

A malformed line fails the whole exposition with an ``ExpositionError`` naming the line, the way
Prometheus fails the scrape: a half-read page would make series flap between present and stale.
Samples come back as plain tuples (name, labels, value, timestamp in ms or None) because the
store copies them into its own arrays at once; nothing here keeps an object per sample.

A scraper that reads the same target again passes what the last page's lines said
(``Exposition.series_text``) as ``remembered``: a page holds the same series with new values from
one scrape to the next, and reading each line's labels was most of a scrape's cost (the demo's
server, scraping 140 nodes' 1,037 series every 5 s, spent more than half a core on its scrapes). A line is remembered only when it is
exactly "<series> <value>" as the full parser reads it (no timestamp, no exemplar, one value after
the last space); a remembered line's new value goes through the same checks, and anything else
goes through the full parser, so a page is accepted or refused as without the memory.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

OPENMETRICS_CONTENT_TYPE = "application/openmetrics-text"

_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\\n]|\\.)*)"\s*(,|\})')
_EMPTY_LABELS = re.compile(r"\s*\}")
_ESCAPES = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}
_ESCAPE = re.compile(r'\\[\\"n]')
_TYPES = {"counter", "gauge", "histogram", "summary", "untyped", "unknown", "gaugehistogram", "info", "stateset"}

Labels = tuple[tuple[str, str], ...]
Sample = tuple[str, Labels, float, "int | None"]
SeriesText = dict[str, tuple[str, Labels]]  # a line's text before its value -> its name and labels


class ExpositionError(ValueError):
    """The exposition cannot be read; the message names the line number and what is wrong."""


@dataclass
class MetricMetadata:
    type: str = "untyped"
    help: str = ""
    unit: str = ""


@dataclass
class Exposition:
    samples: list[Sample] = field(default_factory=list)
    metadata: dict[str, MetricMetadata] = field(default_factory=dict)
    series_text: SeriesText = field(default_factory=dict)  # this page's lines, for the next parse


def is_openmetrics(content_type: str | None) -> bool:
    return bool(content_type) and OPENMETRICS_CONTENT_TYPE in content_type


def parse_exposition(text: str, openmetrics: bool = False, remembered: SeriesText | None = None) -> Exposition:
    """Every sample and metadata line of ``text``; raises ExpositionError on the first bad line.
    With ``remembered`` (the last page's ``series_text``), lines it holds are not parsed again."""
    result = Exposition()
    seen_eof = False
    for number, line in enumerate(text.split("\n"), 1):
        if seen_eof:
            if line.strip():
                raise ExpositionError(f"line {number}: content after # EOF")
            continue
        if not line or line.isspace():
            continue
        if line[0] == "#":
            if openmetrics and line.rstrip() == "# EOF":
                seen_eof = True
            else:
                _metadata_line(line, number, result.metadata, openmetrics)
            continue
        if remembered is None:
            result.samples.append(_sample_line(line, number, openmetrics))
        else:
            result.samples.append(_remembered_line(line, number, openmetrics, remembered, result.series_text))
    if openmetrics and not seen_eof:
        raise ExpositionError("OpenMetrics exposition does not end with # EOF")
    return result


def _metadata_line(line: str, number: int, metadata: dict[str, MetricMetadata], openmetrics: bool) -> None:
    parts = line.split(None, 3)
    if len(parts) < 3 or parts[1] not in ("TYPE", "HELP", "UNIT"):
        if openmetrics:
            raise ExpositionError(f"line {number}: unknown comment in OpenMetrics: {line[:80]!r}")
        return  # the text format allows free comments
    keyword, name = parts[1], parts[2]
    if not _NAME.fullmatch(name):
        raise ExpositionError(f"line {number}: invalid metric name {name!r}")
    rest = parts[3] if len(parts) > 3 else ""
    entry = metadata.setdefault(name, MetricMetadata())
    if keyword == "TYPE":
        kind = rest.strip()
        if kind not in _TYPES:
            raise ExpositionError(f"line {number}: invalid metric type {kind!r}")
        entry.type = "untyped" if kind == "unknown" else kind
    elif keyword == "HELP":
        entry.help = _unescape(rest)
    else:
        entry.unit = rest.strip()


def _remembered_line(line: str, number: int, openmetrics: bool, remembered: SeriesText, seen: SeriesText) -> Sample:
    series, _, value_text = line.rpartition(" ")
    known = remembered.get(series)
    # isprintable: no whitespace in the value (a tab before a timestamp, a carriage return); an
    # empty value (a trailing space) is the full parser's to refuse, in its words.
    if known is not None and value_text and value_text.isprintable():
        seen[series] = known
        return known[0], known[1], _float(value_text, number, "value"), None
    sample, bare_value = _parse_sample(line, number, openmetrics)
    if series and bare_value == value_text:
        seen[series] = (sample[0], sample[1])
    return sample


def _sample_line(line: str, number: int, openmetrics: bool) -> Sample:
    return _parse_sample(line, number, openmetrics)[0]


def _parse_sample(line: str, number: int, openmetrics: bool) -> tuple[Sample, str | None]:
    """The sample, and its value's text when nothing but the value follows the labels."""
    match = _NAME.match(line)
    if not match:
        raise ExpositionError(f"line {number}: expected a metric name: {line[:80]!r}")
    name = match.group()
    pos = match.end()
    labels: list[tuple[str, str]] = []
    if pos < len(line) and line[pos] == "{":
        pos = _labels(line, pos + 1, number, labels)
    rest = line[pos:]
    if not rest or (rest[0] not in " \t"):
        raise ExpositionError(f"line {number}: expected a space before the value: {line[:80]!r}")
    exemplar = openmetrics and " # " in rest
    if exemplar:
        rest = rest.split(" # ", 1)[0]  # an exemplar: not stored
    fields = rest.split()
    if not 1 <= len(fields) <= 2:
        raise ExpositionError(f"line {number}: expected a value and an optional timestamp: {line[:80]!r}")
    value = _float(fields[0], number, "value")
    timestamp = None
    if len(fields) == 2:
        if openmetrics:
            seconds = _float(fields[1], number, "timestamp")
            if not math.isfinite(seconds):
                raise ExpositionError(f"line {number}: invalid timestamp {fields[1]!r}")
            timestamp = round(seconds * 1000)
        else:
            try:
                timestamp = int(fields[1])
            except ValueError:
                raise ExpositionError(f"line {number}: invalid timestamp {fields[1]!r}") from None
    bare_value = fields[0] if len(fields) == 1 and not exemplar else None
    return (name, tuple(labels), value, timestamp), bare_value


def _labels(line: str, pos: int, number: int, out: list[tuple[str, str]]) -> int:
    empty = _EMPTY_LABELS.match(line, pos)
    if empty:
        return empty.end()
    while True:
        match = _LABEL.match(line, pos)
        if not match:
            raise ExpositionError(f"line {number}: malformed labels at column {pos + 1}: {line[:80]!r}")
        value = match.group(2)
        out.append((match.group(1), _unescape(value) if "\\" in value else value))
        pos = match.end()
        if match.group(3) == "}":
            return pos
        # a trailing comma before the closing brace is allowed by the text format
        empty = _EMPTY_LABELS.match(line, pos)
        if empty:
            return empty.end()


def _float(text: str, number: int, what: str) -> float:
    if "_" in text:
        raise ExpositionError(f"line {number}: invalid {what} {text!r}")
    try:
        return float(text)
    except ValueError:
        raise ExpositionError(f"line {number}: invalid {what} {text!r}") from None


def _unescape(text: str) -> str:
    return _ESCAPE.sub(lambda m: _ESCAPES[m.group()], text)


def scraped_series(name: str, exposed: Labels, target: Labels) -> Labels:
    """The sorted label set, ``__name__`` included, that Prometheus 2.42 stores for the sample
    ``name{exposed}`` scraped from a target with the labels ``target`` (``honor_labels: false``):

    - an exposed label named like a target label becomes ``exported_<name>`` (prefixed again while
      that name is taken) with its first value, unless that is empty; the target's value stays;
    - any other label name given an empty value anywhere is no label (every occurrence goes);
    - a name still given twice fails the scrape, ``label name "x" is not unique``, as Prometheus's
      TSDB refuses the sample (the parser keeps repeats so that this is decided here).
    """
    taken = {key for key, _ in target}
    empty = {key for key, value in exposed if value == "" and key not in taken}
    pairs = [("__name__", name), *exposed]
    result = dict(target)
    seen: set[str] = set()
    for key, value in pairs:
        if key in taken:
            if key not in seen and value:  # the first value, as Prometheus's lset.Get gives it
                result[_exported(key, pairs, taken)] = value
        elif key in empty:
            continue
        elif key in seen:
            raise ExpositionError(f'label name "{key}" is not unique: invalid sample {name}')
        else:
            result[key] = value
        seen.add(key)
    return tuple(sorted(result.items()))


def _exported(key: str, pairs: list[tuple[str, str]], taken: set[str]) -> str:
    names = taken | {name for name, _ in pairs}
    renamed = f"exported_{key}"
    while renamed in names:
        renamed = f"exported_{renamed}"
    return renamed
