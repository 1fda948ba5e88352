"""The families ClusterWatch borrows from node_exporter, against node_exporter's own fixtures.

tests/fixtures/node_exporter holds node_exporter's fixture files and what node_exporter exposes
for them (its e2e-output.txt, reduced; README.md there names the commit). The node and storage
collectors read the same files; family by family, every name they expose in node_exporter's
namespace must exist there with the same type and label names.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from exporter.collector import CollectorContext
from exporter.collectors.node import NodeCollector
from exporter.collectors.storage import StorageCollector
from exporter.config import ExporterConfig
from exporter.hostfs import HostFS

ROOT = Path(__file__).resolve().parents[1] / "fixtures" / "node_exporter"
NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL = re.compile(r'[{,]([a-zA-Z_][a-zA-Z0-9_]*)="')

# ClusterWatch's own families under node_: no node_exporter collector has these subsystems.
OWN_PREFIXES = ("node_storage_", "node_lustre_", "node_nvidia_fs_")
# Families node_exporter's e2e run cannot show (adjtimex needs the real kernel, uname is a
# system call): names, types and labels from its collector/timex.go and collector/uname.go.
NOT_IN_E2E = {
    "node_uname_info": ("gauge", {("domainname", "machine", "nodename", "release", "sysname", "version")}),
    **{f"node_timex_{name}": ("gauge", {()}) for name in (
        "offset_seconds", "frequency_adjustment_ratio", "maxerror_seconds", "estimated_error_seconds", "status",
        "loop_time_constant", "tick_seconds", "pps_frequency_hertz", "pps_jitter_seconds", "pps_shift_seconds",
        "pps_stability_hertz", "tai_offset_seconds", "sync_status")},
    **{f"node_timex_pps_{name}_total": ("counter", {()}) for name in (
        "jitter", "calibration", "error", "stability_exceeded")},
    # node_time_seconds and the zone offset change every run, so the e2e output drops their samples
    "node_time_seconds": ("gauge", {()}),
    "node_time_zone_offset_seconds": ("gauge", {("time_zone",)}),
    # not in node_exporter's linux e2e run (it leaves the filesystem collector out):
    # collector/filesystem_common.go's filesystemLabelNames
    **{f"node_filesystem_{name}": ("gauge", {("device", "device_error", "fstype", "mountpoint")}) for name in (
        "size_bytes", "free_bytes", "avail_bytes", "files", "files_free", "readonly", "device_error")},
}


def families(text: str) -> dict[str, tuple[str, set[tuple[str, ...]]]]:
    """name -> (TYPE, the label-name sets of its samples)."""
    types: dict[str, str] = {}
    labels: dict[str, set[tuple[str, ...]]] = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            types[name] = kind
            labels.setdefault(name, set())
        elif line and not line.startswith("#"):
            name = NAME.match(line).group(0)
            labels.setdefault(name, set()).add(tuple(sorted(LABEL.findall(line))))
    return {name: (types[name], labels[name]) for name in types}


def ours() -> dict[str, tuple[str, set[tuple[str, ...]]]]:
    ctx = CollectorContext(ExporterConfig(), HostFS(ROOT / "proc"), HostFS(ROOT / "sys"),
                           statvfs=lambda path: os.statvfs("/"))
    node = NodeCollector(ctx)
    node.adjtimex = lambda: (0, {field: 0 for field in (
        "offset", "freq", "maxerror", "esterror", "status", "constant", "tick", "ppsfreq", "jitter", "shift",
        "stabil", "jitcnt", "calcnt", "errcnt", "stbcnt", "tai")})
    out: list[str] = []
    node.collect().render_text(out)
    StorageCollector(ctx).collect().render_text(out)
    return families("".join(out))


def test_every_borrowed_family_has_node_exporters_name_type_and_labels() -> None:
    theirs = families((ROOT / "e2e-output-families.txt").read_text())
    mine = ours()
    checked = 0
    for name, (kind, labels) in sorted(mine.items()):
        if name.startswith(OWN_PREFIXES):
            continue
        if name in NOT_IN_E2E:
            expected_kind, expected_labels = NOT_IN_E2E[name]
            assert (kind, labels) == (expected_kind, expected_labels), name
            continue
        assert name in theirs, f"{name}: not a node_exporter name"
        their_kind, their_labels = theirs[name]
        assert kind == their_kind, f"{name}: {kind}, node_exporter says {their_kind}"
        if name.startswith("node_memory_") or name in ("node_disk_io_now",):
            their_labels = their_labels or {()}
        assert labels == their_labels, f"{name}: labels {labels}, node_exporter {their_labels}"
        checked += 1
    assert checked > 100  # cpu, memory, vmstat, disk, pressure, mountstats, filefd, clocksource...


def test_the_families_node_mixin_and_dashboards_read_are_there() -> None:
    mine = ours()
    for name in ("node_filefd_allocated", "node_filefd_maximum", "node_time_seconds", "node_uname_info",
                 "node_timex_offset_seconds", "node_timex_sync_status", "node_timex_maxerror_seconds",
                 "node_pressure_irq_stalled_seconds_total", "node_time_clocksource_current_info",
                 "node_mountstats_nfs_transport_sends_total", "node_vmstat_oom_kill"):
        assert name in mine, name
    assert mine["node_vmstat_pgfault"][0] == "untyped"
    assert ("export", "mountaddr", "protocol", "transport") in mine["node_mountstats_nfs_transport_bind_total"][1]
    assert "node_pressure_cpu_stalled_seconds_total" not in mine  # not a node_exporter family
