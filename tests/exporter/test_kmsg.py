"""Reading the kernel log: real driver lines parsed, garbage skipped and counted, never a block."""
from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from exporter.kmsg import KmsgDevice, KmsgReader, MemoryKmsg, ReadLimits
from exporter.nvrm import GpuLine, MalformedLine, XidLine, parse_driver_line, pci_key, pci_name

FIXTURES = Path(__file__).parents[1] / "fixtures" / "kmsg"


def read_all(path: Path, limits: ReadLimits = ReadLimits()) -> tuple[list, KmsgReader]:
    reader = KmsgReader(KmsgDevice(str(path)).open(), limits)
    try:
        return list(reader.records()), reader
    finally:
        reader.close()


def driver_lines(path: Path) -> list:
    records, _ = read_all(path)
    return [line for record in records if (line := parse_driver_line(record.message)) is not None]


def test_every_xid_of_the_real_node_log_is_read_with_its_bus_and_code():
    records, reader = read_all(FIXTURES / "dgx-node.kmsg")
    assert reader.stats.malformed == 0 and reader.stats.stopped == ""
    assert [r.seq for r in records] == list(range(len(records)))  # continuation lines are not records
    xids = [(pci_name(line.pci), line.xid) for line in driver_lines(FIXTURES / "dgx-node.kmsg") if isinstance(line, XidLine)]
    assert xids == [
        ("PCI:0000:07:00", 48), ("PCI:0000:07:00", 64), ("PCI:0000:07:00", 38), ("PCI:0000:07:00", 109),
        ("PCI:0000:cb:00", 13), ("PCI:0000:cb:00", 13), ("PCI:0000:cb:00", 13), ("PCI:0000:cb:00", 109),
        # "caused by previous Xid 149" in the text does not make these XID 149
        ("PCI:0000:dc:00", 45), ("PCI:0000:ed:00", 45), ("PCI:0000:ba:00", 45), ("PCI:0000:97:00", 45),
        ("PCI:0000:dc:00", 45), ("PCI:0000:ba:00", 45), ("PCI:0000:ed:00", 45), ("PCI:0000:97:00", 45),
        ("PCI:0000:a1:00", 79),
    ]
    gpus = [(pci_name(line.pci), line.uuid) for line in driver_lines(FIXTURES / "dgx-node.kmsg") if isinstance(line, GpuLine)]
    assert gpus == [("PCI:0000:07:00", "GPU-fb51809b-350a-99db-67b5-e16fc6d498ab"),
                    ("PCI:0000:a1:00", "GPU-979426f2-893a-7cbb-c4cf-81472f89a462")]


def test_the_formats_of_older_and_newer_drivers_are_all_read():
    xids = [(pci_name(line.pci), line.xid) for line in driver_lines(FIXTURES / "driver-variants.kmsg")
            if isinstance(line, XidLine)]
    assert xids == [
        ("PCI:0000:01:00", 32), ("PCI:0000:01:00", 31), ("PCI:0000:01:00", 13),  # no pid, no name
        ("PCI:0000:0c:00", 31),  # a pid and no name
        ("PCI:0000:01:00", 31),
        ("PCI:0019:01:00", 149), ("PCI:0018:01:00", 145), ("PCI:0000:00:00", 149),  # PCI domains past 0
    ]


def test_garbage_is_skipped_and_counted_and_the_good_records_around_it_are_read():
    records, reader = read_all(FIXTURES / "garbage.kmsg")
    assert reader.stats.malformed == 6  # binary, short header, bad priority, no ";", dmesg format, 70 kB line
    assert reader.stats.stopped == ""
    malformed, xids, user_space = 0, [], 0
    for record in records:
        if not record.from_kernel:
            user_space += 1
            continue
        try:
            line = parse_driver_line(record.message)
        except MalformedLine:
            malformed += 1
            continue
        if isinstance(line, XidLine):
            xids.append(line.xid)
    assert xids == [48, 64, 63]  # the last one has no final newline
    assert malformed == 4  # a 22-digit code, a bus id that is not one, code 0, a code in words
    assert user_space == 1  # the forged XID written to /dev/kmsg from user space


@pytest.mark.parametrize(("text", "key"), [
    ("0000:3b:00", (0, 0x3B, 0)),
    ("00000000:3B:00.0", (0, 0x3B, 0)),
    ("PCI:0000:3b:00", (0, 0x3B, 0)),
    ("0019:01:00", (0x19, 1, 0)),
    ("03F8CFDD:00:00.0", (0x03F8CFDD, 0, 0)),
    ("0000:3b", None),
    ("0000:3b:00:00", None),
    ("000000000:3b:00", None),
    ("zzzz:3b:00", None),
    ("", None),
])
def test_pci_bus_ids_of_nvml_and_the_kernel_log_read_the_same(text, key):
    assert pci_key(text) == key


