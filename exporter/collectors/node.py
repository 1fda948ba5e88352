"""Node collector: CPU, load, memory, file systems, disks, network, pressure, with node_exporter's names.

One collector instead of node_exporter's eight (cpu, loadavg, meminfo, vmstat, stat, filesystem,
diskstats, netdev, pressure) because here they are one cycle's reads of one procfs tree; names,
label sets and unit conversions are current node_exporter's (1.8+: ``device_error`` label on
``node_filesystem_*``, ``node_vmstat_*`` untyped, no ``cpu full`` pressure but ``irq full``), so either exporter feeds the same rules
and dashboards. Each source file is read and parsed on its own (``read_source``): a file that
cannot be read or parsed is skipped and counted, the others are still exposed.

``statvfs`` on a hung NFS or Lustre server blocks in the kernel, so for network file systems it
runs in a worker thread with a deadline; a mount that misses it is reported with
``node_filesystem_device_error`` and not asked again until the blocked call returns (node_exporter
does the same with its stuck-mount list).
"""
from __future__ import annotations

import concurrent.futures
import ctypes
import ctypes.util
import threading
import os
import re
import time
from typing import Any, Callable

from cwkernel.metrics import FamilySet, MetricSpec, counter, gauge, metric_table, untyped
from exporter.collector import Collector, CollectorContext, NoDataError, register_collector
from exporter.procfs import (
    CPU_MODES,
    GUEST_MODES,
    SECTOR_BYTES,
    Mount,
    parse_diskstats,
    parse_key_values,
    parse_loadavg,
    parse_meminfo,
    parse_net_dev,
    parse_pressure,
    parse_stat,
    read_mounts,
    read_source,
)

# node_exporter 1.8+ adds device_error: "" when statvfs worked, else the error it gave.
FS_LABELS = ("device", "fstype", "mountpoint", "device_error")

# (column in /proc/diskstats after the device name, name, help, scale to base units, unit)
DISK_COLUMNS = (
    (0, "node_disk_reads_completed_total", "The total number of reads completed successfully.", 1, "reads"),
    (1, "node_disk_reads_merged_total", "The total number of reads merged.", 1, "reads"),
    (2, "node_disk_read_bytes_total", "The total number of bytes read successfully.", SECTOR_BYTES, "bytes"),
    (3, "node_disk_read_time_seconds_total", "The total number of seconds spent by all reads.", 0.001, "seconds"),
    (4, "node_disk_writes_completed_total", "The total number of writes completed successfully.", 1, "writes"),
    (5, "node_disk_writes_merged_total", "The number of writes merged.", 1, "writes"),
    (6, "node_disk_written_bytes_total", "The total number of bytes written successfully.", SECTOR_BYTES, "bytes"),
    (7, "node_disk_write_time_seconds_total", "This is the total number of seconds spent by all writes.", 0.001, "seconds"),
    (8, "node_disk_io_now", "The number of I/Os currently in progress.", 1, "requests"),
    (9, "node_disk_io_time_seconds_total", "Total seconds spent doing I/Os.", 0.001, "seconds"),
    (10, "node_disk_io_time_weighted_seconds_total", "The weighted # of seconds spent doing I/Os.", 0.001, "seconds"),
    (11, "node_disk_discards_completed_total", "The total number of discards completed successfully.", 1, "discards"),
    (12, "node_disk_discards_merged_total", "The total number of discards merged.", 1, "discards"),
    (13, "node_disk_discarded_sectors_total", "The total number of sectors discarded successfully.", 1, "sectors"),
    (14, "node_disk_discard_time_seconds_total", "This is the total number of seconds spent by all discards.", 0.001, "seconds"),
    (15, "node_disk_flush_requests_total", "The total number of flush requests completed successfully", 1, "requests"),
    (16, "node_disk_flush_requests_time_seconds_total", "This is the total number of seconds spent by all flush requests.", 0.001, "seconds"),
)

# /proc/net/dev columns: 8 receive then 8 transmit, named as node_exporter's netdev collector does.
NET_COLUMNS = tuple(f"node_network_receive_{c}_total" for c in
                    ("bytes", "packets", "errs", "drop", "fifo", "frame", "compressed", "multicast")) + \
    tuple(f"node_network_transmit_{c}_total" for c in
          ("bytes", "packets", "errs", "drop", "fifo", "colls", "carrier", "compressed"))

