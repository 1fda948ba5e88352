"""Node collector on the GPU-node fixture tree: node_exporter's names, labels and units."""
from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from exporter.collector import CollectorContext, NoDataError
from exporter.collectors.node import NodeCollector
from exporter.config import ExporterConfig
from exporter.hostfs import HostFS, MemoryFS
from tests.exporter.helpers import parse_exposition, render, sample, series

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
GOOD = FIXTURES / "node"
BROKEN = FIXTURES / "node-broken"
BLOCK = 4096


def fake_statvfs(path: str) -> os.statvfs_result:
    # (bsize, frsize, blocks, bfree, bavail, files, ffree, favail, flag, namemax)
    readonly = os.ST_RDONLY if path == "/datasets" else 0
    return os.statvfs_result((BLOCK, BLOCK, 1_000_000, 400_000, 300_000, 65_536, 30_000, 30_000, readonly, 255))


def make(root: Path = GOOD, statvfs=fake_statvfs, **config) -> tuple[NodeCollector, CollectorContext]:
    ctx = CollectorContext(ExporterConfig(**config), HostFS(root / "proc"), HostFS(root / "sys"), statvfs=statvfs)
    return NodeCollector(ctx), ctx


def scrape(collector: NodeCollector):
    return parse_exposition(render(collector.collect()))


def test_cpu_seconds_per_cpu_and_mode_from_user_hz() -> None:
    samples = scrape(make()[0])
    assert len(series(samples, "node_cpu_seconds_total")) == 16 * 8
    assert sample(samples, "node_cpu_seconds_total", cpu="0", mode="user") == pytest.approx(84123.45)
    assert sample(samples, "node_cpu_seconds_total", cpu="15", mode="idle") == pytest.approx((98765432 - 3011 * 15) / 100)
    assert sample(samples, "node_cpu_guest_seconds_total", cpu="3", mode="user") == pytest.approx(1.53)
    assert sample(samples, "node_boot_time_seconds") == 1715244000
    assert sample(samples, "node_context_switches_total") == 123456789012
    assert sample(samples, "node_procs_running") == 9
    assert sample(samples, "node_procs_blocked") == 2


def test_load_memory_and_vmstat() -> None:
    samples = scrape(make()[0])
    assert (sample(samples, "node_load1"), sample(samples, "node_load5"), sample(samples, "node_load15")) == (12.34, 10.56, 8.02)
    assert sample(samples, "node_memory_MemTotal_bytes") == 2113389368 * 1024
    assert sample(samples, "node_memory_MemAvailable_bytes") == 1876543210 * 1024
    assert sample(samples, "node_memory_SwapFree_bytes") == 8388604 * 1024
    assert sample(samples, "node_memory_Active_anon_bytes") == 123456789 * 1024
    assert sample(samples, "node_memory_HugePages_Total") == 0  # a count: no _bytes, as node_exporter
    assert sample(samples, "node_vmstat_oom_kill") == 3
    assert sample(samples, "node_vmstat_pgmajfault") == 123456
    assert not series(samples, "node_vmstat_numa_hit")  # outside node_exporter's default field list


def test_disks_exclude_partitions_and_loops_and_convert_units() -> None:
    samples = scrape(make()[0])
    devices = {s["device"] for s in series(samples, "node_disk_read_bytes_total")}
    assert devices == {f"nvme{i}n1" for i in range(8)} | {"sda", "md127"}
    assert sample(samples, "node_disk_read_bytes_total", device="nvme3n1") == (3456789012 + 12345 * 3) * 512
    assert sample(samples, "node_disk_written_bytes_total", device="nvme0n1") == 2345678901 * 512
    assert sample(samples, "node_disk_reads_completed_total", device="nvme1n1") == 4568890
    assert sample(samples, "node_disk_writes_completed_total", device="sda") == 234567
    assert sample(samples, "node_disk_io_time_seconds_total", device="nvme0n1") == pytest.approx(1234.567)
    assert sample(samples, "node_disk_io_now", device="nvme0n1") == 2
    assert sample(samples, "node_disk_flush_requests_total", device="nvme0n1") == 5678


