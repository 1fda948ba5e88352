"""Generates docs/metrics.md from the metric tables declared next to the code that exposes them.

    python -m clusterwatch.metricsdoc > docs/metrics.md      # regenerate
    python -m clusterwatch.metricsdoc --check docs/metrics.md  # fail if the file is stale (tests do)
"""
from __future__ import annotations

import importlib
import pkgutil
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Iterable

from clusterwatch import docgen
from cwkernel.metrics import MetricSpec, tables_in

# (section title, what feeds it, modules holding its tables) in the order the document shows them.
SECTIONS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("GPU (NVML)", "`clusterwatch exporter`, collectors `gpu`, `gpm` and `xid`",
     ("exporter.collectors.gpu", "exporter.collectors.gpm", "exporter.collectors.xid")),
    ("Jobs on GPUs", "`clusterwatch exporter`, collector `jobs`", ("exporter.collectors.jobs",)),
    ("Node (procfs)", "`clusterwatch exporter`, collector `node`", ("exporter.collectors.node", "exporter.collectors.node_*")),
    ("InfiniBand (sysfs)", "`clusterwatch exporter`, collector `infiniband`", ("exporter.collectors.infiniband",)),
    ("Fabric (switch side)", "`clusterwatch exporter --collectors fabric` on one management host per fabric "
     "(scrape job `clusterwatch-fabric`); per-link series carry `switch`, `switch_port`, `peer`, `peer_port` "
     "and, per end, `end`", ("exporter.collectors.fabric",)),
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


# The server's own metrics are read from its components' collectors, assembled the way
# `clusterwatch serve` assembles them (with a scheduler, automation and a heartbeat, so every one
# is there; nothing is started, so nothing is sent).
SERVER_ARGV = ["serve", "--scheduler", "simulator", "--scheduler-url", "http://127.0.0.1:9/slurm",
               "--automation", "dry-run", "--heartbeat-url", "http://127.0.0.1:9/ping"]
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


# ---- dcgm-exporter's fields and their ClusterWatch counterparts -------------------------------------
# The mapped fields, their counterparts and conversions are read from the bridge itself
# (alerts/rules/bridges/dcgm.yml: the DCGM_FI_* each record reads, its labels, the comment above it);
# what the bridge cannot read from is listed here, with why.

# dcgm-exporter's etc/default-counters.csv (the snapshot in tests/fixtures/dcgm-exporter/'s headers;
# a test holds this equal to the fields of that exposition). DCGM_FI_DRIVER_VERSION is a label field.
DCGM_DEFAULT_FIELDS = frozenset({
    "DCGM_FI_DEV_SM_CLOCK", "DCGM_FI_DEV_MEM_CLOCK", "DCGM_FI_DEV_MEMORY_TEMP", "DCGM_FI_DEV_GPU_TEMP",
    "DCGM_FI_DEV_POWER_USAGE", "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "DCGM_FI_DEV_PCIE_REPLAY_COUNTER",
    "DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_MEM_COPY_UTIL", "DCGM_FI_DEV_ENC_UTIL", "DCGM_FI_DEV_DEC_UTIL",
    "DCGM_FI_DEV_XID_ERRORS", "DCGM_FI_DEV_FB_FREE", "DCGM_FI_DEV_FB_USED", "DCGM_FI_DEV_FB_RESERVED",
    "DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL", "DCGM_FI_DEV_VGPU_LICENSE_STATUS",
    "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS", "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS",
    "DCGM_FI_DEV_ROW_REMAP_FAILURE", "DCGM_FI_PROF_GR_ENGINE_ACTIVE", "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE",
    "DCGM_FI_PROF_DRAM_ACTIVE", "DCGM_FI_PROF_PCIE_TX_BYTES", "DCGM_FI_PROF_PCIE_RX_BYTES",
    "DCGM_FI_DRIVER_VERSION",
})

# Fields the bridge does not read: why (default fields first, then common additions to the CSV).
DCGM_UNMAPPED = {
    "DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL": "one counter of receive + transmit over all links: the contract's NVLink "
                                          "traffic is per direction, which cannot be split from the sum",
    "DCGM_FI_PROF_GR_ENGINE_ACTIVE": "the graphics engine's active time has no counterpart: `gpu_utilization_ratio` "
                                     "is the coarser kernel-busy ratio and `gpu_sm_active_ratio` a different (finer) "
                                     "measure; add `DCGM_FI_PROF_SM_ACTIVE` to the CSV for the efficiency views",
    "DCGM_FI_DEV_VGPU_LICENSE_STATUS": "no counterpart (ClusterWatch does not monitor vGPU licensing)",
    "DCGM_FI_PROF_NVLINK_TX_BYTES": "not bridged yet: per-direction NVLink rates, once the contract names its "
                                    "NVLink traffic",
    "DCGM_FI_PROF_NVLINK_RX_BYTES": "not bridged yet: as `DCGM_FI_PROF_NVLINK_TX_BYTES`",
    "DCGM_FI_DEV_POWER_VIOLATION": "throttle time per constraint, but its unit changed between dcgm-exporter's CSVs "
                                   "(us, then ns) and the constraints are not NVML's clock-event reasons: "
                                   "`gpu_clock_event_*`, `GpuThermalThrottling` and `GpuPowerThrottling` stay silent",
    "DCGM_FI_DEV_THERMAL_VIOLATION": "as `DCGM_FI_DEV_POWER_VIOLATION`",
}