# (resource, PSI line, name): "some" = at least one task waiting, "full" = all non-idle stalled.
# node_exporter has no cpu "full" family (the kernel's line is undefined at system level), and
# /proc/pressure/irq (CONFIG_IRQ_TIME_ACCOUNTING) has only a "full" line.
PRESSURE = (
    ("cpu", "some", "node_pressure_cpu_waiting_seconds_total"),
    ("memory", "some", "node_pressure_memory_waiting_seconds_total"),
    ("memory", "full", "node_pressure_memory_stalled_seconds_total"),
    ("io", "some", "node_pressure_io_waiting_seconds_total"),
    ("io", "full", "node_pressure_io_stalled_seconds_total"),
    ("irq", "full", "node_pressure_irq_stalled_seconds_total"),
)

# node_exporter's default --collector.vmstat.fields="^(oom_kill|pgpg|pswp|pg.*fault).*"
VMSTAT_FIELDS = re.compile(r"^(oom_kill|pgpg|pswp|pg.*fault).*")
VMSTAT_HELP = {  # field -> (help, unit)
    "oom_kill": ("Number of processes killed by the kernel's out-of-memory killer.", "processes"),
    "pgpgin": ("Kilobytes paged in from disk.", "kilobytes"),
    "pgpgout": ("Kilobytes paged out to disk.", "kilobytes"),
    "pswpin": ("Pages swapped in.", "pages"),
    "pswpout": ("Pages swapped out.", "pages"),
    "pgfault": ("Page faults (minor and major).", "faults"),
    "pgmajfault": ("Major page faults (needing disk I/O).", "faults"),
}

# node_exporter 1.5 defaults for which mounts are "real" file systems.
PSEUDO_FSTYPES = re.compile(
    r"^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|fusectl|hugetlbfs|iso9660"
    r"|mqueue|nsfs|overlay|proc|procfs|pstore|rpc_pipefs|securityfs|selinuxfs|squashfs|sysfs|tracefs)$"
)
EXCLUDED_MOUNT_POINTS = re.compile(
    r"^/(dev|proc|run|sys|mnt|media|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)"
)
# Partitions and virtual devices, node_exporter's --collector.diskstats.device-exclude default.
EXCLUDED_DISKS = re.compile(r"^(ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\d+n\d+p)\d+$")
# File systems whose statvfs can block on a remote server.
NETWORK_FSTYPES = frozenset({"nfs", "nfs4", "lustre", "cifs", "smb3", "ceph", "glusterfs", "gpfs",
                             "beegfs", "wekafs", "9p", "afs"})

