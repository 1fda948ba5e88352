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


def _default_collectors() -> list[str]:
    from exporter.collector import default_collectors

    return default_collectors()


OPTIONS = (
    Option("listen", ExporterConfig.listen, "address to serve /metrics on", settings.host_port, "HOST:PORT"),
    Option("interval", 5.0, "collection interval", settings.duration, "DURATION"),
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


def run(args: argparse.Namespace) -> int:
    from exporter.build import create_exporter
    from exporter.exporter import CollectionLoop
    from exporter.server import ExporterHTTPServer, parse_listen

    config = load_config(args)
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
