"""``clusterwatch simulate``: a whole simulated GPU cluster, or a Slurm client for one.

    clusterwatch simulate --nodes 140 --listen 127.0.0.1:9900 --file-sd fleet.json [--speed 60] [--seed 1]
    clusterwatch simulate slurm --url http://127.0.0.1:9900 squeue --json
    clusterwatch simulate slurm --url http://127.0.0.1:9900 scontrol update NodeName=gpu-007 State=DRAIN Reason=xid79
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import httpx

from cwkernel import settings
from cwkernel.errors import ConfigError, UsageError
from cwkernel.lifecycle import run_until_stopped

URL_ENV = "CLUSTERWATCH_SIMULATOR_URL"
SLURM_VERBS = ("squeue", "sinfo", "scontrol", "scancel")


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("simulate", help="run a simulated GPU cluster", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=140, help="simulated GPU nodes (1 to 20000)")
    parser.add_argument("--gpus-per-node", type=int, default=8, help="GPUs per node (H100 80GB class)")
    parser.add_argument("--ib-ports", type=int, default=4, help="InfiniBand ports per node (mlx5_0...)")
    parser.add_argument("--scenario", metavar="FILE", help="YAML faults schedule: faults: [{at: 10m, kind: xid, ...}]")
    parser.add_argument("--listen", default="127.0.0.1:9900", metavar="HOST:PORT", help="where to serve every node's metrics and the APIs")
    parser.add_argument("--seed", type=int, default=0, help="same seed, same cluster")
    parser.add_argument("--speed", type=float, default=1.0, help="simulated seconds per real second (0 freezes time)")
    parser.add_argument("--file-sd", metavar="FILE", help="write Prometheus file_sd targets for the fleet here")
    parser.add_argument("--fabric-file-sd", metavar="FILE", help="write the file_sd target of the simulated fabric "
                        "collector here (job clusterwatch-fabric, /fabric/metrics)")
    nested = parser.add_subparsers(dest="simulate_command", metavar="slurm")
    slurm = nested.add_parser("slurm", help="squeue/sinfo/scontrol/scancel against a running simulator")
    slurm.add_argument("--url", default=os.environ.get(URL_ENV), help=f"simulator URL (env {URL_ENV})")
    slurm.add_argument("--user", default=os.environ.get("USER", "root"), help="who scontrol acts as")
    slurm.add_argument("verb", choices=SLURM_VERBS)
    slurm.add_argument("args", nargs=argparse.REMAINDER)
    return parser


def run(args: argparse.Namespace) -> int:
    if args.simulate_command == "slurm":
        return run_slurm(args)
    return run_fleet(args)


def run_slurm(args: argparse.Namespace) -> int:
    if not args.url:
        raise UsageError(f"--url (or {URL_ENV}) is required: where the simulator listens")
    base = args.url.rstrip("/")
    try:
        with httpx.Client(timeout=30) as client:
            response = client.post(f"{base}/slurm/{args.verb}", json={"args": args.args, "user": args.user})
            response.raise_for_status()
    except httpx.HTTPError as exc:
        print(f"{args.verb}: cannot reach the simulator at {base}: {exc}", file=sys.stderr)
        return 1
    result = response.json()
    sys.stdout.write(result["stdout"])
    sys.stderr.write(result["stderr"])
    return int(result["returncode"])


def write_file_sd(path: str, targets: list[dict]) -> None:
    """Atomically, so a Prometheus watching the file never reads half of it."""
    directory = os.path.dirname(os.path.abspath(path))
    with tempfile.NamedTemporaryFile("w", dir=directory, delete=False, suffix=".tmp") as handle:
        json.dump(targets, handle, indent=1)
    os.replace(handle.name, path)


def run_fleet(args: argparse.Namespace) -> int:
    from exporter.server import parse_listen
    from simulator.fleet import Fleet
    from simulator.server import SimulatorHTTPServer

    if not 1 <= args.nodes <= 20_000:
        raise ConfigError("--nodes", "must be between 1 and 20000")
    if args.speed < 0:
        raise ConfigError("--speed", "must be >= 0")
    listen = settings.host_port(args.listen) if ":" in args.listen else None
    if listen is None:
        raise ConfigError("--listen", "must be HOST:PORT")
    fleet = Fleet(nodes=args.nodes, gpus_per_node=args.gpus_per_node, seed=args.seed, speed=args.speed,
                  ib_ports=args.ib_ports)
    if args.scenario:
        fleet.load_scenario(args.scenario)
    try:
        server = SimulatorHTTPServer(parse_listen(listen), fleet)
    except OSError as exc:
        raise ConfigError("--listen", f"cannot listen on {listen}: {exc.strerror}") from None
    if args.file_sd:
        write_file_sd(args.file_sd, fleet.file_sd(server.base_url))
    if args.fabric_file_sd:
        write_file_sd(args.fabric_file_sd, fleet.fabric_file_sd(server.base_url))
    fleet.start()
    server.start_in_thread()
    print(f"clusterwatch simulator: {args.nodes} nodes x {args.gpus_per_node} GPUs at {server.base_url} "
          f"(speed {args.speed:g}, seed {args.seed})" + (f", file_sd {Path(args.file_sd).resolve()}" if args.file_sd else ""),
          flush=True)
    run_until_stopped(server.shutdown, fleet.stop)
    return 0
