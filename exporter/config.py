"""The exporter's settings as one typed object; reading them from flags, env and files is the CLI's job."""
from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_PORT = 9835


@dataclass
class ExporterConfig:
    listen: str = f"127.0.0.1:{DEFAULT_PORT}"
    interval: float = 5.0
    backend: str = "nvml"
    fake_scenario: str | None = None
    procfs: str = "/proc"
    sysfs: str = "/sys"
    # The kernel log the XID collector recovers missed XIDs from at start; "" to not read one.
    kmsg: str = "/dev/kmsg"
    job_mapping_dir: str | None = None
    # The kubelet's pod-resources socket: "auto" (the kubelet's, where its directory exists), "" (off) or a path.
    # Off unless asked: `clusterwatch exporter` asks for "auto"; a simulated node's fake GPUs have no kubelet.
    pod_resources_socket: str = ""
    collectors: list[str] = field(default_factory=list)
    # How long a collection waits for NVML before it serves the rest and reports NVML down (a GPU
    # the driver hangs on): exporter/nvmllane.py.
    nvml_timeout: float = 10.0
    # None: every real (non-pseudo) file system in the mount table, as node_exporter does.
    filesystem_mount_points: list[str] | None = None
    # node_exporter's --collector.textfile.directory: *.prom files exposed as they are; None: off.
    textfile_dir: str | None = None
    # The fabric collector (--collectors fabric, one management host per fabric): docs/operations.md.
    fabric_interval: float = 60.0
    fabric_sweep_timeout: float = 60.0
    fabric_ports_per_second: float = 2000.0
    fabric_tool_timeout: float = 30.0
    fabric_max_output_bytes: int = 64 << 20
    fabric_hca_counters: bool = False
    fabric_ca: str = ""
    fabric_plan: str | None = None
    fabric_tools_dir: str | None = None