TABLE = metric_table(
    counter("node_cpu_seconds_total", "Seconds the CPUs spent in each mode.", ("cpu", "mode"),
            "seconds", "/proc/stat"),
    counter("node_cpu_guest_seconds_total", "Seconds the CPUs spent in guests (VMs) for each mode.",
            ("cpu", "mode"), "seconds", "/proc/stat"),
    gauge("node_boot_time_seconds", "Node boot time, in unixtime.", (), "seconds", "/proc/stat (btime)"),
    counter("node_context_switches_total", "Total number of context switches.", (), "switches",
            "/proc/stat (ctxt)"),
    counter("node_forks_total", "Total number of forks.", (), "forks", "/proc/stat (processes)"),
    counter("node_intr_total", "Total number of interrupts serviced.", (), "interrupts", "/proc/stat (intr)"),
    gauge("node_procs_running", "Number of processes in runnable state.", (), "processes",
          "/proc/stat (procs_running)"),
    gauge("node_procs_blocked", "Number of processes blocked waiting for I/O to complete.", (), "processes",
          "/proc/stat (procs_blocked)"),
    # Documentation only: the real names come from the fields of /proc/meminfo at run time.
    gauge("node_memory_<Field>_bytes", "One gauge per /proc/meminfo field (kB values x 1024), named as "
          "node_exporter names them (node_memory_MemAvailable_bytes...); count fields without a unit "
          "(HugePages_Total...) have no _bytes suffix.", (), "bytes", "/proc/meminfo"),
    gauge("node_load1", "1m load average.", (), "load", "/proc/loadavg"),
    gauge("node_load5", "5m load average.", (), "load", "/proc/loadavg"),
    gauge("node_load15", "15m load average.", (), "load", "/proc/loadavg"),
    # Untyped, as node_exporter exposes them (its names have no _total).
    *(untyped(f"node_vmstat_{name}", f"/proc/vmstat information field {name}: {text}", (), unit, "/proc/vmstat")
      for name, (text, unit) in VMSTAT_HELP.items()),
    *(gauge(name, text, ("device",), unit, "/proc/diskstats") if name == "node_disk_io_now"
      else counter(name, text, ("device",), unit, "/proc/diskstats")
      for _, name, text, _, unit in DISK_COLUMNS),
    *(counter(name, f"Network device statistic {name[len('node_network_'):-len('_total')]}.", ("device",),
              "bytes" if "bytes" in name else "packets" if "packets" in name else "events", "/proc/net/dev")
      for name in NET_COLUMNS),
    *(counter(name, f"Total time in seconds that {'some' if line == 'some' else 'all non-idle'} tasks "
              f"{'waited' if line == 'some' else 'were stalled'} for {resource}.", (), "seconds",
              f"/proc/pressure/{resource} ({line} total)")
      for resource, line, name in PRESSURE),
    gauge("node_filesystem_size_bytes", "Filesystem size in bytes.", FS_LABELS, "bytes",
          "statvfs(mountpoint) f_blocks*f_frsize; mounts from /proc/1/mounts"),
    gauge("node_filesystem_free_bytes", "Filesystem free space in bytes.", FS_LABELS, "bytes",
          "statvfs(mountpoint) f_bfree*f_frsize"),
    gauge("node_filesystem_avail_bytes", "Filesystem space available to non-root users in bytes.",
          FS_LABELS, "bytes", "statvfs(mountpoint) f_bavail*f_frsize"),
    gauge("node_filesystem_files", "Filesystem total file nodes.", FS_LABELS, "inodes",
          "statvfs(mountpoint) f_files"),
    gauge("node_filesystem_files_free", "Filesystem total free file nodes.", FS_LABELS, "inodes",
          "statvfs(mountpoint) f_ffree"),
    gauge("node_filesystem_readonly", "Filesystem read-only status.", FS_LABELS, "boolean",
          "statvfs(mountpoint) f_flag & ST_RDONLY"),
    gauge("node_filesystem_device_error", "Whether an error occurred while getting statistics for the "
          "given device (1: statvfs failed or timed out).", FS_LABELS, "boolean", "statvfs(mountpoint)"),
)

# --- uname, time, timex, filefd: the families node-mixin's alerts and common dashboards read --

UNAME_FILES = (("sysname", "sys/kernel/ostype"), ("release", "sys/kernel/osrelease"),
               ("version", "sys/kernel/version"), ("nodename", "sys/kernel/hostname"),
               ("domainname", "sys/kernel/domainname"))
CLOCKSOURCE_DIR = "devices/system/clocksource"

# adjtimex(2) status bits and return value (linux/timex.h)
STA_NANO = 0x2000
TIME_ERROR = 5
PPM16 = 65536 * 1e6  # freq, ppsfreq and stabil are ppm with a 16-bit fraction
# (struct timex field, name, help, scale: "us", "div" (us or ns by STA_NANO), "ppm16", "ratio", 1)
TIMEX_FIELDS = (
    ("offset", "node_timex_offset_seconds", "Time offset in between local system and reference clock.", "div"),
    ("freq", "node_timex_frequency_adjustment_ratio", "Local clock frequency adjustment.", "ratio"),
    ("maxerror", "node_timex_maxerror_seconds", "Maximum error in seconds.", "us"),
    ("esterror", "node_timex_estimated_error_seconds", "Estimated error in seconds.", "us"),
    ("status", "node_timex_status", "Value of the status array bits.", 1),
    ("constant", "node_timex_loop_time_constant", "Phase-locked loop time constant.", 1),
    ("tick", "node_timex_tick_seconds", "Seconds between clock ticks.", "us"),
    ("ppsfreq", "node_timex_pps_frequency_hertz", "Pulse per second frequency.", "ppm16"),
    ("jitter", "node_timex_pps_jitter_seconds", "Pulse per second jitter.", "div"),
    ("shift", "node_timex_pps_shift_seconds", "Pulse per second interval duration.", 1),
    ("stabil", "node_timex_pps_stability_hertz", "Pulse per second stability, average of recent frequency changes.", "ppm16"),
    ("jitcnt", "node_timex_pps_jitter_total", "Pulse per second count of jitter limit exceeded events.", 1),
    ("calcnt", "node_timex_pps_calibration_total", "Pulse per second count of calibration intervals.", 1),
    ("errcnt", "node_timex_pps_error_total", "Pulse per second count of calibration errors.", 1),
    ("stbcnt", "node_timex_pps_stability_exceeded_total", "Pulse per second count of stability limit exceeded events.", 1),
    ("tai", "node_timex_tai_offset_seconds", "International Atomic Time (TAI) offset.", 1),
)