# What the bridge's comments do not say about a mapped field.
DCGM_NOTES = {
    "DCGM_FI_DEV_XID_ERRORS": "**`gpu_xid_errors_total` is not mapped**: the field is the *last* XID code, a gauge; "
                              "a second XID with the same code leaves it unchanged and one of another code replaces "
                              "it, so neither a count nor the codes between two scrapes can be derived. The five "
                              "`GpuXid*` alerts and the unhealthy-GPU count's XID part stay silent",
    "DCGM_FI_DEV_PCIE_TX_THROUGHPUT": "not in today's default CSV (older CSVs); read only where the PROF field is absent",
    "DCGM_FI_DEV_PCIE_RX_THROUGHPUT": "not in today's default CSV (older CSVs); read only where the PROF field is absent",
}

DCGM_SECTION = "dcgm-exporter fields"  # its anchor: metrics.md#dcgm-exporter-fields


def dcgm_bridge_fields(path: Path | None = None) -> dict[str, list[tuple[str, str]]]:
    """field -> [(counterpart, conversion)] for every DCGM_FI_* field a bridge record reads (as a series or,
    as DCGM_FI_DRIVER_VERSION, as a label), the conversion being the comment above the record."""
    import yaml

    from clusterwatch.commands.rules import BRIDGES

    path = path or BRIDGES["dcgm"]
    text = path.read_text()
    # the comment "# <record>: <conversion>" right above each "- record:" line, in the file's order
    comments = [why if named == name else "" for named, why, name in
                re.findall(r"^(?:[ \t]*# (gpu_\w+): (.*)\n)?[ \t]*- record: (\w+)[ \t]*$", text, re.M)]
    rules = [rule for group in yaml.safe_load(text)["groups"] for rule in group["rules"]]
    if [rule["record"] for rule in rules] != re.findall(r"^[ \t]*- record: (\w+)", text, re.M):
        raise ValueError(f"{path}: every rule must start with its own '- record:' line")
    out: dict[str, list[tuple[str, str]]] = {}
    for rule, comment in zip(rules, comments):
        name = rule["record"]
        labels = ", ".join(f'{k}="{v}"' for k, v in sorted((rule.get("labels") or {}).items()))
        counterpart = f"`{name}{{{labels}}}`" if labels else f"`{name}`"
        for field in dict.fromkeys(re.findall(r"\bDCGM_FI_\w+", rule["expr"])):
            pairs = out.setdefault(field, [])
            if (counterpart, comment) not in pairs:
                pairs.append((counterpart, comment))
    return out


def dcgm_rows() -> list[tuple[str, str, str, str]]:
    """(field, in the default CSV, counterpart, conversion or why not mapped), default fields first."""
    mapped = dcgm_bridge_fields()
    rows = []
    for field in sorted(set(mapped) | set(DCGM_UNMAPPED) | DCGM_DEFAULT_FIELDS,
                        key=lambda f: (f not in DCGM_DEFAULT_FIELDS, f)):
        default = "yes" if field in DCGM_DEFAULT_FIELDS else "no"
        if field in mapped:
            counterparts = ", ".join(c for c, _ in mapped[field])
            notes = [f"{c}: {why}" if len(mapped[field]) > 1 else why for c, why in mapped[field] if why]
            notes.append(DCGM_NOTES.get(field, ""))
            rows.append((field, default, counterparts, "; ".join(n for n in notes if n) or "as is"))
        else:
            rows.append((field, default, "not mapped", DCGM_UNMAPPED.get(field, "no bridge rule")))
    return rows


def render_dcgm() -> list[str]:
    lines = [f"## {DCGM_SECTION}", "",
             "dcgm-exporter's fields (every one of its default `etc/default-counters.csv`, then those sites",
             "commonly add) and their ClusterWatch counterpart as the bridge `alerts/rules/bridges/dcgm.yml`",
             "writes it (docs/migration.md). Read from the bridge: the records that read each field and the",
             "comment above each record. DCGM's blank values are dropped and MIG instances left out throughout.", "",
             "| dcgm-exporter field | in the default CSV | ClusterWatch counterpart | conversion / why not mapped |",
             "|---|---|---|---|"]
    for field, default, counterpart, why in dcgm_rows():
        cells = [f"`{field}`", default, counterpart, why]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    lines.append("")
    return lines


