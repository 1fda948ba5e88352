"""Pure parsers for the procfs and sysfs text formats the host collectors read.

Each function takes a file's text and returns plain values; none touches the file system, so the
collectors (node, infiniband, storage), the simulator and the tests share them. Malformed text
raises ``ValueError`` (or ``IndexError`` from a short line): ``read_source`` turns either into one
skipped, counted source, so one bad file never hides the rest of a collection.

Formats, as the kernel (and the nvidia-fs and Lustre modules) print them:
- /proc/stat, /proc/loadavg, /proc/meminfo, /proc/vmstat, /proc/diskstats, /proc/net/dev,
  /proc/pressure/*: Documentation/filesystems/proc.rst, Documentation/admin-guide/iostats.rst,
  Documentation/accounting/psi.rst.
- /proc/self/mounts: fstab(5) fields with octal escapes (``\\040`` for a space).
- /proc/self/mountstats: fs/nfs/super.c ``nfs_show_stats`` and net/sunrpc xprt ``print_stats``
  (statvers 1.1).
- Lustre ``llite/<fsname>-<instance>/stats``: lprocfs counters, ``name count samples [unit]
  min max sum [sumsq]``.
- /proc/driver/nvidia-fs/stats: nvfs-stat.c ``nvfs_stats_show``, ``Section : key=value ...``.
- /sys/class/infiniband/*/ports/*: Documentation/ABI/stable/sysfs-class-infiniband.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable, TypeVar

from exporter.hostfs import FileTree

T = TypeVar("T")

# The kernel reports /proc/stat times in USER_HZ, which is 100 on every architecture Linux
# exposes to user space (the value is part of the ABI, independent of CONFIG_HZ); reading it per
# host would tie parsing to the machine running the tests rather than the tree being parsed.
USER_HZ = 100.0
SECTOR_BYTES = 512  # /proc/diskstats counts 512-byte sectors whatever the device's block size
MIB = 1 << 20


def read_source(
    tree: FileTree,
    path: str,
    parse: Callable[[str], T],
    skip: Callable[[str, BaseException | None], None],
    *,
    absent_ok: bool = False,
) -> T | None:
    """Read ``path`` from ``tree`` and parse it; on failure count it with ``skip`` and return None.

    ``absent_ok``: a missing file is a normal state of this host (a kernel without PSI, an HCA
    without a counter), not an error, so it returns None without counting.
    """
    try:
        text = tree.read_text(path)
    except FileNotFoundError as exc:
        if not absent_ok:
            skip(f"{path}: missing", exc)
        return None
    except OSError as exc:
        skip(f"{path}: unreadable", exc)
        return None
    return parse_or_skip(path, text, parse, skip)


def parse_or_skip(
    what: str,
    text: str,
    parse: Callable[[str], T],
    skip: Callable[[str, BaseException | None], None],
) -> T | None:
    """``parse(text)``, or None after counting ``what`` as malformed with ``skip``."""
    try:
        return parse(text)
    except Unavailable:
        return None
    except (ValueError, IndexError) as exc:
        skip(f"{what}: malformed", exc)
        return None


class Unavailable(ValueError):
    """The source says it cannot report this value (``N/A (no PMA)``): absent, not an error."""


def parse_int(text: str) -> int:
    """A sysfs attribute holding one unsigned integer (``"12345\\n"``)."""
    value = int(text.strip())
    if value < 0:
        raise ValueError(f"negative counter {value}")
    return value


# --- /proc/stat -----------------------------------------------------------------------------

CPU_MODES = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
GUEST_MODES = ("user", "nice")  # guest, guest_nice columns: time spent running a VM's vCPU


@dataclass
class CPUTimes:
    cpu: str
    modes: tuple[float, ...]  # seconds, in CPU_MODES order
    guest: tuple[float, ...]  # seconds, in GUEST_MODES order (zeros on kernels without them)


@dataclass
class Stat:
    cpus: list[CPUTimes] = field(default_factory=list)
    boot_time: float | None = None
    context_switches: int | None = None
    forks: int | None = None
    interrupts: int | None = None
    procs_running: int | None = None
    procs_blocked: int | None = None


def parse_stat(text: str) -> Stat:
    stat = Stat()
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        key = parts[0]
        if key.startswith("cpu"):
            if key == "cpu":
                continue  # the all-CPU sum: node_exporter exposes per-CPU series only
            values = [int(v) / USER_HZ for v in parts[1:11]]
            if len(values) < len(CPU_MODES):
                raise ValueError(f"/proc/stat {key}: {len(values)} fields")
            values += [0.0] * (10 - len(values))
            stat.cpus.append(CPUTimes(key[3:], tuple(values[:8]), tuple(values[8:10])))
        elif key == "btime":
            stat.boot_time = float(parts[1])
        elif key == "ctxt":
            stat.context_switches = int(parts[1])
        elif key == "processes":
            stat.forks = int(parts[1])
        elif key == "intr":
            stat.interrupts = int(parts[1])
        elif key == "procs_running":
            stat.procs_running = int(parts[1])
        elif key == "procs_blocked":
            stat.procs_blocked = int(parts[1])
    if not stat.cpus:
        raise ValueError("/proc/stat has no cpuN lines")
    return stat


def parse_loadavg(text: str) -> tuple[float, float, float]:
    parts = text.split()
    return float(parts[0]), float(parts[1]), float(parts[2])


# --- /proc/meminfo, /proc/vmstat -------------------------------------------------------------

_PAREN = re.compile(r"\((.*)\)")


def parse_meminfo(text: str) -> list[tuple[str, float]]:
    """(node_exporter field name, value) pairs: ``Active(anon): 12 kB`` -> ``Active_anon_bytes``.

    Fields given in kB become bytes and gain ``_bytes``; unit-less ones (HugePages_Total) stay
    counts, exactly as node_exporter names them so existing dashboards keep working.
    """
    fields: list[tuple[str, float]] = []
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        if not parts[0].endswith(":") or len(parts) not in (2, 3):
            raise ValueError(f"/proc/meminfo line {line!r}")
        key = _PAREN.sub(r"_\1", parts[0][:-1])
        value = float(int(parts[1]))
        if len(parts) == 3:
            if parts[2] != "kB":
                raise ValueError(f"/proc/meminfo unit {parts[2]!r}")
            value *= 1024
            key += "_bytes"
        fields.append((key, value))
    return fields


def parse_key_values(text: str, wanted: Callable[[str], bool]) -> dict[str, int]:
    """``name value`` lines (/proc/vmstat), keeping the names ``wanted`` accepts."""
    values: dict[str, int] = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name and wanted(name):
            values[name] = int(value)
    return values


# --- /proc/diskstats, /proc/net/dev ----------------------------------------------------------


def parse_diskstats(text: str) -> list[tuple[str, list[int]]]:
    """(device, counters after the name): 11 on old kernels, 15 with discards, 17 with flushes."""
    devices = []
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        if len(parts) < 14:
            raise ValueError(f"/proc/diskstats line with {len(parts)} fields")
        devices.append((parts[2], [int(v) for v in parts[3:]]))
    return devices


def parse_net_dev(text: str) -> list[tuple[str, list[int]]]:
    """(interface, 8 receive then 8 transmit counters); the two header lines are skipped."""
    devices = []
    for line in text.splitlines()[2:]:
        name, sep, rest = line.partition(":")
        if not sep:
            if line.strip():
                raise ValueError(f"/proc/net/dev line {line!r}")
            continue
        values = [int(v) for v in rest.split()]
        if len(values) != 16:
            raise ValueError(f"/proc/net/dev {name.strip()}: {len(values)} counters")
        devices.append((name.strip(), values))
    return devices


def parse_pressure(text: str) -> dict[str, float]:
    """{"some": seconds, "full": seconds} from a PSI file's ``total=`` (microseconds)."""
    totals: dict[str, float] = {}
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        for item in parts[1:]:
            if item.startswith("total="):
                totals[parts[0]] = int(item[6:]) / 1e6
                break
        else:
            raise ValueError(f"PSI line without total: {line!r}")
    if not totals:  # /proc/pressure/irq has only a "full" line
        raise ValueError("PSI file without a 'some' or 'full' line")
    return totals


