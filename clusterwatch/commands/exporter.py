"""``clusterwatch exporter``: serve one node's GPU, host, InfiniBand, storage and job metrics."""
from __future__ import annotations

import argparse
import logging
import os

from cwkernel import settings
from cwkernel.lifecycle import run_until_stopped
from cwkernel.errors import ConfigError
from cwkernel.settings import Option
from exporter.config import ExporterConfig

log = logging.getLogger(__name__)

ENV_PREFIX = "CLUSTERWATCH_EXPORTER_"


def _collector_list(raw: object) -> list[str]:
    from exporter.collector import available_collectors

    names = settings.string_list(raw)
    known = available_collectors()
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ValueError(f"unknown collector {unknown[0]!r} (available: {', '.join(known)})")
    if not names:
        raise ValueError("at least one collector must be enabled")
    return names


def _rate(raw: object) -> float:
    value = float(str(raw))
    if not 0 < value <= 1_000_000:
        raise ValueError("must be a number of ports per second from 0 (excluded) to 1000000")
    return value


def _boolean(raw: object) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text not in ("true", "false", "1", "0", "yes", "no"):
        raise ValueError(f"must be true or false (got {raw!r})")
    return text in ("true", "1", "yes")


def _ca_name(raw: object) -> str:
    text = str(raw)
    if text and not (len(text) <= 32 and text.replace("_", "").isalnum() and text.isascii()):
        raise ValueError("must be an HCA name such as mlx5_0")
    return text


def _default_collectors() -> list[str]:
    from exporter.collector import default_collectors

    return default_collectors()


OPTIONS = (
    Option("listen", ExporterConfig.listen, "address to serve /metrics on", settings.host_port, "HOST:PORT"),
    Option("interval", 5.0, "collection interval", settings.duration, "DURATION"),
    Option("nvml_timeout", 10.0, "how long a collection waits for NVML; past it the node's other metrics are served "
           "and NVML is reported down (a GPU the driver hangs on)", settings.duration, "DURATION"),
    Option("backend", "nvml", "GPU backend: the real NVML library or the fake one", settings.choice("nvml", "fake"), "nvml|fake"),
    Option("fake_scenario", None, "YAML scenario for the fake backend", settings.optional_path, "FILE"),
    Option("procfs", "/proc", "procfs mount point", str, "DIR"),
    Option("sysfs", "/sys", "sysfs mount point", str, "DIR"),
    Option("kmsg", "/dev/kmsg", "kernel log read once at start to recover the XIDs raised while the exporter was down "
           "(\"\" to skip; the fake backend logs to its own)", str, "FILE"),
    Option("job_mapping_dir", None, "directory a Slurm prolog writes GPU-to-job files into", settings.optional_path, "DIR"),
    Option("pod_resources_socket", "auto", "the kubelet's pod-resources socket, for the GPUs allocated to pods "
           "(auto: /var/lib/kubelet/pod-resources/kubelet.sock where that directory exists; off: none)", str,
           "PATH|auto|off"),
    Option("collectors", None, "comma-separated collectors to enable (default: all that are on by default)", _collector_list, "LIST"),
    Option("filesystem_mount_points", None, "comma-separated mount points to report (default: all real file systems)",
           settings.optional_string_list, "LIST"),
    Option("textfile_dir", None, "directory of *.prom files to expose, as node_exporter's "
           "--collector.textfile.directory (cron-written metrics)", settings.optional_path, "DIR"),
    # The fabric collector (--collectors fabric): docs/operations.md, "The fabric collector".
    Option("fabric_interval", 60.0, "fabric collector: time from one sweep's start to the next", settings.duration,
           "DURATION"),
    Option("fabric_sweep_timeout", 60.0, "fabric collector: the most one sweep may take; past it the sweep stops "
           "(fabric_sweep_incomplete 1) and what it read is exposed", settings.duration, "DURATION"),
    Option("fabric_ports_per_second", 2000.0, "fabric collector: the most switch ports read per second (paces the "
           "perfquery MADs)", _rate, "N"),
    Option("fabric_tool_timeout", 30.0, "fabric collector: the most one ibnetdiscover, iblinkinfo or perfquery run may "
           "take", settings.duration, "DURATION"),
    Option("fabric_max_output_bytes", 64 << 20, "fabric collector: the most output read from one tool run",
           settings.positive_int, "BYTES"),
    Option("fabric_hca_counters", False, "fabric collector: read the HCA end of host cables too (one perfquery per "
           "HCA; off: the hosts' own exporters report them)", _boolean, "true|false"),
    Option("fabric_ca", "", "fabric collector: the local HCA the tools use (their -C; \"\" lets them choose)", _ca_name,
           "CA"),
    Option("fabric_plan", None, "fabric collector: YAML cabling plan and name overrides", settings.optional_path, "FILE"),
    Option("fabric_tools_dir", None, "fabric collector: directory of the infiniband-diags binaries (default: PATH)",
           settings.optional_path, "DIR"),
)


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("exporter", help="run the node exporter",
                                   description=__doc__.splitlines()[0].split(": ", 1)[-1])
    settings.add_flags(parser, OPTIONS, ENV_PREFIX)
    return parser


def load_config(args: argparse.Namespace, environ: dict[str, str] | None = None) -> ExporterConfig:
    values = settings.resolve(OPTIONS, config_file=args.config, flags=vars(args), environ=environ, env_prefix=ENV_PREFIX)
    if values["collectors"] is None:
        values["collectors"] = _default_collectors()
    config = ExporterConfig(**values)
    _check(config, args.config)
    return config


def _check(config: ExporterConfig, source: str | None) -> None:
    if config.fake_scenario and config.backend != "fake":
        raise ConfigError("fake_scenario", "only applies with backend fake", source)
    if config.fake_scenario and not os.path.isfile(config.fake_scenario):
        raise ConfigError("fake_scenario", f"no such file: {config.fake_scenario}", source)
    for name in ("procfs", "sysfs"):
        if not os.path.isdir(getattr(config, name)):
            raise ConfigError(name, f"not a directory: {getattr(config, name)}", source)
    if config.job_mapping_dir and not os.path.isdir(config.job_mapping_dir):
        raise ConfigError("job_mapping_dir", f"not a directory: {config.job_mapping_dir}", source)
    if config.fabric_plan and "fabric" in config.collectors:
        from exporter.fabric.plan import PlanError, load

        try:
            load(config.fabric_plan)
        except PlanError as exc:
            raise ConfigError("fabric_plan", str(exc), source) from None


def run(args: argparse.Namespace) -> int:
    from cwkernel import logthrottle
    from exporter.build import create_exporter
    from exporter.exporter import CollectionLoop
    from exporter.server import ExporterHTTPServer, parse_listen

    config = load_config(args)
    logthrottle.install(logthrottle.Throttle())  # a connection flood's warnings, like serve's
    exporter = create_exporter(config)
    loop = CollectionLoop(exporter, config.interval)
    loop.start()
    try:
        server = ExporterHTTPServer(parse_listen(config.listen), lambda: exporter.collection)
    except OSError as exc:
        loop.stop()
        raise ConfigError("listen", f"cannot listen on {config.listen}: {exc.strerror}") from None
    server.start_in_thread()
    print(f"clusterwatch exporter serving {server.url}/metrics "
          f"(backend {config.backend}, collectors {','.join(config.collectors)})", flush=True)
    run_until_stopped(server.shutdown, loop.stop, exporter.close)
    return 0
