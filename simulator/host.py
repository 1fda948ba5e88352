"""A simulated node's operating system as the exporter's host collectors see it: procfs and sysfs.

The files are generated in the kernel's formats from counters that ``advance()`` moves forward
with the node's load, and served through a ``MemoryFS`` whose entries are rendered when read, so
thousands of simulated nodes cost no disk and no work until they are scraped. Simulated nodes show
16 CPUs in /proc/stat (a real one has 224): per-CPU series dominate node_exporter's exposition
and the simulator keeps each node's exposition near a real exporter's size without that bulk.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace

from exporter.hostfs import MemoryFS

USER_HZ = 100
CPUS = 16
MEM_TOTAL_KB = 2_113_389_368
IB_PORT_BYTES_PER_SECOND = 400e9 / 8  # NDR 400 Gb/s
LUSTRE_FS = "lustre1-ffff9a2b3c4d5000"
MOUNTS = (
    ("sysfs", "/sys", "sysfs"), ("proc", "/proc", "proc"), ("/dev/nvme0n1p2", "/", "ext4"),
    ("/dev/md0", "/raid", "ext4"), ("tmpfs", "/dev/shm", "tmpfs"),
    ("10.20.0.1@o2ib:10.20.0.2@o2ib:/lustre1", "/lustre", "lustre"),
)
FS_SIZE_BYTES = {"/": 960 * 10**9, "/raid": 30 * 10**12, "/dev/shm": 1 * 10**12, "/lustre": 20 * 10**15}
IB_COUNTERS = ("symbol_error", "link_downed", "link_error_recovery", "port_rcv_errors", "local_link_integrity_errors",
               "excessive_buffer_overrun_errors", "port_xmit_discards", "port_rcv_remote_physical_errors",
               "port_rcv_switch_relay_errors", "port_rcv_constraint_errors", "port_xmit_constraint_errors",
               "VL15_dropped")


@dataclass
class IbPort:
    up: bool = True
    data_rcv_words: float = 0.0
    data_xmit_words: float = 0.0
    packets: float = 0.0
    xmit_wait: float = 0.0
    errors: dict[str, float] = field(default_factory=lambda: dict.fromkeys(IB_COUNTERS, 0.0))


@dataclass
class SimHost:
    """Counters of one node's OS; ``advance(dt, load)`` moves them along with its work."""

    name: str
    boot_time: float
    ib_ports: int = 4
    cpu_ticks: dict[str, float] = field(default_factory=lambda: dict.fromkeys(
        ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"), 0.0))
    load: float = 0.5
    mem_used_fraction: float = 0.05
    disk_read_bytes: float = 0.0
    disk_written_bytes: float = 0.0
    net_rx_bytes: float = 0.0
    net_tx_bytes: float = 0.0
    lustre_read_bytes: float = 0.0
    lustre_written_bytes: float = 0.0
    lustre_writes: float = 0.0
    lustre_reads: float = 0.0
    io_stall_us: float = 0.0
    context_switches: float = 0.0
    oom_kills: int = 0
    disk_full: set[str] = field(default_factory=set)
    ports: list[IbPort] = field(default_factory=list)
    processes: dict[int, str] = field(default_factory=dict)  # pid -> cgroup path of its job step

    def __post_init__(self) -> None:
        if not self.ports:
            self.ports = [IbPort() for _ in range(self.ib_ports)]

    def advance(self, dt: float, gpu_load: float, ib_fraction: float, checkpoint: float) -> None:
        """``gpu_load`` 0-1: the share of the node's GPUs busy; ``ib_fraction`` of IB bandwidth in use."""
        busy = min(1.0, 0.05 + 0.35 * gpu_load)  # data loaders and NCCL proxy threads
        ticks = dt * USER_HZ * CPUS
        for mode, share in (("user", busy * 0.8), ("system", busy * 0.15), ("iowait", checkpoint * 0.05),
                            ("softirq", busy * 0.02), ("idle", max(0.0, 1 - busy * 0.97 - checkpoint * 0.05))):
            self.cpu_ticks[mode] += ticks * share
        self.load = CPUS * busy + checkpoint * 4
        self.mem_used_fraction = 0.05 + 0.4 * gpu_load
        self.disk_read_bytes += dt * 2e8 * gpu_load
        self.disk_written_bytes += dt * 1e7 * (gpu_load + checkpoint * 5)
        self.net_rx_bytes += dt * 5e6
        self.net_tx_bytes += dt * 4e6
        self.lustre_read_bytes += dt * 1.5e9 * gpu_load
        self.lustre_reads += dt * 400 * gpu_load
        self.lustre_written_bytes += dt * 8e9 * checkpoint
        self.lustre_writes += dt * 2000 * checkpoint
        self.io_stall_us += dt * 1e6 * checkpoint * 0.3
        self.context_switches += dt * 50_000 * (1 + gpu_load)
        for port in self.ports:
            if port.up:
                words = dt * IB_PORT_BYTES_PER_SECOND * ib_fraction / 4
                port.data_rcv_words += words
                port.data_xmit_words += words
                port.packets += words * 4 / 4096

    # ---- files -----------------------------------------------------------------------------------

    def procfs(self) -> MemoryFS:
        fs = MemoryFS({
            "stat": self._stat, "loadavg": lambda: f"{self.load:.2f} {self.load:.2f} {self.load:.2f} 3/2345 98765\n",
            "meminfo": self._meminfo, "vmstat": lambda: f"nr_free_pages 12345678\npgfault 987654321\noom_kill {self.oom_kills}\n",
            "diskstats": self._diskstats, "net/dev": self._net_dev,
            "pressure/cpu": lambda: _pressure(0.0, 0.0), "pressure/memory": lambda: _pressure(0.0, 0.0),
            "pressure/io": lambda: _pressure(self.io_stall_us, self.io_stall_us * 0.5),
            "self/mounts": lambda: "".join(f"{dev} {mnt} {fs} rw,relatime 0 0\n" for dev, mnt, fs in MOUNTS),
            "self/mountstats": lambda: "".join(f"device {dev} mounted on {mnt} with fstype {fs}\n" for dev, mnt, fs in MOUNTS),
        })
        return fs

    def sync_processes(self, fs: MemoryFS, processes: dict[int, str]) -> None:
        """Make ``<pid>/cgroup`` exist for exactly the job processes running now."""
        for pid in set(self.processes) - set(processes):
            fs.remove(str(pid))
        for pid, cgroup in processes.items():
            if self.processes.get(pid) != cgroup:
                fs.set(f"{pid}/cgroup", f"0::{cgroup}\n")
        self.processes = dict(processes)

    def sysfs(self) -> MemoryFS:
        fs = MemoryFS({f"kernel/debug/lustre/llite/{LUSTRE_FS}/stats": self._lustre_stats})
        for index, port in enumerate(self.ports):
            base = f"class/infiniband/mlx5_{index}"
            fs.set(f"{base}/hca_type", "MT4129\n")
            fs.set(f"{base}/fw_ver", "28.39.1002\n")
            fs.set(f"{base}/board_id", "MT_0000000838\n")
            fs.set(f"{base}/ports/1/rate", "400 Gb/sec (4X NDR)\n")
            fs.set(f"{base}/ports/1/link_layer", "InfiniBand\n")
            fs.set(f"{base}/ports/1/state", lambda p=port: "4: ACTIVE\n" if p.up else "1: DOWN\n")
            fs.set(f"{base}/ports/1/phys_state", lambda p=port: "5: LinkUp\n" if p.up else "3: Disabled\n")
            counters = f"{base}/ports/1/counters"
            fs.set(f"{counters}/port_rcv_data", lambda p=port: f"{int(p.data_rcv_words)}\n")
            fs.set(f"{counters}/port_xmit_data", lambda p=port: f"{int(p.data_xmit_words)}\n")
            fs.set(f"{counters}/port_rcv_packets", lambda p=port: f"{int(p.packets)}\n")
            fs.set(f"{counters}/port_xmit_packets", lambda p=port: f"{int(p.packets)}\n")
            fs.set(f"{counters}/port_xmit_wait", lambda p=port: f"{int(p.xmit_wait)}\n")
            for name in IB_COUNTERS:
                fs.set(f"{counters}/{name}", lambda p=port, n=name: f"{int(p.errors[n])}\n")
        return fs

    def statvfs(self, mountpoint: str) -> SimpleNamespace:
        size = FS_SIZE_BYTES.get(mountpoint)
        if size is None:
            raise FileNotFoundError(2, "No such file or directory", mountpoint)
        block = 4096
        free_fraction = 0.001 if mountpoint in self.disk_full else 0.62
        blocks = size // block
        free = int(blocks * free_fraction)
        return SimpleNamespace(f_bsize=block, f_frsize=block, f_blocks=blocks, f_bfree=free, f_bavail=free,
                               f_files=10**8, f_ffree=int(10**8 * free_fraction), f_favail=int(10**8 * free_fraction),
                               f_flag=0, f_namemax=255)

    def _stat(self) -> str:
        per_cpu = {mode: value / CPUS for mode, value in self.cpu_ticks.items()}
        line = " ".join(str(int(per_cpu[m])) for m in ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"))
        total = " ".join(str(int(self.cpu_ticks[m])) for m in ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"))
        cpus = "".join(f"cpu{i} {line} 0 0\n" for i in range(CPUS))
        return (f"cpu  {total} 0 0\n{cpus}intr 0\nctxt {int(self.context_switches)}\nbtime {int(self.boot_time)}\n"
                f"processes 123456\nprocs_running {max(1, int(self.load))}\nprocs_blocked 0\n")

    def _meminfo(self) -> str:
        used = int(MEM_TOTAL_KB * self.mem_used_fraction)
        rows = (("MemTotal", MEM_TOTAL_KB), ("MemFree", MEM_TOTAL_KB - used - 200_000_000),
                ("MemAvailable", MEM_TOTAL_KB - used), ("Buffers", 1_234_567), ("Cached", 150_000_000),
                ("SwapCached", 0), ("Active", used), ("Inactive", 120_000_000), ("SwapTotal", 0), ("SwapFree", 0),
                ("Dirty", 1024), ("Shmem", 4_000_000), ("Slab", 9_000_000), ("HugePages_Total", 0))
        return "".join(f"{name}:{value:>16} kB\n" if not name.startswith("HugePages") else f"{name}:{value:>8}\n"
                       for name, value in rows)

    def _diskstats(self) -> str:
        read_sectors, written_sectors = int(self.disk_read_bytes / 512), int(self.disk_written_bytes / 512)
        return "".join(
            f" 259       {i * 2} nvme{i}n1 {read_sectors // 64} 0 {read_sectors} {read_sectors // 5000} "
            f"{written_sectors // 64} 0 {written_sectors} {written_sectors // 4000} 0 {read_sectors // 3000} "
            f"{read_sectors // 2000} 0 0 0 0 0 0\n" for i in range(2))

    def _net_dev(self) -> str:
        header = ("Inter-|   Receive                                                |  Transmit\n"
                  " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n")
        rx, tx = int(self.net_rx_bytes), int(self.net_tx_bytes)
        return header + f"    lo: 1000 10 0 0 0 0 0 0 1000 10 0 0 0 0 0 0\n  eno1: {rx} {rx // 1500} 0 0 0 0 0 0 {tx} {tx // 1500} 0 0 0 0 0 0\n"

    def _lustre_stats(self) -> str:
        return (f"snapshot_time             {self.boot_time:.9f} secs.nsecs\n"
                f"read_bytes                {int(self.lustre_reads)} samples [bytes] 0 16777216 {int(self.lustre_read_bytes)}\n"
                f"write_bytes               {int(self.lustre_writes)} samples [bytes] 0 16777216 {int(self.lustre_written_bytes)}\n"
                f"read                      {int(self.lustre_reads)} samples [usec] 2 9876 {int(self.lustre_reads * 300)}\n"
                f"write                     {int(self.lustre_writes)} samples [usec] 3 8765 {int(self.lustre_writes * 400)}\n")


def _pressure(some_us: float, full_us: float) -> str:
    return (f"some avg10=0.00 avg60=0.00 avg300=0.00 total={int(some_us)}\n"
            f"full avg10=0.00 avg60=0.00 avg300=0.00 total={int(full_us)}\n")
