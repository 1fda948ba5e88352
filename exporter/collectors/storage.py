"""Storage collector: bytes and operations per network/parallel file system mount, and GPUDirect Storage.

Checkpoints and data loading of a training job go through these paths, so their throughput and
errors belong beside the GPUs'. Three sources, each optional:

- NFS, from ``/proc/self/mountstats``: node_exporter's ``node_mountstats_nfs_*`` families with its
  labels (``export, protocol, mountaddr``). NFS over RDMA is parsed too. With ``nconnect`` a mount
  has several transports: as in node_exporter 1.8+, each is its own series of the
  ``node_mountstats_nfs_transport_*`` families, told apart by ``transport`` (its index, "0", "1"...).
- Lustre client ``llite/<fsname>-<instance>/stats``, under debugfs (``/sys/kernel/debug/lustre``,
  Lustre 2.12+) or procfs (``/proc/fs/lustre``, older clients). An instance is attributed to the
  mount whose device ends in ``:/<fsname>``.
- GPUDirect Storage, from ``/proc/driver/nvidia-fs/stats`` when the nvidia-fs driver is loaded.

``storage_*`` (ClusterWatch names) give one view across NFS and Lustre with the label set of
``node_filesystem_*`` (``device, fstype, mountpoint``), so they join with the node collector's
file system sizes. NFS retransmissions, major timeouts and RPC errors count as storage errors.
"""
from __future__ import annotations

from cwkernel.metrics import FamilySet, counter, gauge, metric_table
from exporter.collector import Collector, NoDataError, register_collector
from exporter.procfs import (
    MIB,
    NFS_EVENTS,
    Mount,
    NFSMountStats,
    NvfsStats,
    parse_lprocfs_stats,
    parse_nfs_mountstats,
    parse_nvfs_stats,
    parse_or_skip,
    read_mounts,
    read_source,
    split_mountstats,
)

FS_LABELS = ("device", "fstype", "mountpoint")
NFS_LABELS = ("export", "protocol", "mountaddr")
NFS_OP_LABELS = NFS_LABELS + ("operation",)
NFS_TRANSPORT_LABELS = NFS_LABELS + ("transport",)
MOUNTSTATS = "/proc/self/mountstats"
NVFS_STATS = "driver/nvidia-fs/stats"
# (tree attribute on the context, directory): debugfs first, the location of current clients.
LLITE_DIRS = (("sysfs", "kernel/debug/lustre/llite"), ("procfs", "fs/lustre/llite"))
LLITE_SRC = "/sys/kernel/debug/lustre/llite/<fs>-<inst>/stats or /proc/fs/lustre/llite/<fs>-<inst>/stats"

# "bytes:" counters -> node_exporter name and help
NFS_BYTE_METRICS = (
    ("normal_read", "read_bytes_total", "Number of bytes read using the read() syscall."),
    ("normal_write", "write_bytes_total", "Number of bytes written using the write() syscall."),
    ("direct_read", "direct_read_bytes_total", "Number of bytes read using the read() syscall in O_DIRECT mode."),
    ("direct_write", "direct_write_bytes_total", "Number of bytes written using the write() syscall in O_DIRECT mode."),
    ("server_read", "total_read_bytes_total", "Number of bytes read from the NFS server, in total."),
    ("server_write", "total_write_bytes_total", "Number of bytes written to the NFS server, in total."),
    ("read_pages", "read_pages_total", "Number of pages read directly via mmap()'d files."),
    ("write_pages", "write_pages_total", "Number of pages written directly via mmap()'d files."),
)

# per-op attribute -> node_exporter name, help, divisor to base units
NFS_OP_METRICS = (
    ("requests", "operations_requests_total", "Number of requests performed for a given operation.", 1),
    ("transmissions", "operations_transmissions_total", "Number of times an actual RPC request has been transmitted for a given operation.", 1),
    ("major_timeouts", "operations_major_timeouts_total", "Number of times a request has had a major timeout for a given operation.", 1),
    ("bytes_sent", "operations_sent_bytes_total", "Number of bytes sent for a given operation, including RPC headers and payload.", 1),
    ("bytes_received", "operations_received_bytes_total", "Number of bytes received for a given operation, including RPC headers and payload.", 1),
    ("queue_ms", "operations_queue_time_seconds_total", "Duration all requests spent queued for transmission for a given operation before they were sent, in seconds.", 1000),
    ("rtt_ms", "operations_response_time_seconds_total", "Duration all requests took to get a reply back after a request for a given operation was transmitted, in seconds.", 1000),
    ("execute_ms", "operations_request_time_seconds_total", "Duration all requests took from when a request was enqueued to when it was completely handled for a given operation, in seconds.", 1000),
)
# The per-operation error count newer kernels write has no node_exporter family: it is summed into
# storage_errors_total{kind="rpc_error"} rather than given an invented node_ name.

