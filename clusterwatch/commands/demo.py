"""``clusterwatch demo``: the whole product on one machine, no GPU and no cluster needed.

Builds a simulated 140-node x 8-GPU cluster whose last hours have already happened: before
anything is served, ``--history`` (2 h) of simulated time is run fast with faults at an
illustrative rate, scraped, evaluated by the shipped rule pack and handed to the remediation
engine in dry-run (clusterwatch/demo_history.py), so that alerts (firing and resolved),
automation cases and interrupted-and-resumed jobs exist on first load. Then the cluster runs in
real time with the demo fault scenario, served by this process (every node's metrics and the
Slurm face), and the all-in-one server (``clusterwatch serve``, a child process) restores that
past and scrapes and polls the cluster from there on. Every page says it is a simulation and how
to let automation act. Ctrl-C (or SIGTERM) stops both.
"""
from __future__ import annotations

import argparse
import logging
import shutil
import signal
import subprocess
import sys
import threading
import time
from importlib import resources
from pathlib import Path

import yaml

from cwkernel import settings
from cwkernel.errors import ConfigError, UsageError

# What a past run left in --state-dir is another cluster's: removed before the new past is made.
STATE_FILES = ("alert-state.sqlite", "alerting.db", "remediation.db", "history.snapshot")
# Each simulated node's textfile directory, where its jobs write their checkpoint marks (the
# contract in docs/operations.md) and its exporter reads them: without marks the checkpoint step
# would have nothing to show, every job reading as one that ignores the contract.
TEXTFILES_DIR = "textfiles"
SQLITE_SUFFIXES = ("", "-wal", "-shm", "-journal")
STOP_TIMEOUT_S = 8.0  # the server's graceful stop, inside a test harness's 10 s


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("demo", help="run a simulated cluster and the server on this machine",
                                   description=__doc__.splitlines()[0].split(": ", 1)[-1])
    parser.add_argument("--listen", default="127.0.0.1:9464", metavar="HOST:PORT", help="the server's address")
    parser.add_argument("--simulator-listen", default="127.0.0.1:9900", metavar="HOST:PORT", help="the simulator's address")
    parser.add_argument("--nodes", type=int, default=140, help="simulated GPU nodes")
    parser.add_argument("--speed", type=float, default=1.0, help="simulated seconds per real second")
    parser.add_argument("--state-dir", default=".demo", help="where the file_sd, the server's state and logs go")
    parser.add_argument("--scrape-interval", default="5s", help="how often the server scrapes the simulated nodes")
    parser.add_argument("--history", default="2h", metavar="DURATION",
                        help="simulated past run before serving (0 for none); longer costs start-up time")
    parser.add_argument("--automation", choices=("dry-run", "auto", "off"), default="dry-run",
                        help="remediation mode: dry-run shows what it would do, auto acts on the simulated cluster")
    parser.add_argument("--seed", type=int, default=0, help="same seed, same cluster")
    return parser


def banner(nodes: int, automation: str, history_hours: float) -> str:
    """The line every page shows: what this is, and how to let automation act."""
    past = (f"the last {history_hours:g} h were simulated before the demo started (faults, alerts, "
            "automation decisions, interrupted jobs); " if history_hours else "")
    mode = {"dry-run": "Automation is in dry-run: it shows what it would do and does nothing. "
                       "To let it act, restart with: clusterwatch demo --automation auto",
            "auto": "Automation is on (auto): it drains, requeues and reboots simulated nodes.",
            "off": "Automation is off. To see what it would do: clusterwatch demo --automation dry-run; "
                   "to let it act: --automation auto"}[automation]
    return f"Demo: a simulated cluster of {nodes} nodes x 8 GPUs, no real hardware; {past}{mode}"


def _demo_scenario(state: Path, nodes: list[str]) -> Path:
    """The shipped demo scenario, less the faults aimed at nodes a smaller demo fleet lacks."""
    document = yaml.safe_load((resources.files("simulator") / "scenarios" / "demo.yml").read_text())
    document["faults"] = [fault for fault in document["faults"] if fault["node"] in set(nodes)]
    path = state / "scenario.yml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def _fresh_state(state: Path) -> None:
    for name in STATE_FILES:
        for suffix in SQLITE_SUFFIXES:
            (state / f"{name}{suffix}").unlink(missing_ok=True)
    from clusterwatch.demo_history import SNAPSHOT_FILE
    from scheduler.checkpoint import TEXTFILE_GLOB
    from tsdb.wal import wal_directory

    # An earlier run's store log would be replayed over this run's history.
    shutil.rmtree(wal_directory(state / SNAPSHOT_FILE), ignore_errors=True)

    # An earlier run's marks name its jobs. Only the demo's own files go: --state-dir is the user's.
    for mark in (state / TEXTFILES_DIR).glob(f"*/{TEXTFILE_GLOB}"):
        mark.unlink(missing_ok=True)


