"""The procfs/sysfs parsers on the formats the kernel and drivers print."""
from __future__ import annotations

import errno

import pytest

from exporter import procfs
from exporter.hostfs import MemoryFS


def test_stat_converts_user_hz_and_keeps_per_cpu_lines_only() -> None:
    stat = procfs.parse_stat(
        "cpu  200 0 100 1000 0 0 0 0 0 0\n"
        "cpu0 150 2 60 500 10 1 3 4 7 1\n"
        "cpu1 50 0 40 500 0 0 0 0\n"
        "ctxt 42\nbtime 1715244000\nprocesses 9\nprocs_running 3\nprocs_blocked 1\nintr 77 1 2\n"
    )
    assert [c.cpu for c in stat.cpus] == ["0", "1"]
    assert stat.cpus[0].modes == (1.5, 0.02, 0.6, 5.0, 0.1, 0.01, 0.03, 0.04)
    assert stat.cpus[0].guest == (0.07, 0.01)
    assert stat.cpus[1].guest == (0.0, 0.0)  # kernels before 2.6.33 have no guest columns
    assert (stat.boot_time, stat.context_switches, stat.forks, stat.interrupts) == (1715244000, 42, 9, 77)
    assert (stat.procs_running, stat.procs_blocked) == (3, 1)


@pytest.mark.parametrize("text", ["", "cpu  1 2 3\n", "cpu0 1 2 x 4 5 6 7 8\n", "cpu0 1 2 3\n"])
def test_stat_rejects_truncated_or_garbled_text(text: str) -> None:
    with pytest.raises(ValueError):
        procfs.parse_stat(text)


def test_meminfo_names_fields_as_node_exporter() -> None:
    fields = dict(procfs.parse_meminfo(
        "MemTotal:       1000 kB\nActive(anon):   2 kB\nHugePages_Total:   4\nHugepagesize:    2048 kB\n"
    ))
    assert fields == {
        "MemTotal_bytes": 1024000,
        "Active_anon_bytes": 2048,
        "HugePages_Total": 4,
        "Hugepagesize_bytes": 2097152,
    }


@pytest.mark.parametrize("line", ["MemFree: lots kB", "MemFree 12 kB", "MemFree: 12 MB"])
def test_meminfo_rejects_malformed_lines(line: str) -> None:
    with pytest.raises(ValueError):
        procfs.parse_meminfo(line)


def test_loadavg_and_vmstat() -> None:
    assert procfs.parse_loadavg("0.50 1.25 2.00 3/456 789\n") == (0.5, 1.25, 2.0)
    assert procfs.parse_key_values("oom_kill 3\nnr_free_pages 9\npgfault 5\n", lambda n: n.startswith(("oom", "pg"))) == {
        "oom_kill": 3, "pgfault": 5}


def test_diskstats_accepts_the_14_18_and_20_field_layouts() -> None:
    text = (
        "   8       0 sda 1 2 3 4 5 6 7 8 9 10 11\n"
        " 259       0 nvme0n1 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15\n"
        " 259       1 nvme1n1 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17\n"
    )
    assert [(name, len(values)) for name, values in procfs.parse_diskstats(text)] == [
        ("sda", 11), ("nvme0n1", 15), ("nvme1n1", 17)]
    with pytest.raises(ValueError):
        procfs.parse_diskstats("259 0 nvme0n1 1 2 3\n")


def test_net_dev_skips_headers_and_splits_names_glued_to_counters() -> None:
    text = (
        "Inter-|   Receive |  Transmit\n face |bytes packets|bytes packets\n"
        "enp1s0f0np0:1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n"
    )
    assert procfs.parse_net_dev(text) == [("enp1s0f0np0", list(range(1, 17)))]


def test_pressure_totals_are_seconds() -> None:
    text = "some avg10=0.00 avg60=0.00 avg300=0.00 total=1500000\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=250\n"
    assert procfs.parse_pressure(text) == {"some": 1.5, "full": 0.00025}
    with pytest.raises(ValueError):
        procfs.parse_pressure("some avg10=0.00\n")


def test_mounts_unescape_spaces() -> None:
    (mount,) = procfs.parse_mounts("/dev/md0 /raid/my\\040data ext4 rw,relatime,stripe=256 0 0\n")
    assert mount.mountpoint == "/raid/my data"
    assert mount.option("stripe") == "256" and mount.option("addr") is None


def test_read_mounts_prefers_the_host_table_and_falls_back_to_self() -> None:
    counted: list[str] = []
    skip = lambda what, exc=None: counted.append(what)  # noqa: E731
    host = MemoryFS({"1/mounts": "/dev/sda1 / ext4 rw 0 0\n", "self/mounts": "overlay / overlay rw 0 0\n"})
    assert [m.fstype for m in procfs.read_mounts(host, skip)] == ["ext4"]
    hidden = MemoryFS({"self/mounts": "overlay / overlay rw 0 0\n"})  # hidepid hides /proc/1
    assert [m.fstype for m in procfs.read_mounts(hidden, skip)] == ["overlay"]
    assert counted == []


MOUNTSTATS = """device rootfs mounted on / with fstype rootfs
device srv:/export mounted on /mnt/a with fstype nfs4 statvers=1.1
\topts:\trw,vers=4.2,proto=tcp,nconnect=2
\tage:\t120
\tevents:\t1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27
\tbytes:\t100 200 30 40 130 240 5 6
\tRPC iostats version: 1.1  p/v: 100003/4 (nfs)
\txprt:\ttcp 0 1 2 0 11 20 20 0 40 0 8 3 4
\txprt:\ttcp 0 1 1 0 5 10 10 0 20 0 6 1 2
\tper-op statistics
\t        READ: 10 12 1 1000 100000 5 70 80 2
\t       WRITE: 4 4 0 40000 400 1 20 25

device srv:/old mounted on /mnt/b with fstype nfs
device srv:/rdma mounted on /mnt/c with fstype nfs statvers=1.1
\topts:\tro,vers=3,proto=rdma,mountaddr=10.0.0.9
\tbytes:\t1 0 0 0 1 0 0 0
\txprt:\trdma 0 0 1 0 12 98 98 0 123 0 0 98 0 0 0 0
\tper-op statistics
\t        READ: 1 1 0 10 20 0 1 1
"""


