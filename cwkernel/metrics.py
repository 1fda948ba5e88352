"""Metric tables and the builder collectors fill during one collection.

Each collector declares its metrics once, in a table of ``MetricSpec`` next to the code that reads
them (node_exporter keeps its descriptions the same way). The table gives the help text, type,
unit, label names and the source (NVML call or file) of every family; ``docs/metrics.md`` is
generated from these tables, so the documentation cannot drift from what is exposed.
"""
from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Iterable, Iterator, Mapping, NoReturn

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric, UnknownMetricFamily

GAUGE = "gauge"
COUNTER = "counter"
# Only where a name is borrowed from an exporter that exposes it untyped (node_vmstat_*):
# matching its TYPE line keeps federation and metadata-driven tools seeing the same family.
UNTYPED = "untyped"


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
        if self.type not in (GAUGE, COUNTER, UNTYPED):
            raise ValueError(f"{self.name}: type must be gauge, counter or untyped, not {self.type!r}")
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


def tables_in(module: ModuleType) -> Iterator[MetricSpec]:
    """Every MetricSpec in the module's metric tables (its module-level dicts of name -> MetricSpec)."""
    for value in vars(module).values():
        if isinstance(value, dict) and value and all(isinstance(v, MetricSpec) for v in value.values()):
            yield from value.values()


def gauge(name: str, help: str, labels: Iterable[str] = (), unit: str = "", source: str = "") -> MetricSpec:
    return MetricSpec(name, GAUGE, help, tuple(labels), unit, source)


def untyped(name: str, help: str, labels: Iterable[str] = (), unit: str = "", source: str = "") -> MetricSpec:
    return MetricSpec(name, UNTYPED, help, tuple(labels), unit, source)


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

    def add(self, name: str, value: float, /, **labels: object) -> None:
        spec = self._table.get(name) or self.spec(name)
        self._append(name, _label_values(spec, labels), value)

    def add_all(self, values: Iterable[tuple[str, float]], /, **labels: object) -> None:
        """``add`` for several families that take the same labels: the label values are checked and
        made strings once per label order, not once per sample (dozens of GPM metrics per GPU
        instance, hundreds of samples per GPU)."""
        rows: dict[tuple[str, ...], tuple[str, ...]] = {}
        for name, value in values:
            spec = self._table.get(name) or self.spec(name)
            row = rows.get(spec.labels)
            if row is None:
                row = rows[spec.labels] = _label_values(spec, labels)
            self._append(name, row, value)

    def _append(self, name: str, label_values: tuple[str, ...], value: float) -> None:
        samples = self._samples.get(name)
        if samples is None:
            samples = self._samples[name] = []
        samples.append((label_values, float(value)))

    def sample_count(self) -> int:
        return sum(len(samples) for samples in self._samples.values())

    def __iter__(self) -> Iterator[Metric]:
        for name, samples in self._samples.items():
            yield build_family(self.spec(name), samples)

    def render_text(self, out: list[str], series_cache: dict | None = None, openmetrics: bool = False) -> None:
        """Append this set's families in the Prometheus text format (0.0.4), or OpenMetrics' (whose
        sample lines are the same; only the family headers differ), to ``out``.

        The exporter's hot path: it writes the exposition straight from the samples instead of
        building prometheus_client objects and rendering those, which costs several times more.
        ``series_cache`` maps a family's name to its series' rendered ``name{labels} `` prefixes by
        label values; a node's series barely change between cycles, so the caller keeps it across
        cycles (``series_cache_size`` counts them).
        """
        cache = {} if series_cache is None else series_cache
        for name, samples in self._samples.items():
            spec = self.spec(name)
            out.append(family_header(name, spec.help, spec.type, openmetrics))
            if spec.labels:
                keys = None
                prefixes = cache.get(name)
                if prefixes is None:
                    prefixes = cache[name] = {}
                for values, value in samples:
                    prefix = prefixes.get(values)
                    if prefix is None:
                        keys = keys or [f'{label}="' for label in spec.labels]
                        pairs = '",'.join(map(str.__add__, keys, map(escape_label, values)))
                        prefix = prefixes[values] = f'{name}{{{pairs}"}} '
                    out.append(f"{prefix}{format_value(value)}\n")
            else:
                for _, value in samples:
                    out.append(f"{name} {format_value(value)}\n")


def family_header(name: str, help: str, kind: str, openmetrics: bool = False) -> str:
    """A family's HELP and TYPE lines. OpenMetrics names a counter family without its samples'
    ``_total`` and calls an untyped family ``unknown``; the text format names both as sampled."""
    if openmetrics:
        if kind == COUNTER and name.endswith("_total"):
            name = name[: -len("_total")]
        elif kind == UNTYPED:
            kind = "unknown"
    return f"# HELP {name} {escape_help(help)}\n# TYPE {name} {kind}\n"


def escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def escape_label(value: str) -> str:
    if "\\" in value or '"' in value or "\n" in value:
        return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return value


def format_value(value: float) -> str:
    """Prometheus's spelling of a sample value (``+Inf``, ``-Inf``, ``NaN`` for the specials)."""
    if value != value:
        return "NaN"
    if value == INF:
        return "+Inf"
    if value == -INF:
        return "-Inf"
    return repr(value)


def series_cache_size(series_cache: dict[str, dict]) -> int:
    """The rendered prefixes ``render_text``'s cache holds, all families together."""
    return sum(map(len, series_cache.values()))


INF = float("inf")


def render_metric_text(family: Metric, out: list[str], openmetrics: bool = False) -> None:
    """Append one prometheus_client family in the text format, or OpenMetrics' (for collectors that
    build their own)."""
    name = family.name + "_total" if family.type == "counter" and not family.name.endswith("_total") else family.name
    kind = family.type if family.type in ("counter", "gauge", "histogram", "summary") else UNTYPED
    out.append(family_header(name, family.documentation, kind, openmetrics))
    for sample in family.samples:
        if sample.labels:
            pairs = ",".join(f'{key}="{escape_label(str(value))}"' for key, value in sample.labels.items())
            out.append(f"{sample.name}{{{pairs}}} {format_value(float(sample.value))}\n")
        else:
            out.append(f"{sample.name} {format_value(float(sample.value))}\n")


def _label_values(spec: MetricSpec, labels: dict[str, object]) -> tuple[str, ...]:
    """The values of ``labels`` in the spec's order, as strings; every label and no other."""
    if len(labels) != len(spec.labels):
        _bad_labels(spec, labels)
    try:
        return tuple(map(str, map(labels.__getitem__, spec.labels)))
    except KeyError:
        _bad_labels(spec, labels)


def _bad_labels(spec: MetricSpec, labels: dict[str, object]) -> NoReturn:
    missing = set(spec.labels) - set(labels)
    unknown = set(labels) - set(spec.labels)
    raise ValueError(f"{spec.name}: missing labels {sorted(missing)}, unknown {sorted(unknown)}")


def build_family(spec: MetricSpec, samples: Iterable[tuple[tuple[str, ...], float]]) -> Metric:
    """A prometheus_client family for ``spec`` holding ``samples`` as (label values, value)."""
    if spec.type == COUNTER:
        family: Metric = CounterMetricFamily(spec.name[: -len("_total")], spec.help, labels=spec.labels)
    elif spec.type == UNTYPED:
        family = UnknownMetricFamily(spec.name, spec.help, labels=spec.labels)
    else:
        family = GaugeMetricFamily(spec.name, spec.help, labels=spec.labels)
    for label_values, value in samples:
        family.add_metric(label_values, value)
    return family