def _log_to(path: Path) -> None:
    """The simulator's and the past's logs (every fault, notification and exporter start) go to a
    file, as the simulator's own process did: the terminal keeps the URLs and the banner."""
    handler = logging.FileHandler(path, mode="w")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)


def _stop(child: subprocess.Popen) -> None:
    if child.poll() is None:
        child.terminate()
        try:
            child.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(5)


def run(args: argparse.Namespace) -> int:
    from clusterwatch.commands.simulate import write_file_sd
    from clusterwatch.demo_history import SNAPSHOT_FILE, run_history
    from exporter.server import parse_listen
    from simulator.fleet import Fleet
    from simulator.server import SimulatorHTTPServer

    if not 1 <= args.nodes <= 20_000:
        raise ConfigError("--nodes", "must be between 1 and 20000")
    try:
        history_s = 0.0 if str(args.history).strip() in ("0", "0s") else settings.duration(args.history)
    except ValueError as exc:
        raise ConfigError("--history", str(exc)) from None
    if history_s > 6 * 3600:
        raise ConfigError("--history", "must be at most 6h (the server keeps 6 h of samples)")
    started = time.monotonic()
    state = Path(args.state_dir)
    state.mkdir(parents=True, exist_ok=True)
    _fresh_state(state)
    _log_to(state / "simulator.log")
    fleet = Fleet(nodes=args.nodes, seed=args.seed, speed=0, start=time.time() - history_s,
                  textfile_root=str(state / TEXTFILES_DIR))
    try:
        server = SimulatorHTTPServer(parse_listen(settings.host_port(args.simulator_listen)), fleet)
    except OSError as exc:
        raise ConfigError("--simulator-listen", f"cannot listen on {args.simulator_listen}: {exc.strerror}") from None
    simulator_url = server.base_url
    server.start_in_thread()
    child, server_log = None, open(state / "server.log", "wb")
    try:
        if history_s:
            print(f"simulating the last {history_s / 3600:g} h of the cluster (faults, alerts, dry-run automation)...",
                  flush=True)
            past = run_history(fleet, f"{simulator_url}/slurm", state, history_s / 3600)
            print(f"  {len(past.faults)} faults, {len(past.alerts_fired)} kinds of alert fired, {past.cases} automation "
                  f"cases (dry-run), {len(past.jobs_interrupted)} job runs ended by a failure, "
                  f"{len(past.jobs_resumed)} requeued and resumed ({past.seconds:.0f} s)", flush=True)
        fleet.advance(max(0.0, time.time() - fleet.clock.now()))  # the time the past took to run
        fleet.clock.set_speed(args.speed)
        fleet.load_scenario(str(_demo_scenario(state, fleet.node_names())))
        fleet.start()
        file_sd = state / "fleet.json"
        fabric_file_sd = state / "fabric.json"  # the simulated fabric collector, job clusterwatch-fabric
        write_file_sd(str(file_sd), fleet.file_sd(simulator_url))
        write_file_sd(str(fabric_file_sd), fleet.fabric_file_sd(simulator_url))
        text = banner(args.nodes, args.automation, history_s / 3600)
        argv = [sys.executable, "-m", "clusterwatch", "serve", "--listen", args.listen, "--file-sd", str(file_sd),
                str(fabric_file_sd), "--scrape-interval", args.scrape_interval, "--scheduler", "simulator",
                "--scheduler-url", f"{simulator_url}/slurm", "--state-dir", str(state),
                "--automation", args.automation, "--banner", text]
        if history_s:
            argv += ["--snapshot", str(state / SNAPSHOT_FILE)]
        child = subprocess.Popen(argv, stdout=server_log, stderr=subprocess.STDOUT)
        print(f"simulated cluster: {args.nodes} nodes x 8 GPUs at {simulator_url} (ground truth: "
              f"{simulator_url}/api/fleet; log {state / 'simulator.log'})", flush=True)
        print(f"ClusterWatch: http://{args.listen}/  (Prometheus API: http://{args.listen}/api/v1, "
              f"e.g. /api/v1/query?query=avg(gpu_utilization_ratio); point Grafana's Prometheus data source here; "
              f"log {state / 'server.log'}; ready {time.monotonic() - started:.0f} s after start, "
              f"give the server a few more)", flush=True)
        print(text, flush=True)
        return _wait(child)
    finally:
        if child is not None:
            _stop(child)
        server.shutdown()
        fleet.stop()
        server_log.close()


def _wait(child: subprocess.Popen) -> int:
    """Until the server exits, SIGTERM or Ctrl-C; the server's status, 0 when we stopped it."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            if child.poll() is not None:
                raise UsageError(f"the server exited with status {child.returncode}; see its log")
    except KeyboardInterrupt:
        pass
    return 0
