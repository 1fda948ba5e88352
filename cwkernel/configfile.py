"""Reading the files an operator writes for ClusterWatch (settings, rule files, the alerting
configuration, the remediation policy, scenarios, the fabric plan), all the same bounded way.

A file is read as ``cwkernel.boundedread`` reads: a regular file of at most ``MAX_CONFIG_BYTES``
(a path to /dev/zero, or to a log by mistake, must not take the memory); it must be UTF-8, and
is parsed as YAML within the parser's depth (a document nested 20,000 deep exhausts the
recursion of PyYAML's constructor). What is
wrong comes back as ``UnreadableConfig``, a reason without the path; each caller names its file
and field with it in its own error, as it does for every other mistake in the file.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from cwkernel.boundedread import FileRefused, read_regular_file, utf8

# The largest shipped file is about 100 kB (the rule pack's); a fabric plan of 10,000 cables 2 MB.
MAX_CONFIG_BYTES = 16 << 20


class UnreadableConfig(ValueError):
    """The file cannot be used at all; the message says why, without the file's name."""


def read_text(path: str | Path, max_bytes: int = MAX_CONFIG_BYTES) -> str:
    """The file's text; ``UnreadableConfig`` when it cannot be read, is not a regular file (a named
    pipe is not waited on), passes ``max_bytes`` or is not UTF-8."""
    try:
        return utf8(read_regular_file(path, max_bytes)[1])
    except OSError as exc:
        raise UnreadableConfig(f"cannot read: {exc.strerror or exc}") from None
    except FileRefused as exc:
        raise UnreadableConfig(str(exc)) from None


def parse_yaml(text: str) -> Any:
    """The YAML document in ``text`` (None when empty); ``UnreadableConfig`` when it is not YAML."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise UnreadableConfig(f"not valid YAML: {exc}") from None
    except RecursionError:
        raise UnreadableConfig("nested too deeply to be a configuration file") from None


def load_yaml(path: str | Path, max_bytes: int = MAX_CONFIG_BYTES) -> Any:
    """``parse_yaml(read_text(path))``."""
    return parse_yaml(read_text(path, max_bytes))