def test_network_and_pressure() -> None:
    samples = scrape(make()[0])
    assert {s["device"] for s in series(samples, "node_network_receive_bytes_total")} == {"lo", "eno1", "ib0", "ib1", "docker0"}
    assert sample(samples, "node_network_receive_bytes_total", device="ib0") == 345678901234
    assert sample(samples, "node_network_transmit_bytes_total", device="ib0") == 456789012345
    assert sample(samples, "node_network_receive_errs_total", device="eno1") == 3
    assert sample(samples, "node_network_receive_drop_total", device="eno1") == 17
    assert sample(samples, "node_pressure_cpu_waiting_seconds_total") == pytest.approx(123.456789)
    assert sample(samples, "node_pressure_memory_stalled_seconds_total") == pytest.approx(1.234567)
    assert sample(samples, "node_pressure_io_waiting_seconds_total") == pytest.approx(34.56789)
    # node_exporter 1.8+: irq "full" (the file has no "some" line), and no cpu "full" family.
    assert sample(samples, "node_pressure_irq_stalled_seconds_total") == pytest.approx(0.008494)
    assert not series(samples, "node_pressure_cpu_stalled_seconds_total")


def test_vmstat_is_untyped_as_node_exporter() -> None:
    text = render(make()[0].collect())
    assert "# TYPE node_vmstat_oom_kill untyped" in text
    assert "# TYPE node_vmstat_pgmajfault untyped" in text


def test_filesystems_default_to_real_mounts_as_node_exporter() -> None:
    samples = scrape(make()[0])
    mounts = {(s["mountpoint"], s["fstype"], s["device"]) for s in series(samples, "node_filesystem_size_bytes")}
    assert mounts == {
        ("/", "ext4", "/dev/sda2"),
        ("/boot/efi", "vfat", "/dev/sda1"),
        ("/raid", "ext4", "/dev/md127"),
        ("/raid/scratch space", "ext4", "/dev/md127"),
        ("/home", "nfs4", "10.10.0.5:/export/home"),
        ("/datasets", "nfs", "10.10.0.6:/datasets"),
        ("/lustre", "lustre", "10.20.0.1@o2ib:10.20.0.2@o2ib:/lustre1"),
    }  # not /proc, /sys, /run, /dev/shm, cgroup2, docker overlay
    labels = {"device": "/dev/md127", "fstype": "ext4", "mountpoint": "/raid", "device_error": ""}
    assert sample(samples, "node_filesystem_size_bytes", **labels) == 1_000_000 * BLOCK
    assert sample(samples, "node_filesystem_free_bytes", **labels) == 400_000 * BLOCK
    assert sample(samples, "node_filesystem_avail_bytes", **labels) == 300_000 * BLOCK
    assert sample(samples, "node_filesystem_files", **labels) == 65_536
    assert sample(samples, "node_filesystem_files_free", **labels) == 30_000
    assert sample(samples, "node_filesystem_readonly", **labels) == 0
    assert sample(samples, "node_filesystem_readonly", device="10.10.0.6:/datasets", fstype="nfs", mountpoint="/datasets", device_error="") == 1
    assert sample(samples, "node_filesystem_device_error", **labels) == 0


def test_configured_mount_points_only_and_a_missing_one_is_an_error() -> None:
    collector, ctx = make(filesystem_mount_points=["/lustre", "/home/", "/scratch"])
    samples = scrape(collector)
    assert {s["mountpoint"] for s in series(samples, "node_filesystem_size_bytes")} == {"/lustre", "/home"}
    assert ctx.errors.counts() == {"node": 1}  # /scratch is not mounted


