"""Generates docs/metrics.md from the metric tables declared next to the code that exposes them.

    python -m clusterwatch.metricsdoc > docs/metrics.md      # regenerate
    python -m clusterwatch.metricsdoc --check docs/metrics.md  # fail if the file is stale (tests do)
"""
from __future__ import annotations

import importlib
import pkgutil
import sys
from types import ModuleType
from typing import Iterable

from clusterwatch import docgen
from cwkernel.metrics import MetricSpec

# (section title, what feeds it, modules holding its tables) in the order the document shows them.
SECTIONS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("GPU (NVML)", "`clusterwatch exporter`, collectors `gpu`, `gpm` and `xid`",
     ("exporter.collectors.gpu", "exporter.collectors.gpm", "exporter.collectors.xid")),
    ("Jobs on GPUs", "`clusterwatch exporter`, collector `jobs`", ("exporter.collectors.jobs",)),
    ("Node (procfs)", "`clusterwatch exporter`, collector `node`", ("exporter.collectors.node", "exporter.collectors.node_*")),
    ("InfiniBand (sysfs)", "`clusterwatch exporter`, collector `infiniband`", ("exporter.collectors.infiniband",)),
    ("Storage", "`clusterwatch exporter`, collector `storage`", ("exporter.collectors.storage",)),
    ("Exporter health", "`clusterwatch exporter`, every collection", ("exporter.exporter",)),
    ("Scheduler (Slurm)", "`clusterwatch serve --scheduler ...`, on the server's `/metrics`", ("scheduler.*",)),
)

INTRO = """\
# Metrics

Every metric ClusterWatch exposes, generated from the tables in the code that exposes them
(`python -m clusterwatch.metricsdoc > docs/metrics.md`; a test fails when this file is stale).

Conventions (docs/architecture.md#metric-names-and-units): base units (bytes, seconds, watts, celsius, hertz, joules, ratios
0-1), `_total` for counters, `_info` gauges of value 1 carry identity. The `instance` label is the
node's name as the scheduler knows it; scrape configs set it (the exporter does not add it).
GPU series carry `gpu` (index on the node) and `uuid`. Jobs are attributed by a join, not a label
on every series: `gpu_job_info{gpu,uuid,job_id} 1` from the node, `slurm_job_info{job_id,...} 1`
from the scheduler, e.g.

    avg by (job_id) (gpu_utilization_ratio * on (instance, gpu) group_left (job_id) gpu_job_info)

Node metrics keep node_exporter's names (camelCase `/proc/meminfo` fields included), so rules and
dashboards written for node_exporter work unchanged.
"""


def _modules(pattern: str) -> list[ModuleType]:
    if not pattern.endswith("*"):
        try:
            return [importlib.import_module(pattern)]
        except ModuleNotFoundError:
            return []
    package_name, _, prefix = pattern[:-1].rpartition(".")
    try:
        package = importlib.import_module(package_name)
    except ModuleNotFoundError:
        return []
    names = sorted(info.name for info in pkgutil.iter_modules(package.__path__) if info.name.startswith(prefix))
    return [importlib.import_module(f"{package_name}.{name}") for name in names]


def tables_in(module: ModuleType) -> Iterable[MetricSpec]:
    """Every MetricSpec in the module's metric tables (dicts of name -> MetricSpec)."""
    for value in vars(module).values():
        if isinstance(value, dict) and value and all(isinstance(v, MetricSpec) for v in value.values()):
            yield from value.values()


# The server's own metrics are read from its components' collectors, assembled the way
# `clusterwatch serve` assembles them (with a scheduler and automation, so every one is there).
SERVER_ARGV = ["serve", "--scheduler", "simulator", "--scheduler-url", "http://127.0.0.1:9/slurm",
               "--automation", "dry-run"]
FAMILY_SUFFIX = {"counter": "_total"}


def server_families() -> list[tuple[str, str, str, list[str]]]:
    """(exposed name, type, help, label names seen) of every family the server's collectors yield."""
    from clusterwatch.cli import build_parser
    from clusterwatch.commands import serve

    _, config, values = serve.load_config(build_parser().parse_args(SERVER_ARGV), environ={})
    out = {}
    for component in serve.build_components(values, config):
        if component.name == "scheduler":
            continue  # documented from its metric table above
        for collector in component.collectors:
            for family in collector.collect():
                name = family.name + FAMILY_SUFFIX.get(family.type, "")
                labels = sorted({label for sample in family.samples for label in sample.labels} - {"le"})
                out[name] = (name, family.type, family.documentation, labels)
    return sorted(out.values())


def render_server() -> list[str]:
    lines = ["## Server (`clusterwatch serve`)", "",
             "Exposed on the server's `/metrics` (scrape it with `honor_labels: true`) and, with the embedded",
             "store, ingested into it under `job=\"clusterwatch-server\"` so the monitoring rules see them.",
             "Read from the server's collectors; labels are those a fresh server already reports.", "",
             "| name | type | labels | description |", "|---|---|---|---|"]
    for name, kind, help_text, labels in server_families():
        cells = [f"`{name}`", kind, ", ".join(f"`{label}`" for label in labels) or "-", help_text]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    lines.append("")
    return lines


def render() -> str:
    lines = [INTRO]
    seen: set[str] = set()
    for title, fed_by, patterns in SECTIONS:
        specs = [spec for pattern in patterns for module in _modules(pattern) for spec in tables_in(module)]
        specs = [spec for spec in specs if not (spec.name in seen or seen.add(spec.name))]
        if not specs:
            continue
        lines += [f"## {title}", "", f"Exposed by {fed_by}.", "",
                  "| name | type | unit | labels | source | description |", "|---|---|---|---|---|---|"]
        for spec in sorted(specs, key=lambda s: s.name):
            labels = ", ".join(f"`{label}`" for label in spec.labels) or "-"
            cells = [f"`{spec.name}`", spec.type, spec.unit or "-", labels, spec.source or "-", spec.help]
            lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
        lines.append("")
    lines += render_server()
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    return docgen.main("clusterwatch.metricsdoc", __doc__.splitlines()[0], render, argv)


if __name__ == "__main__":
    sys.exit(main())