# xprt field -> node_exporter name, help (one series per transport: nconnect mounts have several)
NFS_TRANSPORT_METRICS = (
    ("bind", "transport_bind_total", "Number of times the client has had to establish a connection from scratch to the NFS server."),
    ("connect", "transport_connect_total", "Number of times the client has made a TCP connection to the NFS server."),
    ("idle_time", "transport_idle_time_seconds", "Duration since the NFS mount last saw any RPC traffic, in seconds."),
    ("sends", "transport_sends_total", "Number of RPC requests for this mount sent to the NFS server."),
    ("receives", "transport_receives_total", "Number of RPC responses for this mount received from the NFS server."),
    ("bad_xids", "transport_bad_transaction_ids_total", "Number of times the NFS server sent a response with a transaction ID unknown to this client."),
    ("backlog_u", "transport_backlog_queue_total", "Total number of items added to the RPC backlog queue."),
    ("max_slots", "transport_maximum_rpc_slots", "Maximum number of simultaneously active RPC requests ever used."),
    ("sending_u", "transport_sending_queue_total", "Total number of items added to the RPC transmission sending queue."),
    ("pending_u", "transport_pending_queue_total", "Total number of items added to the RPC transmission pending queue."),
)

# "events:" counters exposed (node_exporter leaves congestion_wait out: always 0 since 2.6.x)
NFS_EVENT_NAMES = {
    "vfs_file_release": "event_vfs_file_release_total",
    "truncation": "event_truncation_total",
    "write_extension": "event_write_extension_total",
}
NFS_EVENT_METRICS = tuple(
    (event, NFS_EVENT_NAMES.get(event, f"event_{event}_total")) for event in NFS_EVENTS if event != "congestion_wait"
)

# nvidia-fs sections -> op label
NVFS_OPS = (("Reads", "read"), ("Writes", "write"), ("Batches", "batch"), ("Mmap", "mmap"), ("Bar1-map", "bar1_map"))
NVFS_ERROR_KINDS = (
    ("Error", "cpu-gpu-pages", "cpu_gpu_pages"), ("Error", "sg-ext", "sg_ext"),
    ("Error", "dma-map", "dma_map"), ("Error", "dma-ref", "dma_ref"),
    ("Writes", "pg-cache-fail", "page_cache_fail"), ("Writes", "pg-cache-eio", "page_cache_eio"),
)
NVFS_SRC = "/proc/driver/nvidia-fs/stats"


def _nfs_name(suffix: str) -> str:
    return f"node_mountstats_nfs_{suffix}"


