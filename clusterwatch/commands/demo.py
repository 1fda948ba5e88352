"""``clusterwatch demo``: the whole product on one machine, no GPU and no cluster needed.

Starts a simulated 140-node x 8-GPU cluster (``clusterwatch simulate`` in a child process, with
the demo fault scenario) and the all-in-one server (``clusterwatch serve``) scraping it through
the simulator's file_sd and polling its Slurm face, then prints the URLs to open. Ctrl-C stops
both.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
import urllib.request
from importlib import resources
from pathlib import Path

import yaml

from cwkernel.errors import UsageError


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("demo", help="run a simulated cluster and the server on this machine",
                                   description=__doc__.splitlines()[0].split(": ", 1)[-1])
    parser.add_argument("--listen", default="127.0.0.1:9464", metavar="HOST:PORT", help="the server's address")
    parser.add_argument("--simulator-listen", default="127.0.0.1:9900", metavar="HOST:PORT", help="the simulator's address")
    parser.add_argument("--nodes", type=int, default=140, help="simulated GPU nodes")
    parser.add_argument("--speed", type=float, default=1.0, help="simulated seconds per real second")
    parser.add_argument("--state-dir", default=".demo", help="where the file_sd and logs go")
    parser.add_argument("--scrape-interval", default="5s", help="how often the server scrapes the simulated nodes")
    return parser


def _wait(url: str, child: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise UsageError(f"the simulator exited with status {child.returncode}; see its log")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise UsageError(f"the simulator did not answer at {url} within {timeout:.0f}s")


def _demo_scenario(state: Path, nodes: int) -> Path:
    """The shipped demo scenario, less the faults aimed at nodes a smaller demo fleet lacks."""
    from simulator.topology import build_topology

    names = {spec.name for spec in build_topology(nodes)}
    document = yaml.safe_load((resources.files("simulator") / "scenarios" / "demo.yml").read_text())
    document["faults"] = [fault for fault in document["faults"] if fault["node"] in names]
    path = state / "scenario.yml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def run(args: argparse.Namespace) -> int:
    from clusterwatch.cli import build_parser
    from clusterwatch.commands import serve

    state = Path(args.state_dir)
    state.mkdir(parents=True, exist_ok=True)
    file_sd = state / "fleet.json"
    fabric_file_sd = state / "fabric.json"  # the simulated fabric collector, job clusterwatch-fabric
    scenario = _demo_scenario(state, args.nodes)
    simulator_log = open(state / "simulator.log", "wb")
    simulator = subprocess.Popen(
        [sys.executable, "-m", "clusterwatch", "simulate", "--nodes", str(args.nodes), "--listen",
         args.simulator_listen, "--file-sd", str(file_sd), "--fabric-file-sd", str(fabric_file_sd), "--speed",
         str(args.speed), "--scenario", str(scenario)],
        stdout=simulator_log, stderr=subprocess.STDOUT)
    try:
        simulator_url = f"http://{args.simulator_listen}"
        _wait(f"{simulator_url}/-/healthy", simulator)
        serve_args = build_parser().parse_args([
            "serve", "--listen", args.listen, "--file-sd", str(file_sd), str(fabric_file_sd),
            "--scrape-interval", args.scrape_interval,
            "--scheduler", "simulator", "--scheduler-url", f"{simulator_url}/slurm",
        ])
        print(f"simulated cluster: {args.nodes} nodes x 8 GPUs at {simulator_url} (ground truth: {simulator_url}/api/fleet;"
              f" log {state / 'simulator.log'})", flush=True)
        print(f"ClusterWatch: http://{args.listen}/  (Prometheus API: http://{args.listen}/api/v1, "
              f"e.g. /api/v1/query?query=avg(gpu_utilization_ratio); point Grafana's Prometheus data source here)",
              flush=True)
        return serve.run(serve_args)
    finally:
        simulator.terminate()
        try:
            simulator.wait(30)
        except subprocess.TimeoutExpired:
            simulator.kill()
        simulator_log.close()