# --- mounts ----------------------------------------------------------------------------------

_OCTAL = re.compile(r"\\([0-7]{3})")


def unescape_mount_field(value: str) -> str:
    """Undo the kernel's octal escapes of space, tab, newline and backslash in mount fields."""
    if "\\" not in value:
        return value
    return _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), value)


@dataclass(frozen=True)
class Mount:
    device: str
    mountpoint: str
    fstype: str
    options: tuple[str, ...]

    def option(self, name: str) -> str | None:
        """Value of ``name=value`` in the options, or None."""
        prefix = name + "="
        for opt in self.options:
            if opt.startswith(prefix):
                return opt[len(prefix):]
        return None


def parse_mounts(text: str) -> list[Mount]:
    mounts = []
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        if len(parts) < 4:
            raise ValueError(f"mounts line {line!r}")
        mounts.append(
            Mount(
                unescape_mount_field(parts[0]),
                unescape_mount_field(parts[1]),
                parts[2],
                tuple(parts[3].split(",")),
            )
        )
    return mounts


def read_mounts(tree: FileTree, skip: Callable[[str, BaseException | None], None]) -> list[Mount] | None:
    """The host's mount table, or None (counted) when it cannot be read."""
    # /proc/1/mounts is the host's table even when the exporter runs in its own mount namespace
    # with the host's /proc mounted in; hidepid can hide it, hence node_exporter's fallback.
    mounts = read_source(tree, "1/mounts", parse_mounts, skip, absent_ok=True)
    if mounts is None:
        mounts = read_source(tree, "self/mounts", parse_mounts, skip)
    return mounts


