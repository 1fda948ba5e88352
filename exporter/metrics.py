"""Metric tables and the builder collectors fill during one collection.

Each collector declares its metrics once, in a table of ``MetricSpec`` next to the code that reads
them (node_exporter keeps its descriptions the same way). The table gives the help text, type,
unit, label names and the source (NVML call or file) of every family; ``docs/metrics.md`` is
generated from these tables, so the documentation cannot drift from what is exposed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator, Mapping

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

GAUGE = "gauge"
COUNTER = "counter"


@dataclass(frozen=True)
class MetricSpec:
    """One exposed family: ``name`` is the exposed name (counters end in ``_total``)."""

    name: str
    type: str
    help: str
    labels: tuple[str, ...] = ()
    unit: str = ""
    source: str = ""

    def __post_init__(self) -> None:
        if self.type not in (GAUGE, COUNTER):
            raise ValueError(f"{self.name}: type must be gauge or counter, not {self.type!r}")
        if self.type == COUNTER and not self.name.endswith("_total"):
            raise ValueError(f"{self.name}: a counter's name must end in _total")


def metric_table(*specs: MetricSpec) -> dict[str, MetricSpec]:
    """Index specs by name, refusing duplicates (two meanings for one name is a bug)."""
    table: dict[str, MetricSpec] = {}
    for spec in specs:
        if spec.name in table:
            raise ValueError(f"metric {spec.name} declared twice")
        table[spec.name] = spec
    return table


def gauge(name: str, help: str, labels: Iterable[str] = (), unit: str = "", source: str = "") -> MetricSpec:
    return MetricSpec(name, GAUGE, help, tuple(labels), unit, source)


def counter(name: str, help: str, labels: Iterable[str] = (), unit: str = "", source: str = "") -> MetricSpec:
    return MetricSpec(name, COUNTER, help, tuple(labels), unit, source)


class FamilySet:
    """Collects samples for the families of a table during one collection, then yields them.

    ``add(name, value, **labels)`` takes labels by name so a call reads like the series it makes;
    a missing or unknown label is a programming error and raises at once. Families with no
    samples are not yielded (node_exporter exposes nothing rather than an empty family).
    """

    def __init__(self, table: Mapping[str, MetricSpec]) -> None:
        self._table = table
        self._extra: dict[str, MetricSpec] = {}
        self._samples: dict[str, list[tuple[tuple[str, ...], float]]] = {}

    def declare(self, spec: MetricSpec) -> None:
        """Add a family known only at run time (e.g. one per /proc/meminfo field)."""
        if spec.name not in self._table:
            self._extra.setdefault(spec.name, spec)

    def spec(self, name: str) -> MetricSpec:
        spec = self._table.get(name) or self._extra.get(name)
        if spec is None:
            raise KeyError(f"metric {name} is not in the collector's table")
        return spec

    def add(self, name: str, value: float, **labels: object) -> None:
        spec = self.spec(name)
        if len(labels) != len(spec.labels):
            missing = set(spec.labels) - set(labels)
            unknown = set(labels) - set(spec.labels)
            raise ValueError(f"{name}: missing labels {sorted(missing)}, unknown {sorted(unknown)}")
        values = tuple(str(labels[label]) for label in spec.labels)
        self._samples.setdefault(name, []).append((values, float(value)))

    def __iter__(self) -> Iterator[Metric]:
        for name, samples in self._samples.items():
            yield build_family(self.spec(name), samples)


def build_family(spec: MetricSpec, samples: Iterable[tuple[tuple[str, ...], float]]) -> Metric:
    """A prometheus_client family for ``spec`` holding ``samples`` as (label values, value)."""
    if spec.type == COUNTER:
        family: Metric = CounterMetricFamily(spec.name[: -len("_total")], spec.help, labels=spec.labels)
    else:
        family = GaugeMetricFamily(spec.name, spec.help, labels=spec.labels)
    for label_values, value in samples:
        family.add_metric(label_values, value)
    return family