class _Timeval(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long)]


class Timex(ctypes.Structure):
    """struct timex of linux/timex.h (natural alignment gives the kernel's padding)."""
    _fields_ = [("modes", ctypes.c_uint), ("offset", ctypes.c_long), ("freq", ctypes.c_long),
                ("maxerror", ctypes.c_long), ("esterror", ctypes.c_long), ("status", ctypes.c_int),
                ("constant", ctypes.c_long), ("precision", ctypes.c_long), ("tolerance", ctypes.c_long),
                ("time", _Timeval), ("tick", ctypes.c_long), ("ppsfreq", ctypes.c_long),
                ("jitter", ctypes.c_long), ("shift", ctypes.c_int), ("stabil", ctypes.c_long),
                ("jitcnt", ctypes.c_long), ("calcnt", ctypes.c_long), ("errcnt", ctypes.c_long),
                ("stbcnt", ctypes.c_long), ("tai", ctypes.c_int), ("_reserved", ctypes.c_int * 11)]


_LIBC: Any = None


def adjtimex() -> tuple[int, dict[str, int]]:
    """adjtimex(2) with modes=0: reads the kernel clock discipline, needs no privilege.
    Returns (the call's clock state, the struct's fields); OSError where it fails."""
    global _LIBC
    if _LIBC is None:
        _LIBC = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    buf = Timex()
    state = _LIBC.adjtimex(ctypes.byref(buf))
    if state < 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))
    return state, {name: getattr(buf, name) for name, _ in Timex._fields_ if name not in ("time", "_reserved")}


def timex_values(state: int, fields: dict[str, int]) -> dict[str, float]:
    """node_exporter's timex conversions: exposed name -> value."""
    divisor = 1e9 if fields["status"] & STA_NANO else 1e6
    values = {"node_timex_sync_status": 0.0 if state == TIME_ERROR else 1.0}
    for field, name, _, scale in TIMEX_FIELDS:
        raw = fields[field]
        values[name] = (raw / divisor if scale == "div" else raw / 1e6 if scale == "us"
                        else raw / PPM16 if scale == "ppm16" else 1 + raw / PPM16 if scale == "ratio"
                        else float(raw))
    return values


EXTRA_TABLE = metric_table(
    gauge("node_uname_info", "Labeled system information as provided by the uname system call.",
          ("sysname", "release", "version", "machine", "nodename", "domainname"), "info",
          "/proc/sys/kernel/{ostype,osrelease,version,hostname,domainname}; machine from uname(2)"),
    gauge("node_time_seconds", "System time in seconds since epoch (1970).", (), "seconds", "clock_gettime"),
    gauge("node_time_zone_offset_seconds", "System time zone offset in seconds.", ("time_zone",), "seconds",
          "localtime(3)"),
    gauge("node_time_clocksource_available_info", "Available clocksources read from "
          "'/sys/devices/system/clocksource'.", ("device", "clocksource"), "info",
          "/sys/devices/system/clocksource/clocksource<N>/available_clocksource"),
    gauge("node_time_clocksource_current_info", "Current clocksource read from "
          "'/sys/devices/system/clocksource'.", ("device", "clocksource"), "info",
          "/sys/devices/system/clocksource/clocksource<N>/current_clocksource"),
    gauge("node_timex_sync_status", "Is clock synchronized to a reliable server (1 = yes, 0 = no).", (),
          "boolean", "adjtimex(2) return value (TIME_ERROR: 0)"),
    *((counter if name.endswith("_total") else gauge)(
        name, text, (), "events" if name.endswith("_total") else "ratio" if "ratio" in name
        else "hertz" if "hertz" in name else "seconds" if "seconds" in name else "value", f"adjtimex(2) {field}")
      for field, name, text, _ in TIMEX_FIELDS),
    gauge("node_filefd_allocated", "File descriptor statistics: allocated.", (), "descriptors",
          "/proc/sys/fs/file-nr (first field)"),
    gauge("node_filefd_maximum", "File descriptor statistics: maximum.", (), "descriptors",
          "/proc/sys/fs/file-nr (third field)"),
)
TABLE = {**TABLE, **EXTRA_TABLE}