NODE_EXPORTER_SECTION = "node_exporter families"  # its anchor: metrics.md#node_exporter-families
NODE_EXPORTER_FAMILIES = Path(__file__).parent / "reference" / "node_exporter-e2e-families.txt"
# Family prefixes that are not a subsystem of their own: node_exporter's stat and loadavg collectors.
NODE_EXPORTER_PREFIX_ALIASES = {"boot": "stat", "context": "stat", "forks": "stat", "intr": "stat",
                                "procs": "stat", "load1": "load", "load5": "load", "load15": "load"}


def node_exporter_families() -> list[str]:
    """node_exporter's `node_` families, as its own e2e run exposes them (reference/README.md)."""
    names = (line.split()[2] for line in NODE_EXPORTER_FAMILIES.read_text().splitlines()
             if line.startswith("# TYPE "))
    return sorted(name for name in names if name.startswith("node_"))


def family_prefix(name: str) -> str:
    if name.startswith("node_memory_numa_"):
        return "node_memory_numa_"  # node_exporter's meminfo_numa collector, not meminfo
    word = name.split("_")[1]
    return f"node_{NODE_EXPORTER_PREFIX_ALIASES.get(word, word)}_"


def emitted_matcher(specs: Iterable[MetricSpec]) -> re.Pattern[str]:
    """Matches the node_ names ClusterWatch exposes. A table's ``<Field>`` stands for a /proc/meminfo
    field (capitalised: node_exporter's lower-case ``numa_`` families are another collector), and the
    ``_bytes`` after it is absent for count fields, as the node collector writes them."""
    patterns = [re.sub(r"<[^>]*>(_bytes)?", "[A-Z][A-Za-z0-9_()]*(?:_bytes)?", re.escape(spec.name).replace(r"\<", "<")
                       .replace(r"\>", ">")) for spec in specs if spec.name.startswith("node_")]
    return re.compile("|".join(f"(?:{pattern})" for pattern in patterns) + r"\Z")


def render_node_exporter(specs: list[MetricSpec]) -> list[str]:
    emitted = emitted_matcher(specs)
    theirs = node_exporter_families()
    groups: dict[str, list[str]] = {}
    for name in theirs:
        groups.setdefault(family_prefix(name), []).append(name)
    # Ours that their e2e run cannot show (a real mount table, uname(2), adjtimex(2)).
    unseen: dict[str, list[str]] = {}
    for spec in specs:
        if spec.name.startswith("node_") and "<" not in spec.name and spec.name not in theirs:
            unseen.setdefault(family_prefix(spec.name), []).append(spec.name)
    lines = [f"## {NODE_EXPORTER_SECTION}", "",
             "Every `node_` family node_exporter exposes in its own end-to-end test (its",
             "`collector/fixtures/e2e-output.txt`; clusterwatch/reference/README.md names the commit), by family",
             "prefix, and how many of them ClusterWatch's exporter emits under the same name, type and labels",
             "(tests/exporter/test_node_exporter_compat.py holds that). Where a prefix shows all not emitted, a",
             "node that needs those families keeps node_exporter's collector for them (docs/operations.md,",
             "\"Nodes that already run node_exporter\"). ClusterWatch's own node-level families are outside",
             "node_exporter's namespace (`storage_*`, `infiniband_port_*`).", "",
             "| family prefix | node_exporter's families | ClusterWatch emits | not emitted |", "|---|---|---|---|"]
    for prefix in sorted(set(groups) | set(unseen)):
        names = groups.get(prefix, [])
        ours = [name for name in names if emitted.match(name)]
        missing = [name for name in names if name not in ours]
        extra = unseen.get(prefix, [])
        if names and not ours and not extra:
            not_emitted = "all"
        elif not missing:
            not_emitted = "-"
        else:
            not_emitted = ", ".join(f"`{name}`" for name in missing[:6])
            not_emitted += f" and {len(missing) - 6} more" if len(missing) > 6 else ""
        emits = str(len(ours))
        if extra:
            named = f" ({', '.join(f'`{n}`' for n in sorted(extra))})" if len(extra) <= 3 else ""
            emits += f" + {len(extra)} its e2e run cannot show{named}"
        lines.append(f"| `{prefix}*` | {len(names)} | {emits} | {not_emitted} |")
    lines.append("")
    return lines


def render() -> str:
    lines = [INTRO]
    seen: set[str] = set()
    exposed: list[MetricSpec] = []
    for title, fed_by, patterns in SECTIONS:
        specs = [spec for pattern in patterns for module in _modules(pattern) for spec in tables_in(module)]
        specs = [spec for spec in specs if not (spec.name in seen or seen.add(spec.name))]
        exposed += specs
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
    lines += render_dcgm()
    lines += render_node_exporter(exposed)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    return docgen.main("clusterwatch.metricsdoc", __doc__.splitlines()[0], render, argv)


if __name__ == "__main__":
    sys.exit(main())