# --- /proc/self/mountstats (NFS) -------------------------------------------------------------

# Per-transport fields after "xprt: <proto>", per protocol (net/sunrpc/xprtsock.c, xprtrdma).
XPRT_FIELDS = {
    "tcp": ("port", "bind", "connect", "connect_time", "idle_time", "sends", "receives",
            "bad_xids", "req_u", "backlog_u", "max_slots", "sending_u", "pending_u"),
    "udp": ("port", "bind", "sends", "receives", "bad_xids", "req_u", "backlog_u", "max_slots",
            "sending_u", "pending_u"),
    # NFS over RDMA (common beside GPUDirect Storage): the generic fields, then RDMA-only ones.
    "rdma": ("port", "bind", "connect", "connect_time", "idle_time", "sends", "receives",
             "bad_xids", "req_u", "backlog_u"),
}

# The 27 "events:" counters in order (include/linux/nfs_iostat.h, enum nfs_stat_eventcounters).
NFS_EVENTS = (
    "inode_revalidate", "dnode_revalidate", "data_invalidate", "attribute_invalidate",
    "vfs_open", "vfs_lookup", "vfs_access", "vfs_update_page", "vfs_read_page",
    "vfs_read_pages", "vfs_write_page", "vfs_write_pages", "vfs_getdents", "vfs_setattr",
    "vfs_flush", "vfs_fsync", "vfs_lock", "vfs_file_release", "congestion_wait", "truncation",
    "write_extension", "silly_rename", "short_read", "short_write", "jukebox_delay",
    "pnfs_read", "pnfs_write",
)

# The 8 "bytes:" counters in order (enum nfs_stat_bytecounters).
NFS_BYTES = (
    "normal_read", "normal_write", "direct_read", "direct_write", "server_read",
    "server_write", "read_pages", "write_pages",
)


@dataclass
class NFSOperation:
    name: str
    requests: int
    transmissions: int
    major_timeouts: int
    bytes_sent: int
    bytes_received: int
    queue_ms: int
    rtt_ms: int
    execute_ms: int
    errors: int | None  # the ninth column exists since Linux 5.x (statvers 1.1 with errors)


@dataclass
class NFSMountStats:
    device: str
    mountpoint: str
    fstype: str
    options: dict[str, str] = field(default_factory=dict)
    age_seconds: int = 0
    events: dict[str, int] = field(default_factory=dict)
    bytes: dict[str, int] = field(default_factory=dict)
    transports: list[tuple[str, dict[str, int]]] = field(default_factory=list)
    operations: list[NFSOperation] = field(default_factory=list)


def split_mountstats(text: str) -> list[tuple[str, str, str, str]]:
    """(device, mountpoint, fstype, body) of every NFS mount with statistics, in file order.

    Split first and parsed per mount by ``parse_nfs_mountstats`` so that one malformed mount
    costs only its own series. Other file systems have one-line entries and are left out.
    """
    blocks: list[tuple[str, str, str, list[str]]] = []
    current: list[str] | None = None
    for line in text.splitlines():
        if line.startswith("device "):
            # "device SRC mounted on DIR with fstype TYPE [statvers=1.1]"
            parts = line.split()
            current = None
            if len(parts) > 8 and parts[7] in ("nfs", "nfs4") and parts[2:4] == ["mounted", "on"]:
                current = []
                blocks.append((unescape_mount_field(parts[1]), unescape_mount_field(parts[4]), parts[7], current))
        elif current is not None:
            current.append(line)
    return [(device, mountpoint, fstype, "\n".join(body)) for device, mountpoint, fstype, body in blocks]


def parse_nfs_mountstats(device: str, mountpoint: str, fstype: str, body: str) -> NFSMountStats:
    """One NFS mount's statistics lines (the lines after its ``device`` line)."""
    stats = NFSMountStats(device, mountpoint, fstype)
    in_ops = False
    for line in body.splitlines():
        stripped = line.strip()
        if not stripped:
            continue
        if in_ops:
            name, _, rest = stripped.partition(":")
            values = [int(v) for v in rest.split()]
            if len(values) < 8:
                raise ValueError(f"mountstats per-op line {stripped!r}")
            stats.operations.append(
                NFSOperation(name, *values[:8], errors=values[8] if len(values) > 8 else None)
            )
            continue
        key, _, rest = stripped.partition(":")
        rest = rest.strip()
        if key == "opts":
            for opt in rest.split(","):
                name, _, value = opt.partition("=")
                stats.options[name] = value
        elif key == "age":
            stats.age_seconds = int(rest)
        elif key == "events":
            stats.events = dict(zip(NFS_EVENTS, (int(v) for v in rest.split())))
        elif key == "bytes":
            values = [int(v) for v in rest.split()]
            if len(values) < len(NFS_BYTES):
                raise ValueError(f"mountstats bytes line {stripped!r}")
            stats.bytes = dict(zip(NFS_BYTES, values))
        elif key == "xprt":
            parts = rest.split()
            names = XPRT_FIELDS.get(parts[0])
            if names is not None:
                stats.transports.append((parts[0], dict(zip(names, (int(v) for v in parts[1:])))))
        elif stripped == "per-op statistics":
            in_ops = True
    if not stats.bytes:
        raise ValueError(f"mountstats entry for {mountpoint} without a bytes line")
    return stats


