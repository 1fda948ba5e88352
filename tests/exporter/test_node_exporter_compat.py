"""The families ClusterWatch borrows from node_exporter, against node_exporter's own fixtures.

tests/fixtures/node_exporter holds node_exporter's fixture files (README.md there names the commit)
and clusterwatch/reference/node_exporter-e2e-families.txt what node_exporter exposes for them (its
e2e-output.txt, reduced). The node, InfiniBand and storage collectors read the same files; family
by family, every name they expose in node_exporter's namespace must exist there with the same type
and label names, and every other name is in one of ClusterWatch's own namespaces.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from cwkernel.metrics import MetricSpec
from exporter.collector import CollectorContext
from exporter.collectors import infiniband as infiniband_module
from exporter.collectors import node as node_module
from exporter.collectors import storage as storage_module
from exporter.collectors.infiniband import InfiniBandCollector
from exporter.collectors.node import NodeCollector
from exporter.collectors.storage import StorageCollector
from exporter.config import ExporterConfig
from exporter.hostfs import HostFS

ROOT = Path(__file__).resolve().parents[1] / "fixtures" / "node_exporter"
NODE_EXPORTER_FAMILIES = ROOT.parents[2] / "clusterwatch" / "reference" / "node_exporter-e2e-families.txt"
NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL = re.compile(r'[{,]([a-zA-Z_][a-zA-Z0-9_]*)="')

# ClusterWatch's own families: outside node_exporter's namespace, so a shared Prometheus never
# holds two meanings of one node_ name.
OWN_PREFIXES = ("storage_", "infiniband_port_")
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
    # InfiniBand counters their sys fixture has no file for (mlx4 without hw_counters): the names
    # collector/infiniband_linux.go declares, all per (device, port)
    "node_infiniband_lifespan_seconds": ("gauge", {("device", "port")}),
    **{f"node_infiniband_{name}_total": ("counter", {("device", "port")}) for name in (
        "excessive_buffer_overrun_errors", "local_link_integrity_errors", "port_receive_remote_physical_errors",
        "port_receive_switch_relay_errors", "symbol_error", "vl15_dropped", "duplicate_requests_packets",
        "implied_nak_seq_errors", "local_ack_timeout_errors", "np_cnp_packets_sent",
        "np_ecn_marked_roce_packets_received", "out_of_buffer_drops", "out_of_sequence_packets_received",
        "packet_sequence_errors", "req_cqes_errors", "req_cqes_flush_errors", "req_remote_access_errors",
        "req_remote_invalid_request_errors", "resp_cqes_errors", "resp_cqes_flush_errors",
        "resp_local_length_errors", "resp_remote_access_errors", "rnr_nak_retry_packets_received",
        "roce_adp_retransmits", "roce_adp_retransmits_timeout", "roce_slow_restart_used", "roce_slow_restart_cnps",
        "roce_slow_restart", "rp_cnp_packets_handled", "rp_cnp_ignored_packets_received", "rx_atomic_requests",
        "rx_dct_connect_requests", "rx_icrc_encapsulated_errors", "rx_read_requests", "rx_write_requests")},
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
    InfiniBandCollector(ctx).collect().render_text(out)
    return families("".join(out))


def test_every_borrowed_family_has_node_exporters_name_type_and_labels() -> None:
    theirs = families(NODE_EXPORTER_FAMILIES.read_text())
    mine = ours()
    checked = 0
    for name, (kind, labels) in sorted(mine.items()):
        if name.startswith(OWN_PREFIXES):
            continue
        assert name.startswith("node_"), f"{name}: neither node_exporter's namespace nor one of ours"
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


def test_no_table_declares_a_node_name_node_exporter_lacks() -> None:
    """The tables, not one fixture's output: a family the fixtures never trigger (a counter only a
    newer kernel writes, say) must not invent a node_ name either."""
    theirs = families(NODE_EXPORTER_FAMILIES.read_text())
    declared = [spec.name for module in (node_module, infiniband_module, storage_module)
                for table in vars(module).values() if isinstance(table, dict)
                for spec in table.values() if isinstance(spec, MetricSpec)]
    assert len(declared) > 150
    invented = [name for name in declared
                if name.startswith("node_") and "<" not in name and name not in theirs and name not in NOT_IN_E2E]
    assert invented == []
    assert all(name.startswith(("node_", *OWN_PREFIXES)) for name in declared)
