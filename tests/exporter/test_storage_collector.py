"""Storage collector: NFS (node_exporter's mountstats names), Lustre llite and GPUDirect Storage."""
from __future__ import annotations

from pathlib import Path

import pytest

from exporter.collector import CollectorContext, NoDataError
from exporter.collectors.storage import StorageCollector
from exporter.config import ExporterConfig
from exporter.hostfs import HostFS, MemoryFS
from tests.exporter.helpers import parse_exposition, render, sample, series

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
MIB = 1 << 20
HOME = {"device": "10.10.0.5:/export/home", "fstype": "nfs4", "mountpoint": "/home"}
DATASETS = {"device": "10.10.0.6:/datasets", "fstype": "nfs", "mountpoint": "/datasets"}
LUSTRE = {"device": "10.20.0.1@o2ib:10.20.0.2@o2ib:/lustre1", "fstype": "lustre", "mountpoint": "/lustre"}
HOME_NFS = {"export": "10.10.0.5:/export/home", "protocol": "tcp", "mountaddr": "10.10.0.5"}


def scrape(procfs, sysfs=None) -> tuple[dict, CollectorContext]:
    ctx = CollectorContext(ExporterConfig(), procfs, sysfs if sysfs is not None else MemoryFS())
    return parse_exposition(render(StorageCollector(ctx).collect())), ctx


def good() -> tuple[dict, CollectorContext]:
    return scrape(HostFS(FIXTURES / "node" / "proc"), HostFS(FIXTURES / "node" / "sys"))


def test_per_mount_bytes_and_operations_for_nfs_and_lustre() -> None:
    samples, ctx = good()
    # NFS: application bytes = read() + O_DIRECT; operations = READ/WRITE RPCs
    assert sample(samples, "storage_read_bytes_total", **HOME) == 136365412376 + 2147483648
    assert sample(samples, "storage_written_bytes_total", **HOME) == 91997312456 + 1073741824
    assert sample(samples, "storage_read_operations_total", **HOME) == 1298765
    assert sample(samples, "storage_write_operations_total", **HOME) == 876543
    assert sample(samples, "storage_read_bytes_total", **DATASETS) == 10356741586944 + 1099511627776
    # Lustre: llite read_bytes/write_bytes sum and sample count
    assert sample(samples, "storage_read_bytes_total", **LUSTRE) == 28991029248000
    assert sample(samples, "storage_written_bytes_total", **LUSTRE) == 10995116277760
    assert sample(samples, "storage_read_operations_total", **LUSTRE) == 3456789
    assert sample(samples, "storage_write_operations_total", **LUSTRE) == 1234567
    assert sample(samples, "storage_lustre_client_operations_total", device=LUSTRE["device"], mountpoint="/lustre",
                  operation="fsync") == 3456
    assert ctx.errors.counts() == {}


def test_nfs_retransmissions_timeouts_and_rpc_errors_are_storage_errors() -> None:
    samples, _ = good()
    # READ 1298777-1298765 + WRITE 876549-876543 retransmissions; timeouts 3+1; errors 2+12
    assert sample(samples, "storage_errors_total", kind="retransmission", **HOME) == 18
    assert sample(samples, "storage_errors_total", kind="major_timeout", **HOME) == 4
    assert sample(samples, "storage_errors_total", kind="rpc_error", **HOME) == 14
    assert sample(samples, "storage_errors_total", kind="major_timeout", **DATASETS) == 7
    # the NFSv3 kernel line has 8 columns: no rpc_error series rather than a false zero
    assert ("storage_errors_total", frozenset({**DATASETS, "kind": "rpc_error"}.items())) not in samples


def test_nfs_uses_node_exporters_mountstats_names_and_labels() -> None:
    samples, _ = good()
    assert sample(samples, "node_mountstats_nfs_read_bytes_total", **HOME_NFS) == 136365412376
    assert sample(samples, "node_mountstats_nfs_direct_write_bytes_total", **HOME_NFS) == 1073741824
    assert sample(samples, "node_mountstats_nfs_total_read_bytes_total", **HOME_NFS) == 136365402112
    assert sample(samples, "node_mountstats_nfs_age_seconds_total", **HOME_NFS) == 864123
    assert sample(samples, "node_mountstats_nfs_operations_requests_total", operation="READ", **HOME_NFS) == 1298765
    assert sample(samples, "node_mountstats_nfs_operations_transmissions_total", operation="READ", **HOME_NFS) == 1298777
    assert sample(samples, "node_mountstats_nfs_operations_major_timeouts_total", operation="READ", **HOME_NFS) == 3
    assert sample(samples, "node_mountstats_nfs_operations_response_time_seconds_total", operation="READ",
                  **HOME_NFS) == pytest.approx(1234.567)
    assert sample(samples, "node_mountstats_nfs_event_vfs_open_total", **HOME_NFS) == 5678901
    # nconnect=4: one series per TCP connection, told apart by transport (node_exporter 1.8+)
    sends = {s["transport"]: sample(samples, "node_mountstats_nfs_transport_sends_total", **s)
             for s in series(samples, "node_mountstats_nfs_transport_sends_total") if s["export"] == HOME_NFS["export"]}
    assert sorted(sends) == ["0", "1", "2", "3"]
    assert sum(sends.values()) == 4 * 2000000 + 6
    assert max(sample(samples, "node_mountstats_nfs_transport_maximum_rpc_slots", transport=t, **HOME_NFS)
               for t in sends) == 64
    rdma = {"export": "10.10.0.6:/datasets", "protocol": "rdma", "mountaddr": "10.10.0.6"}
    assert sample(samples, "node_mountstats_nfs_operations_requests_total", operation="READ", **rdma) == 9876543
    assert sample(samples, "node_mountstats_nfs_transport_sends_total", transport="0", **rdma) == 9876543


