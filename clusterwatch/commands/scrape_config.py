"""``clusterwatch scrape-config``: Prometheus scrape configuration for the GPU nodes and the server.

    clusterwatch scrape-config --nodes 'gpu-[001-140]' --file-sd /etc/prometheus/gpu-nodes.json
    clusterwatch scrape-config --from-slurm --server monitor-01:9464 > scrape.yml

Writes the file_sd targets (one per node, ``instance`` set to the node's name as Slurm knows it)
and prints the ``scrape_configs`` that use them, with ``honor_labels`` on the server's job.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys

import yaml

from cwkernel import settings
from cwkernel.errors import ConfigError
from exporter.fabric import FABRIC_JOB


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("scrape-config", help="generate Prometheus scrape config for the GPU nodes",
                                   description=__doc__.splitlines()[0].split(": ", 1)[-1])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--nodes", metavar="HOSTLIST", help="Slurm hostlist of the GPU nodes, e.g. 'gpu-[001-140]'")
    source.add_argument("--from-slurm", action="store_true", help="read the node list with `sinfo -N -h -o %%N`")
    parser.add_argument("--port", type=int, default=9835, help="the exporters' port")
    parser.add_argument("--server", metavar="HOST:PORT", help="the clusterwatch serve address to scrape too")
    parser.add_argument("--fabric", metavar="HOST:PORT", action="append", default=[],
                        help="a fabric collector (clusterwatch exporter --collectors fabric on a management host) "
                             "to scrape as job clusterwatch-fabric; repeat for several fabrics")
    parser.add_argument("--file-sd", metavar="FILE", default="/etc/prometheus/gpu-nodes.json",
                        help="where to write the targets (the printed config points at it)")
    parser.add_argument("--interval", default="15s", help="scrape interval of the GPU nodes")
    return parser


def node_names(args: argparse.Namespace) -> list[str]:
    from scheduler.hostlist import HostlistError, expand

    if args.from_slurm:
        try:
            output = subprocess.run(["sinfo", "-N", "-h", "-o", "%N"], capture_output=True, text=True, timeout=120,
                                    check=True).stdout
        except (OSError, subprocess.SubprocessError) as exc:
            raise ConfigError("--from-slurm", f"sinfo failed: {exc}") from None
        return sorted(set(output.split()))
    try:
        return expand(args.nodes)
    except HostlistError as exc:
        raise ConfigError("--nodes", str(exc)) from None


def scrape_configs(file_sd: str, interval: str, server: str | None, fabric: list[str] | None = None) -> dict:
    configs = [{
        "job_name": "gpu-nodes",
        "scrape_interval": interval,
        "file_sd_configs": [{"files": [file_sd]}],
    }]
    if server:
        # The server's slurm_node_* and slurm_job_gpu_info carry the node in `instance`: keep it.
        configs.append({"job_name": "clusterwatch", "honor_labels": True, "static_configs": [{"targets": [server]}]})
    if fabric:
        # instance = the management host (no port), as the fabric contract names it; a sweep takes up to a minute.
        configs.append({"job_name": FABRIC_JOB, "scrape_interval": "60s", "static_configs": [
            {"targets": [address], "labels": {"instance": address.rsplit(":", 1)[0]}} for address in fabric]})
    return {"scrape_configs": configs}


def run(args: argparse.Namespace) -> int:
    if not 0 < args.port < 65536:
        raise ConfigError("--port", "must be from 1 to 65535")
    for address in args.fabric:
        try:
            settings.host_port(address)
        except ValueError as exc:
            raise ConfigError("--fabric", str(exc)) from None
    names = node_names(args)
    if not names:
        raise ConfigError("--nodes", "no nodes")
    targets = [{"targets": [f"{name}:{args.port}"], "labels": {"instance": name}} for name in names]
    try:
        with open(args.file_sd, "w") as handle:
            json.dump(targets, handle, indent=1)
    except OSError as exc:
        raise ConfigError("--file-sd", f"cannot write: {exc.strerror}", args.file_sd) from None
    sys.stdout.write(yaml.safe_dump(scrape_configs(args.file_sd, args.interval, args.server, args.fabric),
                                    sort_keys=False))
    print(f"# {len(names)} GPU nodes written to {args.file_sd}", file=sys.stderr)
    return 0