# --- Lustre llite stats ----------------------------------------------------------------------


@dataclass(frozen=True)
class LproCounter:
    count: int
    unit: str
    total: int | None  # the "sum" column; absent for plain event counters ([reqs])


def parse_lprocfs_stats(text: str) -> dict[str, LproCounter]:
    """``name COUNT samples [UNIT] [MIN MAX SUM [SUMSQ]]`` lines; snapshot/time lines dropped."""
    counters: dict[str, LproCounter] = {}
    for line in text.splitlines():
        parts = line.split()
        if not parts or parts[0] in ("snapshot_time", "start_time", "elapsed_time"):
            continue
        if len(parts) < 4 or parts[2] != "samples":
            raise ValueError(f"lprocfs stats line {line!r}")
        total = int(parts[6]) if len(parts) >= 7 else None
        counters[parts[0]] = LproCounter(int(parts[1]), parts[3].strip("[]"), total)
    return counters


# --- /proc/driver/nvidia-fs/stats (GPUDirect Storage) ----------------------------------------


@dataclass
class NvfsGPU:
    pci_bus_id: str
    uuid: str
    values: dict[str, int]


@dataclass
class NvfsStats:
    gds_version: str = ""
    driver_version: str = ""
    sections: dict[str, dict[str, int]] = field(default_factory=dict)
    gpus: list[NvfsGPU] = field(default_factory=list)


def _key_values(text: str) -> dict[str, int]:
    values = {}
    for item in text.split():
        name, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"nvidia-fs item {item!r}")
        values[name] = int(value)
    return values


def parse_nvfs_stats(text: str) -> NvfsStats:
    """Sections such as ``Reads : n=.. ok=.. err=..`` (a section may span lines) and GPU lines."""
    stats = NvfsStats()
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("GDS Version:"):
            stats.gds_version = stripped.partition(":")[2].strip()
        elif stripped.startswith("NVFS Driver(version:"):
            stats.driver_version = stripped[len("NVFS Driver(version:"):].rstrip(")").strip()
        elif stripped.startswith("GPU "):
            # "GPU 0000:1b:00.0 uuid:1a2b...-... : Registered_MiB=0 Cache_MiB=0 max_pinned_MiB=2"
            head, sep, tail = stripped.partition(" : ")
            words = head.split()
            if not sep or len(words) < 3 or not words[2].startswith("uuid:"):
                raise ValueError(f"nvidia-fs GPU line {stripped!r}")
            values = _key_values(" ".join(w for w in tail.split() if "(%)" not in w))
            stats.gpus.append(NvfsGPU(words[1], words[2][5:], values))
        elif " : " in line or "\t: " in line:
            name, _, rest = stripped.partition(":")
            section = stats.sections.setdefault(name.strip(), {})
            # Rate lines (Bandwidth(MiB/s)=, Avg-Latency(usec)=) are kept under their own names.
            section.update(_key_values(rest))
    if not stats.sections:
        raise ValueError("nvidia-fs stats without any section")
    return stats


# --- InfiniBand sysfs ------------------------------------------------------------------------


def parse_ib_state(text: str) -> int:
    """``"4: ACTIVE"`` -> 4 (state and phys_state share the format)."""
    number, sep, _ = text.partition(":")
    if not sep:
        raise ValueError(f"InfiniBand state {text.strip()!r}")
    return int(number)


def parse_ib_rate(text: str) -> float:
    """``"200 Gb/sec (4X HDR)"`` -> bytes per second (1 Gb/s = 125,000,000 B/s)."""
    number, _, unit = text.strip().partition(" ")
    if not unit.startswith("Gb/sec"):
        raise ValueError(f"InfiniBand rate {text.strip()!r}")
    return float(number) * 125_000_000


def parse_ib_counter(text: str) -> int:
    # Some HCAs (and VFs without a Performance Management Agent) print "N/A (no PMA)".
    if text.startswith("N/A"):
        raise Unavailable(text.strip())
    return parse_int(text)