def test_gpudirect_storage_counters() -> None:
    samples, _ = good()
    assert sample(samples, "storage_nvidia_fs_info", gds_version="1.10.1.6", driver_version="2.20.5") == 1
    assert sample(samples, "storage_nvidia_fs_operations_total", op="read") == 987654
    assert sample(samples, "storage_nvidia_fs_operations_total", op="write") == 456789
    assert sample(samples, "storage_nvidia_fs_operation_errors_total", op="write") == 9
    assert sample(samples, "storage_nvidia_fs_io_state_errors_total", op="read") == 1
    assert sample(samples, "storage_nvidia_fs_bytes_total", op="read") == 3456789 * MIB
    assert sample(samples, "storage_nvidia_fs_bytes_total", op="write") == 1234567 * MIB
    assert sample(samples, "storage_nvidia_fs_errors_total", kind="dma_map") == 2
    assert sample(samples, "storage_nvidia_fs_average_latency_seconds", op="read") == pytest.approx(567e-6)
    assert len(series(samples, "storage_nvidia_fs_gpu_registered_bytes")) == 8
    assert sample(samples, "storage_nvidia_fs_gpu_max_pinned_bytes", uuid="GPU-1a2b3c4d-5e6f-7a8b-9c0d-000000000002",
                  pci_bus_id="0000:3a:00.0") == 384 * MIB


def test_legacy_procfs_lustre_location_and_a_twice_mounted_file_system() -> None:
    stats = (FIXTURES / "node" / "sys" / "kernel/debug/lustre/llite/lustre1-ffff9a2b3c4d5000/stats").read_text()
    procfs = MemoryFS({
        "self/mounts": "mgs@o2ib:/scratch /scratch lustre rw 0 0\nmgs@o2ib:/scratch /scratch2 lustre rw 0 0\n",
        "fs/lustre/llite/scratch-ffff000000000001/stats": stats,
        "fs/lustre/llite/scratch-ffff000000000002/stats": stats,
    })
    samples, ctx = scrape(procfs)
    # llite names cannot tell the two mounts apart: one series for the file system, summed
    labels = {"device": "mgs@o2ib:/scratch", "fstype": "lustre", "mountpoint": ""}
    assert sample(samples, "storage_read_bytes_total", **labels) == 2 * 28991029248000
    assert ctx.errors.counts() == {}


def test_malformed_and_unreadable_sources_are_skipped_counted_and_the_rest_exposed() -> None:
    # node-broken: /scratch's mountstats entry has a truncated bytes line, nvidia-fs stats are garbled
    samples, ctx = scrape(HostFS(FIXTURES / "node-broken" / "proc"), HostFS(FIXTURES / "node-broken" / "sys"))
    assert sample(samples, "storage_read_bytes_total", **HOME) == 136365412376 + 2147483648
    assert sample(samples, "node_mountstats_nfs_read_bytes_total", **HOME_NFS) == 136365412376
    assert {s["mountpoint"] for s in series(samples, "storage_read_bytes_total")} == {"/home"}
    assert not [name for name, _ in samples if name.startswith("storage_nvidia_fs_")]
    assert ctx.errors.counts() == {"storage": 2}


def test_unreadable_nvidia_fs_counts_as_error_not_as_no_data() -> None:
    def denied() -> str:
        raise PermissionError(13, "Permission denied")

    ctx = CollectorContext(ExporterConfig(), MemoryFS({"driver/nvidia-fs/stats": denied}), MemoryFS())
    assert list(StorageCollector(ctx).collect()) == []
    assert ctx.errors.counts() == {"storage": 1}


def test_no_network_file_system_and_no_gds_means_no_data() -> None:
    procfs = MemoryFS({
        "self/mountstats": "device /dev/sda2 mounted on / with fstype ext4\n",
        "self/mounts": "/dev/sda2 / ext4 rw 0 0\n",
    })
    with pytest.raises(NoDataError):
        scrape(procfs)
    with pytest.raises(NoDataError):
        scrape(MemoryFS())