TABLE = metric_table(
    counter("storage_read_bytes_total", "Bytes read by applications from this network or parallel file "
            "system mount (NFS: read() and O_DIRECT reads; Lustre: llite read_bytes).", FS_LABELS, "bytes",
            f"{MOUNTSTATS} bytes; {LLITE_SRC} read_bytes"),
    counter("storage_written_bytes_total", "Bytes written by applications to this mount (NFS: write() and "
            "O_DIRECT writes; Lustre: llite write_bytes).", FS_LABELS, "bytes",
            f"{MOUNTSTATS} bytes; {LLITE_SRC} write_bytes"),
    counter("storage_read_operations_total", "Read operations on this mount (NFS: READ RPCs; Lustre: read "
            "calls).", FS_LABELS, "operations", f"{MOUNTSTATS} per-op READ; {LLITE_SRC} read_bytes samples"),
    counter("storage_write_operations_total", "Write operations on this mount (NFS: WRITE RPCs; Lustre: write "
            "calls).", FS_LABELS, "operations", f"{MOUNTSTATS} per-op WRITE; {LLITE_SRC} write_bytes samples"),
    counter("storage_errors_total", "Errors on this mount by kind (NFS: retransmission, major_timeout, "
            "rpc_error summed over operations).", FS_LABELS + ("kind",), "errors", f"{MOUNTSTATS} per-op"),
    counter("storage_lustre_client_operations_total", "Lustre client (llite) operations by kind: open, close, "
            "getattr, fsync, statfs...", ("device", "mountpoint", "operation"), "operations", LLITE_SRC),
    counter(_nfs_name("age_seconds_total"), "The age of the NFS mount in seconds.", NFS_LABELS, "seconds",
            f"{MOUNTSTATS} age"),
    *(counter(_nfs_name(name), text, NFS_LABELS, "pages" if "pages" in name else "bytes", f"{MOUNTSTATS} bytes")
      for _, name, text in NFS_BYTE_METRICS),
    *(counter(_nfs_name(name), text, NFS_OP_LABELS,
              "seconds" if div == 1000 else "bytes" if "bytes" in name else "requests", f"{MOUNTSTATS} per-op")
      for _, name, text, div in NFS_OP_METRICS),
    *((gauge if not name.endswith("_total") else counter)(
        _nfs_name(name), text, NFS_TRANSPORT_LABELS,
        "seconds" if "seconds" in name else "requests", f"{MOUNTSTATS} xprt (one series per transport)")
      for _, name, text in NFS_TRANSPORT_METRICS),
    *(counter(_nfs_name(name), f"NFS event counter {event}.", NFS_LABELS, "events", f"{MOUNTSTATS} events")
      for event, name in NFS_EVENT_METRICS),
    gauge("storage_nvidia_fs_info", "GPUDirect Storage (nvidia-fs) versions, value is always 1.",
          ("gds_version", "driver_version"), "info", NVFS_SRC),
    counter("storage_nvidia_fs_operations_total", "GPUDirect Storage operations issued, by operation.", ("op",),
            "operations", f"{NVFS_SRC} n="),
    counter("storage_nvidia_fs_operation_errors_total", "GPUDirect Storage operations that failed, by operation.",
            ("op",), "errors", f"{NVFS_SRC} err="),
    counter("storage_nvidia_fs_io_state_errors_total", "GPUDirect Storage reads/writes that failed on an I/O state "
            "error.", ("op",), "errors", f"{NVFS_SRC} io_state_err="),
    counter("storage_nvidia_fs_bytes_total", "Bytes moved by GPUDirect Storage reads/writes (the driver counts "
            "whole MiB).", ("op",), "bytes", f"{NVFS_SRC} readMiB=, writeMiB="),
    counter("storage_nvidia_fs_errors_total", "GPUDirect Storage driver errors by kind (DMA mapping, scatter-gather, "
            "page cache fallback).", ("kind",), "errors", f"{NVFS_SRC} Error:, Writes: pg-cache-*"),
    gauge("storage_nvidia_fs_active_operations", "GPUDirect Storage operations in flight.", ("op",), "operations",
          f"{NVFS_SRC} Ops:"),
    gauge("storage_nvidia_fs_average_latency_seconds", "GPUDirect Storage average latency as the driver last "
          "computed it.", ("op",), "seconds", f"{NVFS_SRC} Avg-Latency(usec)="),
    gauge("storage_nvidia_fs_gpu_registered_bytes", "GPU memory registered (BAR-pinned) for GPUDirect Storage.",
          ("uuid", "pci_bus_id"), "bytes", f"{NVFS_SRC} GPU Registered_MiB="),
    gauge("storage_nvidia_fs_gpu_cache_bytes", "GPU bounce-buffer memory used by GPUDirect Storage.",
          ("uuid", "pci_bus_id"), "bytes", f"{NVFS_SRC} GPU Cache_MiB="),
    gauge("storage_nvidia_fs_gpu_max_pinned_bytes", "Peak GPU memory pinned for GPUDirect Storage.",
          ("uuid", "pci_bus_id"), "bytes", f"{NVFS_SRC} GPU max_pinned_MiB="),
)


