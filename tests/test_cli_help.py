"""Every command's ``--help`` prints: argparse reads a help text as a %-format, so a setting whose
help said "85 %" made ``clusterwatch serve --help`` end in a TypeError (session 14, caught by a
deploy test that reads the help for the environment variables it names)."""
from __future__ import annotations

import argparse

import pytest

from clusterwatch.cli import build_parser


def commands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    [subparsers] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(subparsers.choices)


def test_the_top_level_help_prints() -> None:
    assert "serve" in build_parser().format_help()


@pytest.mark.parametrize("name", sorted(commands()))
def test_every_commands_help_prints(name: str) -> None:
    text = commands()[name].format_help()
    assert text.startswith("usage: ")
