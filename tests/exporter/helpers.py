"""Helpers for exporter tests: parse an exposition into {(name, labels): value}."""
from __future__ import annotations

from typing import Iterable

from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families

from exporter.exporter import _render

Samples = dict[tuple[str, frozenset], float]


def parse_exposition(text: str | bytes) -> Samples:
    if isinstance(text, bytes):
        text = text.decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def render(families: Iterable[Metric]) -> str:
    return _render(list(families)).decode()


def sample(samples: Samples, name: str, **labels: str) -> float:
    """The value of the one series ``name{labels}``; KeyError listing near names when absent."""
    key = (name, frozenset((k, str(v)) for k, v in labels.items()))
    if key not in samples:
        near = sorted(str(dict(l)) for n, l in samples if n == name)[:10]
        raise KeyError(f"{name}{labels} not exposed; series of that name: {near}")
    return samples[key]


def series(samples: Samples, name: str) -> list[dict[str, str]]:
    return [dict(labels) for n, labels in samples if n == name]