def test_mountstats_parses_nfs_mounts_including_rdma_and_nconnect() -> None:
    blocks = procfs.split_mountstats(MOUNTSTATS)
    assert [(b[1], b[2]) for b in blocks] == [("/mnt/a", "nfs4"), ("/mnt/c", "nfs")]  # /mnt/b: no statvers
    a = procfs.parse_nfs_mountstats(*blocks[0])
    assert a.age_seconds == 120
    assert a.bytes["normal_read"] == 100 and a.bytes["write_pages"] == 6
    assert a.events["inode_revalidate"] == 1 and a.events["pnfs_write"] == 27
    assert [fields["sends"] for _, fields in a.transports] == [20, 10]
    read = a.operations[0]
    assert (read.name, read.requests, read.transmissions, read.major_timeouts, read.errors) == ("READ", 10, 12, 1, 2)
    assert a.operations[1].errors is None  # older kernels print 8 columns
    c = procfs.parse_nfs_mountstats(*blocks[1])
    assert c.transports[0][0] == "rdma" and c.transports[0][1]["sends"] == 98
    assert c.options["mountaddr"] == "10.0.0.9"


def test_mountstats_entry_without_bytes_is_malformed() -> None:
    (block,) = procfs.split_mountstats("device s:/x mounted on /x with fstype nfs4 statvers=1.1\n\tage:\t1\n")
    with pytest.raises(ValueError):
        procfs.parse_nfs_mountstats(*block)


def test_lprocfs_stats_keep_count_and_sum() -> None:
    counters = procfs.parse_lprocfs_stats(
        "snapshot_time             1715330400.123456789 secs.nsecs\n"
        "read_bytes                3 samples [bytes] 0 4096 8192 33554432\n"
        "open                      7 samples [reqs]\n"
    )
    assert counters["read_bytes"] == procfs.LproCounter(3, "bytes", 8192)
    assert counters["open"] == procfs.LproCounter(7, "reqs", None)
    with pytest.raises(ValueError):
        procfs.parse_lprocfs_stats("read_bytes 3 things\n")


def test_nvfs_stats_merge_repeated_sections_and_read_gpu_lines() -> None:
    stats = procfs.parse_nvfs_stats(
        "GDS Version: 1.10.1.6 \nNVFS statistics(ver: 4.0)\nNVFS Driver(version: 2.20.5)\n"
        "Reads\t\t\t\t: n=10 ok=9 err=1 readMiB=3 io_state_err=0\n"
        "Reads\t\t\t\t: Bandwidth(MiB/s)=5 Avg-Latency(usec)=7\n"
        "GPU 0000:18:00.0 uuid:1a2b3c4d-5e6f-7a8b-9c0d-000000000001 : Registered_MiB=64 Cache_MiB=0 "
        "max_pinned_MiB=128 cross_root_port(%)=0\n"
    )
    assert (stats.gds_version, stats.driver_version) == ("1.10.1.6", "2.20.5")
    assert stats.sections["Reads"] == {"n": 10, "ok": 9, "err": 1, "readMiB": 3, "io_state_err": 0,
                                       "Bandwidth(MiB/s)": 5, "Avg-Latency(usec)": 7}
    (gpu,) = stats.gpus
    assert (gpu.pci_bus_id, gpu.uuid, gpu.values["max_pinned_MiB"]) == (
        "0000:18:00.0", "1a2b3c4d-5e6f-7a8b-9c0d-000000000001", 128)


def test_infiniband_attributes() -> None:
    assert procfs.parse_ib_state("4: ACTIVE\n") == 4
    assert procfs.parse_ib_rate("400 Gb/sec (4X NDR)\n") == 50e9
    assert procfs.parse_ib_rate("2.5 Gb/sec (1X SDR)\n") == 312.5e6
    assert procfs.parse_ib_counter("123\n") == 123
    for bad, parse in (("ACTIVE", procfs.parse_ib_state), ("fast", procfs.parse_ib_rate), ("-1", procfs.parse_ib_counter)):
        with pytest.raises(ValueError):
            parse(bad)


def test_read_source_counts_unreadable_and_malformed_but_not_absent_optional_files() -> None:
    counted: list[str] = []
    skip = lambda what, exc=None: counted.append(what)  # noqa: E731

    def denied() -> str:
        raise PermissionError(errno.EACCES, "Permission denied")

    tree = MemoryFS({"ok": "7\n", "bad": "seven\n", "denied": denied, "na": "N/A (no PMA)\n"})
    assert procfs.read_source(tree, "ok", procfs.parse_int, skip) == 7
    assert procfs.read_source(tree, "bad", procfs.parse_int, skip) is None
    assert procfs.read_source(tree, "denied", procfs.parse_int, skip) is None
    assert procfs.read_source(tree, "gone", procfs.parse_int, skip) is None
    assert procfs.read_source(tree, "gone", procfs.parse_int, skip, absent_ok=True) is None
    assert procfs.read_source(tree, "na", procfs.parse_ib_counter, skip) is None  # cannot count: absent
    assert counted == ["bad: malformed", "denied: unreadable", "gone: missing"]
