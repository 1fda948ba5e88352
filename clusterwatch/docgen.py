"""The command line shared by the generated documents (docs/metrics.md, docs/configuration.md)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable


def main(module: str, description: str, render: Callable[[], str], argv: list[str] | None = None) -> int:
    """Print the document, or with ``--check FILE`` exit 1 when FILE is not what would be printed."""
    parser = argparse.ArgumentParser(prog=f"python -m {module}", description=description)
    parser.add_argument("--check", metavar="FILE", help="exit 1 if FILE differs from what would be generated")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if Path(args.check).read_text() != text:
            print(f"{args.check} is stale: run python -m {module} > {args.check}", file=sys.stderr)
            return 1
        return 0
    sys.stdout.write(text)
    return 0