@register_collector("storage")
class StorageCollector(Collector):
    """Network and parallel file systems (NFS, Lustre) and GPUDirect Storage: bytes, operations, errors."""

    def collect(self) -> FamilySet:
        out = FamilySet(TABLE)
        mounts = None
        found = False
        mountstats = read_source(self.ctx.procfs, "self/mountstats", split_mountstats, self.skip, absent_ok=True)
        llite = self._llite_instances()
        if mountstats or llite:
            mounts = read_mounts(self.ctx.procfs, self.skip) or []
        if mountstats:
            found = True
            self._nfs(out, mountstats, mounts or [])
        if llite:
            found = True
            self._lustre(out, llite, mounts or [])
        nvfs = read_source(self.ctx.procfs, NVFS_STATS, parse_nvfs_stats, self.skip, absent_ok=True)
        if nvfs is not None:
            found = True
            self._nvfs(out, nvfs)
        elif self.ctx.procfs.exists(NVFS_STATS):
            found = True  # loaded but unreadable: counted by read_source, not "no data"
        if not found:
            raise NoDataError("no NFS mounts, no Lustre client and no nvidia-fs driver")
        return out

    # --- NFS ---------------------------------------------------------------------------------

    def _nfs(self, out: FamilySet, blocks: list[tuple[str, str, str, str]], mounts: list[Mount]) -> None:
        by_path = {mount.mountpoint: mount for mount in mounts}
        seen_exports: set[tuple[str, str, str]] = set()
        for device, mountpoint, fstype, body in blocks:
            stats = parse_or_skip(f"{MOUNTSTATS} {mountpoint}", body,
                                  lambda text: parse_nfs_mountstats(device, mountpoint, fstype, text), self.skip)
            if stats is None:
                continue
            mount = by_path.get(mountpoint)
            # node_exporter takes the server address from the mount table's addr= option
            addr = (mount.option("addr") if mount else None) or stats.options.get("mountaddr", "")
            self._nfs_generic(out, stats)
            protocol = stats.transports[0][0] if stats.transports else stats.options.get("proto", "")
            key = (device, protocol, addr)
            if key in seen_exports:
                continue  # bind mounts of one export share its statistics; expose them once
            seen_exports.add(key)
            self._nfs_node_exporter(out, stats, {"export": device, "protocol": protocol, "mountaddr": addr})

    def _nfs_generic(self, out: FamilySet, stats: NFSMountStats) -> None:
        labels = {"device": stats.device, "fstype": stats.fstype, "mountpoint": stats.mountpoint}
        out.add("storage_read_bytes_total", stats.bytes["normal_read"] + stats.bytes["direct_read"], **labels)
        out.add("storage_written_bytes_total", stats.bytes["normal_write"] + stats.bytes["direct_write"], **labels)
        ops = {op.name: op for op in stats.operations}
        if "READ" in ops:
            out.add("storage_read_operations_total", ops["READ"].requests, **labels)
        if "WRITE" in ops:
            out.add("storage_write_operations_total", ops["WRITE"].requests, **labels)
        retransmissions = sum(max(0, op.transmissions - op.requests) for op in stats.operations)
        out.add("storage_errors_total", retransmissions, kind="retransmission", **labels)
        out.add("storage_errors_total", sum(op.major_timeouts for op in stats.operations),
                kind="major_timeout", **labels)
        if any(op.errors is not None for op in stats.operations):
            out.add("storage_errors_total", sum(op.errors or 0 for op in stats.operations),
                    kind="rpc_error", **labels)

    def _nfs_node_exporter(self, out: FamilySet, stats: NFSMountStats, labels: dict[str, str]) -> None:
        out.add(_nfs_name("age_seconds_total"), stats.age_seconds, **labels)
        for field, name, _ in NFS_BYTE_METRICS:
            out.add(_nfs_name(name), stats.bytes[field], **labels)
        for op in stats.operations:
            for attr, name, _, divisor in NFS_OP_METRICS:
                value = getattr(op, attr)
                if value is not None:
                    out.add(_nfs_name(name), value / divisor, operation=op.name, **labels)
        for index, (_, fields) in enumerate(stats.transports):
            for field, name, _ in NFS_TRANSPORT_METRICS:
                if field in fields:
                    out.add(_nfs_name(name), fields[field], transport=str(index), **labels)
        for event, name in NFS_EVENT_METRICS:
            if event in stats.events:
                out.add(_nfs_name(name), stats.events[event], **labels)

    # --- Lustre ------------------------------------------------------------------------------

    def _llite_instances(self) -> list[tuple[str, str]]:
        """(tree attribute, stats path) of every llite instance in either location."""
        found = []
        for tree_name, directory in LLITE_DIRS:
            tree = getattr(self.ctx, tree_name)
            try:
                names = tree.listdir(directory)
            except FileNotFoundError:
                continue
            except OSError as exc:
                self.skip(directory, exc)
                continue
            found.extend((tree_name, f"{directory}/{name}/stats") for name in names)
        return found

    def _lustre(self, out: FamilySet, instances: list[tuple[str, str]], mounts: list[Mount]) -> None:
        by_fsname: dict[str, list[Mount]] = {}
        for mount in mounts:
            if mount.fstype == "lustre":
                by_fsname.setdefault(mount.device.rpartition(":/")[2], []).append(mount)
        # Instances that map to the same (device, mountpoint) are summed, so a file system mounted
        # twice (which llite names cannot tell apart) still yields one consistent series.
        totals: dict[tuple[str, str], dict[str, int]] = {}
        for tree_name, path in instances:
            counters = read_source(getattr(self.ctx, tree_name), path, parse_lprocfs_stats, self.skip)
            if counters is None:
                continue
            fsname = path.split("/")[-2].rpartition("-")[0]
            candidates = by_fsname.get(fsname, [])
            device = candidates[0].device if candidates else fsname
            mountpoint = candidates[0].mountpoint if len(candidates) == 1 else ""
            acc = totals.setdefault((device, mountpoint), {})
            for name, value in counters.items():
                if name in ("read_bytes", "write_bytes"):
                    acc[f"{name}:count"] = acc.get(f"{name}:count", 0) + value.count
                    acc[f"{name}:sum"] = acc.get(f"{name}:sum", 0) + (value.total or 0)
                else:
                    acc[name] = acc.get(name, 0) + value.count
        for (device, mountpoint), acc in totals.items():
            labels = {"device": device, "fstype": "lustre", "mountpoint": mountpoint}
            for stat, bytes_name, ops_name in (
                ("read_bytes", "storage_read_bytes_total", "storage_read_operations_total"),
                ("write_bytes", "storage_written_bytes_total", "storage_write_operations_total"),
            ):
                # lprocfs omits a counter that has never been incremented: that is zero, not absent.
                out.add(bytes_name, acc.get(f"{stat}:sum", 0), **labels)
                out.add(ops_name, acc.get(f"{stat}:count", 0), **labels)
            for name, count in acc.items():
                if ":" not in name and name not in ("read", "write"):
                    out.add("storage_lustre_client_operations_total", count, device=device,
                            mountpoint=mountpoint, operation=name)

    # --- GPUDirect Storage -------------------------------------------------------------------

    def _nvfs(self, out: FamilySet, stats: NvfsStats) -> None:
        out.add("storage_nvidia_fs_info", 1, gds_version=stats.gds_version, driver_version=stats.driver_version)
        sections = stats.sections
        for section, op in NVFS_OPS:
            values = sections.get(section, {})
            if "n" in values:
                out.add("storage_nvidia_fs_operations_total", values["n"], op=op)
            if "err" in values:
                out.add("storage_nvidia_fs_operation_errors_total", values["err"], op=op)
            if "io_state_err" in values:
                out.add("storage_nvidia_fs_io_state_errors_total", values["io_state_err"], op=op)
            latency = values.get("Avg-Latency(usec)", values.get("Avg-Submit-Latency(usec)"))
            if latency is not None:
                out.add("storage_nvidia_fs_average_latency_seconds", latency / 1e6, op=op)
        for section, key, op in (("Reads", "readMiB", "read"), ("Writes", "writeMiB", "write")):
            if key in sections.get(section, {}):
                out.add("storage_nvidia_fs_bytes_total", sections[section][key] * MIB, op=op)
        for section, key, kind in NVFS_ERROR_KINDS:
            if key in sections.get(section, {}):
                out.add("storage_nvidia_fs_errors_total", sections[section][key], kind=kind)
        for key, op in (("Read", "read"), ("Write", "write"), ("BatchIO", "batch")):
            if key in sections.get("Ops", {}):
                out.add("storage_nvidia_fs_active_operations", sections["Ops"][key], op=op)
        for gpu in stats.gpus:
            labels = {"uuid": f"GPU-{gpu.uuid}", "pci_bus_id": gpu.pci_bus_id}
            for key, name in (("Registered_MiB", "storage_nvidia_fs_gpu_registered_bytes"),
                              ("Cache_MiB", "storage_nvidia_fs_gpu_cache_bytes"),
                              ("max_pinned_MiB", "storage_nvidia_fs_gpu_max_pinned_bytes")):
                if key in gpu.values:
                    out.add(name, gpu.values[key] * MIB, **labels)