_MEMINFO_SOURCE = "/proc/meminfo"


_POOL_LOCK = threading.Lock()
_POOL: concurrent.futures.ThreadPoolExecutor | None = None


def _statvfs_pool() -> concurrent.futures.ThreadPoolExecutor:
    """One small pool per process: a simulator runs thousands of node collectors, and four
    threads each would be thousands of idle threads contending for the GIL."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = concurrent.futures.ThreadPoolExecutor(4, thread_name_prefix="statvfs")
        return _POOL


class StatvfsGuard:
    """``statvfs`` with a deadline for network file systems, remembering mounts that hang."""

    def __init__(self, statvfs: Callable[[str], Any], timeout: float) -> None:
        self._statvfs = statvfs
        self.timeout = timeout
        self._stuck: set[str] = set()  # touched by the worker's done-callback: set ops hold the GIL

    def __call__(self, mountpoint: str, network: bool) -> Any:
        if not network:
            return self._statvfs(mountpoint)
        if mountpoint in self._stuck:
            raise TimeoutError(f"statvfs({mountpoint}) still blocked from an earlier cycle")
        future = _statvfs_pool().submit(self._statvfs, mountpoint)
        try:
            return future.result(self.timeout)
        except concurrent.futures.TimeoutError:
            self._stuck.add(mountpoint)
            future.add_done_callback(lambda _: self._stuck.discard(mountpoint))
            raise TimeoutError(f"statvfs({mountpoint}) took over {self.timeout}s") from None

    def close(self) -> None:
        """Nothing to release: the pool is shared, and a worker blocked in the kernel cannot be
        joined anyway (its threads are daemonic and end with the process)."""


def _error_text(exc: BaseException) -> str:
    """The device_error label node_exporter would give: Go's errno text (lower case), or
    "mountpoint timeout" for a statvfs that missed its deadline."""
    if isinstance(exc, TimeoutError) and not getattr(exc, "errno", None):
        return "mountpoint timeout"
    errno = getattr(exc, "errno", None)
    text = os.strerror(errno) if errno else str(exc)
    return text[:1].lower() + text[1:]


def is_real_filesystem(mount: Mount) -> bool:
    """node_exporter's default: not a pseudo file system type and not under /dev, /proc, /run..."""
    return not PSEUDO_FSTYPES.match(mount.fstype) and not EXCLUDED_MOUNT_POINTS.match(mount.mountpoint)


