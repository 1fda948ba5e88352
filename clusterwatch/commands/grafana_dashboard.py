"""``clusterwatch grafana-dashboard``: write Grafana dashboard JSON (cluster, job, node views)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from cwkernel.errors import ConfigError


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("grafana-dashboard", help="write Grafana dashboards for the ClusterWatch metrics",
                                   description=__doc__.splitlines()[0].split(": ", 1)[-1])
    parser.add_argument("--out", default="grafana", metavar="DIR", help="directory to write one JSON file per dashboard into")
    return parser


def run(args: argparse.Namespace) -> int:
    from clusterwatch.grafana import DASHBOARDS, dashboard

    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        for uid in DASHBOARDS:
            path = out / f"{uid}.json"
            path.write_text(json.dumps(dashboard(uid), indent=2) + "\n")
            print(path)
    except OSError as exc:
        raise ConfigError("--out", f"cannot write: {exc.strerror}", str(out)) from None
    return 0
