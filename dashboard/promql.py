"""Small helpers to turn query results into per-GPU and per-node lookups, and to ask several
scalar aggregations in one round trip (one query, not ten, whichever engine answers).

They read ``QueryResult.samples()``: a per-GPU answer at 16,384 nodes has 131,072 samples, and a
``Series`` object per sample cost more than the lookups built from them."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from tsdb.client import QueryClient, QueryResult

GpuKey = tuple[str, int]
MAX_GPUS_PER_NODE = 64  # a ``gpu`` label at or above this is not an NVML index (8 or 16 a node)


def gpu_key(labels: Mapping[str, str]) -> GpuKey | None:
    try:
        return labels["instance"], int(labels["gpu"])
    except (KeyError, ValueError):
        return None


def by_gpu(result: QueryResult) -> dict[GpuKey, float]:
    out: dict[GpuKey, float] = {}
    for labels, value in result.samples():
        key = gpu_key(labels)
        if key is not None:
            out[key] = value
    return out


@dataclass
class GpuSamples:
    """A per-GPU answer in columns: sample ``i`` is GPU ``gpus[i]`` of node ``nodes[i]``, with
    ``values[i]`` (a number, or the label asked for). Parallel lists, not a dict per node: at
    16,384 nodes the overview turns them into cell indices of its heatmap with numpy."""

    nodes: list[str] = field(default_factory=list)
    gpus: list[int] | np.ndarray = field(default_factory=list)
    values: list = field(default_factory=list)

    def add(self, node: str, gpu: int, value: float | str) -> None:
        self.nodes.append(node)
        self.gpus.append(gpu)
        self.values.append(value)


def gpu_samples(result: QueryResult, label: str | None = None) -> GpuSamples:
    """The samples labelled with a node (``instance``) and a GPU index (0 to 63); with ``label``,
    that label's value instead of the sample's, and only where it is set.

    Reading the labels is most of the cost (131,072 samples at 16,384 nodes): the result's label
    columns (``QueryResult.label_column``, ``label_ints``, ``label_present``) are read once per
    series set and remembered inside tsdb, so what is left here is a few numpy passes over them."""
    nodes = result.label_column("instance")
    gpus = result.label_ints("gpu")
    values = result.label_column(label) if label is not None else result.columns()[1]
    keep = result.label_present("instance") & (gpus >= 0) & (gpus < MAX_GPUS_PER_NODE)
    if label is not None:
        keep &= result.label_present(label)
    if keep.all():  # every sample well labelled (the exporter's own series): the columns as they are
        return GpuSamples(nodes, gpus, values)
    rows = np.flatnonzero(keep).tolist()
    return GpuSamples([nodes[i] for i in rows], gpus[keep], [values[i] for i in rows])


def by_label(result: QueryResult, label: str) -> dict[str, float]:
    return {labels.get(label, ""): value for labels, value in result.samples()}


def split_by_name(result: QueryResult) -> dict[str, QueryResult]:
    """One ``{__name__=~"a|b"}`` answer split into one result per metric name."""
    parts: dict[str, QueryResult] = {}
    for series in result.series:
        parts.setdefault(series.labels.get("__name__", ""), QueryResult(result.result_type)).series.append(series)
    return parts


def scalars(client: QueryClient, queries: Mapping[str, str], at: float) -> dict[str, float | None]:
    """Each aggregation tagged with ``label_replace`` and joined with ``or``: one query, and an
    empty aggregation (no series) reads as None instead of failing the others."""
    tagged = " or ".join(f'label_replace({expr}, "__kpi", "{name}", "", "")' for name, expr in queries.items())
    found = by_label(client.instant(tagged, at), "__kpi")
    return {name: finite(found.get(name)) for name in queries}


def finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None
