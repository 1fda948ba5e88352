"""``clusterwatch`` console script: one sub-command per module in ``clusterwatch.commands``.

Each command module exposes ``add_parser(subparsers)`` and ``run(args) -> int``. Usage errors
(bad flags, bad config values) exit with status 2 and a message naming the option, like argparse.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import Sequence

from cwkernel.errors import UsageError
from cwkernel.version import __version__

# Module names under clusterwatch.commands, in the order `clusterwatch --help` lists them.
COMMANDS = ("exporter", "simulate", "serve", "demo", "rules", "grafana_dashboard", "scrape_config", "report")


def _command_modules(names: Sequence[str] = COMMANDS) -> list:
    modules = []
    for name in names:
        try:
            modules.append(importlib.import_module(f"clusterwatch.commands.{name}"))
        except ModuleNotFoundError as exc:
            if exc.name != f"clusterwatch.commands.{name}":
                raise  # a real import error inside an existing command
    return modules


def named_command(argv: Sequence[str]) -> str | None:
    """The command module ``argv`` names, if it names one: only that module is imported then, so
    that ``clusterwatch exporter`` on a GPU node does not load the server's libraries (FastAPI, the
    PromQL engine, numpy: tens of MB of resident memory) to build a parser it does not use."""
    words = iter(argv)
    for word in words:
        if word == "--log-level":
            next(words, None)
        elif not word.startswith("-"):
            name = word.replace("-", "_")
            return name if name in COMMANDS else None
    return None


def build_parser(commands: Sequence[str] = COMMANDS) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="clusterwatch", description="GPU cluster monitoring and operations automation")
    parser.add_argument("--version", action="version", version=f"clusterwatch {__version__}")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for module in _command_modules(commands):
        sub = module.add_parser(subparsers)
        sub.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    named = named_command(argv)
    parser = build_parser((named,) if named else COMMANDS)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # Client libraries log every request at INFO; that is noise in a command's output.
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
    try:
        return int(args._run(args) or 0)
    except UsageError as exc:
        print(f"clusterwatch {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
