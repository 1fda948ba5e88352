"""Helpers for exporter tests: parse an exposition into {(name, labels): value}."""
from __future__ import annotations

import types
from typing import Iterable

from prometheus_client.core import Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry

from exporter.collector import CollectorContext
from exporter.nvml.fake import FakeNVML, FakeState
from exporter.nvml.session import NvmlSession

Samples = dict[tuple[str, frozenset], float]


def parse_exposition(text: str | bytes) -> Samples:
    if isinstance(text, bytes):
        text = text.decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


class _Families:
    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterable[Metric]:
        return self._families


def render(families: Iterable[Metric]) -> str:
    """prometheus_client's own text rendering: an independent check of the exporter's fast path."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(list(families)))
    return generate_latest(registry).decode()


def sample(samples: Samples, name: str, **labels: str) -> float:
    """The value of the one series ``name{labels}``; KeyError listing near names when absent."""
    key = (name, frozenset((k, str(v)) for k, v in labels.items()))
    if key not in samples:
        near = sorted(str(dict(l)) for n, l in samples if n == name)[:10]
        raise KeyError(f"{name}{labels} not exposed; series of that name: {near}")
    return samples[key]


def series(samples: Samples, name: str) -> list[dict[str, str]]:
    return [dict(labels) for n, labels in samples if n == name]


class Clock:
    """A clock the test moves: scrapes advance it by the collection interval."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


class FakeGpuNode:
    """A fake node: an NVML session over ``state`` and the given collectors, scraped as the
    exporter does, on a test clock that also stamps the fake's GPM samples. ``errors`` counts the
    errors of collector ``errors_of``."""

    def __init__(self, state: FakeState, *collectors: type, errors_of: str) -> None:
        self.state = state
        self.clock = Clock()
        state.clock = self.clock
        self.session = NvmlSession(FakeNVML(state), clock=self.clock)
        self.ctx = CollectorContext(
            config=types.SimpleNamespace(interval=5.0), procfs=None, sysfs=None, nvml=self.session, clock=self.clock
        )
        self.collectors = [collector(self.ctx) for collector in collectors]
        self.errors_of = errors_of

    def scrape(self, advance: float = 5.0) -> Samples:
        self.clock.now += advance
        self.session.refresh()
        return parse_exposition(render([family for c in self.collectors for family in c.collect()]))

    def errors(self) -> int:
        return self.ctx.errors.counts().get(self.errors_of, 0)