def test_an_over_long_line_is_dropped_to_its_end_and_the_next_record_is_read(tmp_path):
    path = tmp_path / "kmsg"
    path.write_bytes(b"4,0,1,-;" + b"x" * 300_000 + b"\n4,1,2,-;NVRM: Xid (PCI:0000:07:00): 79, GPU has fallen off the bus.\n")
    records, reader = read_all(path)
    assert reader.stats.malformed == 1
    assert [record.seq for record in records] == [1]


def test_a_huge_log_is_read_up_to_the_record_bound(tmp_path):
    path = tmp_path / "kmsg"
    path.write_bytes(b"".join(b"6,%d,%d,-;usb 1-1: new high-speed USB device number %d\n" % (i, i, i) for i in range(50_000)))
    records, reader = read_all(path, ReadLimits(max_records=5_000))
    assert 5_000 <= len(records) < 50_000
    assert reader.stats.stopped == "stopped after 5000 records"


def test_a_log_that_never_ends_is_read_within_its_time_bound():
    """/dev/zero: bytes forever, no record in them; the reader gives up at its time bound."""
    records, reader = read_all(Path("/dev/zero"), ReadLimits(max_records=10**9, max_bytes=10**15, max_seconds=0.5))
    assert records == []
    assert reader.stats.stopped == "stopped after 0.5s"
    assert reader.stats.malformed >= 1  # the "line" outgrew the longest record, again and again


def test_a_log_of_endless_garbage_is_read_up_to_the_byte_bound():
    records, reader = read_all(Path("/dev/urandom"), ReadLimits(max_bytes=4 * 1024 * 1024, max_seconds=600))
    assert reader.stats.stopped == f"stopped after {4 * 1024 * 1024} bytes"
    assert reader.stats.malformed > 0


def test_a_log_with_nothing_more_to_say_returns_at_once(tmp_path):
    """A FIFO whose writer is silent: read() would wait forever; non-blocking, the read ends."""
    path = tmp_path / "kmsg"
    os.mkfifo(path)
    reader_fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    writer_fd = os.open(path, os.O_WRONLY)  # a writer that never writes
    try:
        os.write(writer_fd, b"6,0,1,-;eth0: link up\n")
        done = threading.Event()
        result: list = []

        def read() -> None:
            result.extend(read_all(path)[0])
            done.set()

        threading.Thread(target=read, daemon=True).start()
        assert done.wait(30), "reading a silent log blocked"
        assert [record.message for record in result] == ["eth0: link up"]
    finally:
        os.close(writer_fd)
        os.close(reader_fd)


def test_the_real_dev_kmsg_is_read_without_blocking():
    try:
        os.close(os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK))
    except OSError as exc:
        pytest.skip(f"/dev/kmsg not readable here: {exc}")
    done = threading.Event()
    result: list = []

    def read() -> None:
        reader = KmsgReader(KmsgDevice("/dev/kmsg").open())
        result.extend(reader.records())
        result.append(reader.stats)
        reader.close()
        done.set()

    threading.Thread(target=read, daemon=True).start()
    assert done.wait(30), "reading /dev/kmsg blocked"
    stats = result.pop()
    assert stats.stopped == "" and stats.malformed == 0
    assert all(later.seq > earlier.seq for earlier, later in zip(result, result[1:]))


def test_a_memory_log_stamps_records_in_order_even_when_its_clock_stands_still():
    log = MemoryKmsg(uptime=lambda: 100.0)
    first = log.log("NVRM: Xid (PCI:0000:18:00): 13, pid=1, name=python, Graphics Exception")
    now = log.now_us()
    second = log.log("NVRM: Xid (PCI:0000:18:00): 31, pid=1, name=python, MMU Fault")
    assert first.ts_us < now < second.ts_us
    assert (first.seq, second.seq) == (0, 1)


def test_a_memory_log_that_wrapped_hands_out_what_is_left_and_says_records_were_lost():
    log = MemoryKmsg(capacity=3)
    for number in range(5):
        log.log(f"message {number}")
    reader = KmsgReader(log.open())
    assert [record.message for record in reader.records()] == ["message 2", "message 3", "message 4"]
    log.log("message 5")
    assert [record.message for record in reader.records()] == ["message 5"]  # continues where it ended


def test_a_reader_that_fell_behind_a_wrapping_log_counts_the_loss():
    log = MemoryKmsg(capacity=3)
    log.log("message 0")
    reader = KmsgReader(log.open())
    for number in range(1, 6):
        log.log(f"message {number}")
    assert [record.message for record in reader.records()] == ["message 3", "message 4", "message 5"]
    assert reader.stats.overwritten == 1