def test_statvfs_failure_marks_the_mount_and_keeps_the_others() -> None:
    def statvfs(path: str) -> os.statvfs_result:
        if path == "/raid":
            raise OSError(5, "Input/output error")
        return fake_statvfs(path)

    collector, ctx = make(statvfs=statvfs)
    samples = scrape(collector)
    raid = {"device": "/dev/md127", "fstype": "ext4", "mountpoint": "/raid", "device_error": "input/output error"}
    assert sample(samples, "node_filesystem_device_error", **raid) == 1  # node_exporter 1.8+: the error as a label
    assert sample(samples, "node_filesystem_readonly", **raid) == 0
    assert not [s for s in series(samples, "node_filesystem_size_bytes") if s["mountpoint"] == "/raid"]
    assert sample(samples, "node_filesystem_size_bytes", device="/dev/sda2", fstype="ext4", mountpoint="/", device_error="") == 1_000_000 * BLOCK
    assert ctx.errors.counts() == {"node": 1}


def test_hung_network_mount_times_out_and_is_not_asked_again_while_stuck() -> None:
    release = threading.Event()
    calls: list[str] = []

    def statvfs(path: str) -> os.statvfs_result:
        calls.append(path)
        if path == "/home":
            release.wait(10)  # an NFS server that stopped answering
        return fake_statvfs(path)

    collector, ctx = make(statvfs=statvfs)
    collector._statvfs.timeout = 0.05
    home = {"device": "10.10.0.5:/export/home", "fstype": "nfs4", "mountpoint": "/home"}
    stuck = {**home, "device_error": "mountpoint timeout"}  # node_exporter's text for a stuck mount
    home["device_error"] = ""
    try:
        first = scrape(collector)
        second = scrape(collector)
        assert sample(first, "node_filesystem_device_error", **stuck) == 1
        assert sample(second, "node_filesystem_device_error", **stuck) == 1
        assert calls.count("/home") == 1  # the stuck call is not stacked up every cycle
        assert sample(second, "node_filesystem_size_bytes", device="/dev/sda2", fstype="ext4", mountpoint="/", device_error="") > 0
        release.set()
        for _ in range(100):
            if "/home" not in collector._statvfs._stuck:
                break
            threading.Event().wait(0.01)
        third = scrape(collector)
        assert sample(third, "node_filesystem_device_error", **home) == 0
    finally:
        release.set()
        collector.close()


def test_unreadable_and_malformed_files_are_skipped_counted_and_the_rest_exposed() -> None:
    # node-broken: loadavg unreadable (a directory), meminfo and diskstats malformed, cpu PSI
    # without a total; stat, vmstat, net/dev and memory PSI are intact.
    collector, ctx = make(BROKEN)
    samples = scrape(collector)
    assert not series(samples, "node_load1")
    assert not [name for name, _ in samples if name.startswith("node_memory_")]
    assert not series(samples, "node_disk_read_bytes_total")
    assert not series(samples, "node_pressure_cpu_waiting_seconds_total")
    assert sample(samples, "node_cpu_seconds_total", cpu="0", mode="user") == pytest.approx(84123.45)
    assert sample(samples, "node_vmstat_oom_kill") == 3
    assert sample(samples, "node_network_receive_bytes_total", device="ib0") == 345678901234
    assert sample(samples, "node_pressure_memory_waiting_seconds_total") == pytest.approx(2.345678)
    assert sample(samples, "node_filesystem_size_bytes", device="/dev/sda2", fstype="ext4", mountpoint="/", device_error="") > 0
    assert ctx.errors.counts() == {"node": 4}


def test_a_kernel_without_psi_is_not_an_error() -> None:
    files = {name: (GOOD / "proc" / name).read_text() for name in ("stat", "loadavg", "meminfo", "vmstat", "diskstats", "net/dev", "self/mounts")}
    ctx = CollectorContext(ExporterConfig(), MemoryFS(files), MemoryFS(), statvfs=fake_statvfs)
    samples = parse_exposition(render(NodeCollector(ctx).collect()))
    assert not [name for name, _ in samples if name.startswith("node_pressure_")]
    assert sample(samples, "node_load1") == 12.34
    assert ctx.errors.counts() == {}