@register_collector("node")
class NodeCollector(Collector):
    """Host CPU, load, memory, file systems, disks, network and pressure (node_exporter names)."""

    # Below node_exporter's 5 s mount timeout: a stuck mount must not eat a 5 s collection cycle.
    STATVFS_TIMEOUT = 2.0

    def __init__(self, ctx: CollectorContext) -> None:
        super().__init__(ctx)
        self._statvfs = StatvfsGuard(ctx.statvfs, self.STATVFS_TIMEOUT)
        self._meminfo_specs: dict[str, MetricSpec] = {}
        # adjtimex(2) reads the host's (not namespaced) clock state; tests hand in a fake one.
        self.adjtimex: Callable[[], tuple[int, dict[str, int]]] | None = adjtimex

    def collect(self) -> FamilySet:
        procfs = self.ctx.procfs
        if not procfs.exists("stat"):
            raise NoDataError(f"no stat file in {procfs!r}: not a procfs tree")
        out = FamilySet(TABLE)
        self._stat(out)
        load = read_source(procfs, "loadavg", parse_loadavg, self.skip)
        if load is not None:
            out.add("node_load1", load[0])
            out.add("node_load5", load[1])
            out.add("node_load15", load[2])
        self._meminfo(out)
        vmstat = read_source(procfs, "vmstat", lambda t: parse_key_values(t, VMSTAT_FIELDS.match), self.skip)
        for name, value in (vmstat or {}).items():
            if name in VMSTAT_HELP:
                out.add(f"node_vmstat_{name}", value)
        self._diskstats(out)
        self._netdev(out)
        self._pressure(out)
        self._filesystems(out)
        self._filefd(out)
        self._uname(out)
        self._time(out)
        self._timex(out)
        return out

    def _filefd(self, out: FamilySet) -> None:
        fields = read_source(self.ctx.procfs, "sys/fs/file-nr", lambda t: [int(v) for v in t.split()[:3]],
                             self.skip, absent_ok=True)
        if fields and len(fields) == 3:
            out.add("node_filefd_allocated", fields[0])
            out.add("node_filefd_maximum", fields[2])

    def _uname(self, out: FamilySet) -> None:
        labels: dict[str, str] = {}
        for label, path in UNAME_FILES:
            value = read_source(self.ctx.procfs, path, str.strip, self.skip, absent_ok=True)
            if value is None:
                return  # no sysctl tree (a fixture or a simulated node without one): no uname
            labels[label] = value
        arch = read_source(self.ctx.procfs, "sys/kernel/arch", str.strip, self.skip, absent_ok=True)
        labels["machine"] = arch or os.uname().machine
        out.add("node_uname_info", 1, **labels)

    def _time(self, out: FamilySet) -> None:
        now = self.ctx.clock()
        out.add("node_time_seconds", now)
        local = time.localtime(now)
        out.add("node_time_zone_offset_seconds", local.tm_gmtoff, time_zone=local.tm_zone)
        sysfs = self.ctx.sysfs
        if not sysfs.exists(CLOCKSOURCE_DIR):
            return
        for entry in sorted(sysfs.listdir(CLOCKSOURCE_DIR)):
            if not entry.startswith("clocksource") or not entry[len("clocksource"):].isdigit():
                continue
            device = entry[len("clocksource"):]
            base = f"{CLOCKSOURCE_DIR}/{entry}"
            available = read_source(sysfs, f"{base}/available_clocksource", str.split, self.skip, absent_ok=True)
            for source in available or ():
                out.add("node_time_clocksource_available_info", 1, device=device, clocksource=source)
            current = read_source(sysfs, f"{base}/current_clocksource", str.strip, self.skip, absent_ok=True)
            if current:
                out.add("node_time_clocksource_current_info", 1, device=device, clocksource=current)

    def _timex(self, out: FamilySet) -> None:
        if self.adjtimex is None:
            return
        try:
            state, fields = self.adjtimex()
        except OSError as exc:
            # node_exporter: no permission is no data, not an error; anything else is skipped
            # and counted. Either way it is not asked again.
            if exc.errno not in (1, 13):
                self.skip("adjtimex", exc)
            self.adjtimex = None
            return
        for name, value in timex_values(state, fields).items():
            out.add(name, value)

    def _stat(self, out: FamilySet) -> None:
        stat = read_source(self.ctx.procfs, "stat", parse_stat, self.skip)
        if stat is None:
            return
        for cpu in stat.cpus:
            for mode, seconds in zip(CPU_MODES, cpu.modes):
                out.add("node_cpu_seconds_total", seconds, cpu=cpu.cpu, mode=mode)
            for mode, seconds in zip(GUEST_MODES, cpu.guest):
                out.add("node_cpu_guest_seconds_total", seconds, cpu=cpu.cpu, mode=mode)
        for name, value in (
            ("node_boot_time_seconds", stat.boot_time),
            ("node_context_switches_total", stat.context_switches),
            ("node_forks_total", stat.forks),
            ("node_intr_total", stat.interrupts),
            ("node_procs_running", stat.procs_running),
            ("node_procs_blocked", stat.procs_blocked),
        ):
            if value is not None:
                out.add(name, value)

    def _meminfo(self, out: FamilySet) -> None:
        fields = read_source(self.ctx.procfs, "meminfo", parse_meminfo, self.skip)
        for key, value in fields or ():
            spec = self._meminfo_specs.get(key)
            if spec is None:
                spec = self._meminfo_specs[key] = gauge(
                    f"node_memory_{key}", f"Memory information field {key}.", (),
                    "bytes" if key.endswith("_bytes") else "pages", _MEMINFO_SOURCE,
                )
            out.declare(spec)
            out.add(spec.name, value)

    def _diskstats(self, out: FamilySet) -> None:
        for device, values in read_source(self.ctx.procfs, "diskstats", parse_diskstats, self.skip) or ():
            if EXCLUDED_DISKS.match(device):
                continue
            for column, name, _, scale, _ in DISK_COLUMNS:
                if column < len(values):
                    out.add(name, values[column] * scale, device=device)

    def _netdev(self, out: FamilySet) -> None:
        for device, values in read_source(self.ctx.procfs, "net/dev", parse_net_dev, self.skip) or ():
            for name, value in zip(NET_COLUMNS, values):
                out.add(name, value, device=device)

    def _pressure(self, out: FamilySet) -> None:
        totals: dict[str, dict[str, float] | None] = {}
        for resource, line, name in PRESSURE:
            if resource not in totals:
                # Kernels built without PSI (or booted with psi=0) have no files: not an error.
                totals[resource] = read_source(
                    self.ctx.procfs, f"pressure/{resource}", parse_pressure, self.skip, absent_ok=True
                )
            seconds = (totals[resource] or {}).get(line)
            if seconds is not None:
                out.add(name, seconds)

    def _selected_mounts(self, mounts: list[Mount]) -> list[Mount]:
        wanted = getattr(self.ctx.config, "filesystem_mount_points", None)
        if not wanted:
            seen: dict[str, Mount] = {}
            for mount in mounts:
                if is_real_filesystem(mount):
                    seen[mount.mountpoint] = mount  # the last mount on a path is the visible one
            return list(seen.values())
        by_path = {mount.mountpoint: mount for mount in mounts}
        selected = []
        for path in wanted:
            mount = by_path.get(path.rstrip("/") or "/")
            if mount is None:
                # A configured mount that is absent (a Lustre client that failed to mount) must
                # show as an error, never as silence.
                self.skip(f"filesystem {path}: not mounted")
            else:
                selected.append(mount)
        return selected

    def _filesystems(self, out: FamilySet) -> None:
        mounts = read_mounts(self.ctx.procfs, self.skip)
        if mounts is None:
            return
        for mount in self._selected_mounts(mounts):
            labels = {"device": mount.device, "fstype": mount.fstype, "mountpoint": mount.mountpoint}
            network = mount.fstype in NETWORK_FSTYPES or mount.fstype.startswith("fuse.")
            try:
                st = self._statvfs(mount.mountpoint, network)
            except (OSError, TimeoutError) as exc:
                self.skip(f"statvfs({mount.mountpoint})", exc)
                # node_exporter: the error text in the label, device_error 1, and readonly from
                # the mount options; no size or inode series.
                labels["device_error"] = _error_text(exc)
                out.add("node_filesystem_device_error", 1, **labels)
                out.add("node_filesystem_readonly", 1 if "ro" in mount.options else 0, **labels)
                continue
            labels["device_error"] = ""
            out.add("node_filesystem_device_error", 0, **labels)
            out.add("node_filesystem_size_bytes", st.f_blocks * st.f_frsize, **labels)
            out.add("node_filesystem_free_bytes", st.f_bfree * st.f_frsize, **labels)
            out.add("node_filesystem_avail_bytes", st.f_bavail * st.f_frsize, **labels)
            out.add("node_filesystem_files", st.f_files, **labels)
            out.add("node_filesystem_files_free", st.f_ffree, **labels)
            out.add("node_filesystem_readonly", 1 if st.f_flag & os.ST_RDONLY else 0, **labels)

    def close(self) -> None:
        self._statvfs.close()
