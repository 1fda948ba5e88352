"""Generates docs/configuration.md: every command's options, defaults and environment variables,
read from the argument parsers themselves so the reference cannot drift from the code.

    python -m clusterwatch.configdoc > docs/configuration.md
    python -m clusterwatch.configdoc --check docs/configuration.md   # tests run this
"""
from __future__ import annotations

import argparse
import importlib
import sys

from clusterwatch import docgen
from clusterwatch.cli import COMMANDS, build_parser
from cwkernel import settings
from cwkernel.durations import format_duration

INTRO = """\
# Configuration reference

Generated from the command-line parsers (`python -m clusterwatch.configdoc >
docs/configuration.md`; a test fails when this file is stale). For the commands built on
`cwkernel.settings` (exporter, serve), every option is also a key of the YAML file given with
`--config` (the option name with `_`, e.g. `scrape_interval: 15s`) and an environment variable;
precedence is flag, then environment, then file, then default. Durations take Prometheus's
spelling (`500ms`, `15s`, `5m`, `6h`).
"""


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:  # argparse offers no public accessor for sub-commands
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _default(action: argparse.Action, options: dict[str, object]) -> str:
    option = options.get(action.dest)
    value = option.default if option is not None else action.default
    if value in (None, [], argparse.SUPPRESS):
        return "-"
    if option is not None and option.parse is settings.duration and isinstance(value, (int, float)):
        value = format_duration(float(value))
    return f"`{value}`"


def render() -> str:
    lines = [INTRO]
    commands = _subparsers(build_parser())
    for name in COMMANDS:
        cli_name = name.replace("_", "-")
        parser = commands.get(cli_name)
        if parser is None:
            continue
        module = importlib.import_module(f"clusterwatch.commands.{name}")
        prefix = getattr(module, "ENV_PREFIX", None)
        options = {o.name: o for o in (*getattr(module, "OPTIONS", ()), *getattr(module, "LIST_OPTIONS", ()))}
        lines += [f"## `clusterwatch {cli_name}`", "", (parser.description or "").strip(), ""]
        header = "| flag | default | environment variable | description |" if prefix else "| flag | default | description |"
        lines += [header, "|---|---|---|---|" if prefix else "|---|---|---|"]
        for action in parser._actions:
            if not action.option_strings or action.dest in ("help",):
                continue
            flag = ", ".join(f"`{s}`" for s in action.option_strings)
            text = (action.help or "").split(" (default")[0].split(" (env ")[0].replace("|", "\\|")
            cells = [flag, _default(action, options)]
            if prefix:
                cells.append(f"`{prefix}{action.dest.upper()}`" if action.dest in options else "-")
            cells.append(text)
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    return docgen.main("clusterwatch.configdoc", __doc__.splitlines()[0], render, argv)


if __name__ == "__main__":
    sys.exit(main())