def test_a_tree_without_proc_stat_has_no_data() -> None:
    ctx = CollectorContext(ExporterConfig(), MemoryFS(), MemoryFS(), statvfs=fake_statvfs)
    with pytest.raises(NoDataError):
        NodeCollector(ctx).collect()


def test_every_family_is_in_the_table_with_unit_and_source() -> None:
    from exporter.collectors.node import TABLE

    for spec in TABLE.values():
        assert spec.source, spec.name
        assert spec.unit, spec.name


NE = FIXTURES / "node_exporter"


def test_filefd_uname_time_and_clocksource_from_node_exporters_fixtures() -> None:
    ctx = CollectorContext(ExporterConfig(), HostFS(NE / "proc"), HostFS(NE / "sys"), statvfs=fake_statvfs,
                           clock=lambda: 1_700_000_000.5)
    collector = NodeCollector(ctx)
    collector.adjtimex = None
    samples = scrape(collector)
    assert sample(samples, "node_filefd_allocated") == 1024  # node_exporter's e2e-output values
    assert sample(samples, "node_filefd_maximum") == 1631329
    assert sample(samples, "node_uname_info", sysname="Linux", release="6.8.0-45-generic",
                  version="#45-Ubuntu SMP PREEMPT_DYNAMIC Fri Aug 30 12:02:04 UTC 2024", machine="x86_64",
                  nodename="gpu-node-01", domainname="(none)") == 1
    assert sample(samples, "node_time_seconds") == 1_700_000_000.5
    assert len(series(samples, "node_time_zone_offset_seconds")) == 1
    assert {s["clocksource"] for s in series(samples, "node_time_clocksource_available_info")} == {"tsc", "hpet", "acpi_pm"}
    assert sample(samples, "node_time_clocksource_current_info", device="0", clocksource="tsc") == 1
    assert sample(samples, "node_pressure_irq_stalled_seconds_total") == pytest.approx(0.008494)


def test_timex_conversions_as_node_exporter() -> None:
    from exporter.collectors.node import STA_NANO, TIME_ERROR, timex_values

    fields = dict(offset=-1500, freq=65536 * 10, maxerror=250000, esterror=1200, status=0x2001, constant=7,
                  tick=10000, ppsfreq=0, jitter=0, shift=0, stabil=0, jitcnt=1, calcnt=2, errcnt=3, stbcnt=4, tai=37)
    values = timex_values(0, fields)
    assert fields["status"] & STA_NANO
    assert values["node_timex_offset_seconds"] == pytest.approx(-1.5e-6)  # STA_NANO: nanoseconds
    assert values["node_timex_frequency_adjustment_ratio"] == pytest.approx(1 + 10e-6)
    assert values["node_timex_maxerror_seconds"] == 0.25
    assert values["node_timex_estimated_error_seconds"] == pytest.approx(0.0012)
    assert values["node_timex_tick_seconds"] == 0.01
    assert values["node_timex_tai_offset_seconds"] == 37
    assert values["node_timex_sync_status"] == 1
    assert timex_values(TIME_ERROR, {**fields, "status": 0x40})["node_timex_sync_status"] == 0
    assert timex_values(0, {**fields, "status": 1})["node_timex_offset_seconds"] == pytest.approx(-1.5e-3)


def test_timex_from_the_real_kernel_needs_no_privilege() -> None:
    samples = scrape(make()[0])
    assert sample(samples, "node_timex_tick_seconds") > 0
    assert sample(samples, "node_timex_sync_status") in (0, 1)


def test_timex_without_permission_is_no_data_not_an_error() -> None:
    collector, ctx = make()

    def denied():
        raise PermissionError(1, "Operation not permitted")

    collector.adjtimex = denied
    samples = scrape(collector)
    assert not [name for name, _ in samples if name.startswith("node_timex_")]
    assert ctx.errors.counts() == {}
