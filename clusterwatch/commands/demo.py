"""``clusterwatch demo``: a local demonstration that needs no GPU and no cluster.

Today it runs the node exporter over the fake NVML backend (8 simulated H100 GPUs) and this
machine's own procfs/sysfs, and prints the URL to open. Later components (simulated fleet,
all-in-one server) extend it.
"""
from __future__ import annotations

import argparse

from clusterwatch.commands import exporter as exporter_command


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("demo", help="run a local demonstration on fake GPUs")
    parser.add_argument("--listen", default="127.0.0.1:9835", metavar="HOST:PORT")
    return parser


def run(args: argparse.Namespace) -> int:
    exporter_args = exporter_command.add_parser(argparse.ArgumentParser().add_subparsers()).parse_args(
        ["--backend", "fake", "--listen", args.listen]
    )
    return exporter_command.run(exporter_args)
