"""Settings from defaults, a YAML file, environment variables and flags, in that order of precedence.

A command declares its settings once as ``Option``s; from that one list come the argparse flags,
the environment variable names, the YAML keys and the configuration reference in the docs, so
none of them can drift from the others. Every bad value is a ``ConfigError`` naming the option and
where it came from (the file, the variable or the flag), and the CLI turns it into exit status 2.
"""
from __future__ import annotations

import argparse
import os
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence
from urllib.parse import urlsplit

from cwkernel.durations import parse_duration
from cwkernel.errors import ConfigError, read_yaml


@dataclass(frozen=True)
class Option:
    """One setting: ``name`` is the YAML key and the attribute; flag and env derive from it."""

    name: str
    default: Any
    help: str
    parse: Callable[[Any], Any] = str
    metavar: str | None = None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def env(self, prefix: str) -> str:
        return f"{prefix}{self.name.upper()}"


# Parsers: each takes the raw value (a string from a flag or env var, or any YAML value) and
# returns the typed value or raises ValueError with a message for the user.


def duration(raw: Any) -> float:
    seconds = parse_duration(raw)
    if seconds <= 0:
        raise ValueError("must be greater than zero")
    return seconds


def positive_int(raw: Any) -> int:
    value = _whole_number(raw)
    if value < 1:
        raise ValueError(f"must be at least 1 (got {value})")
    return value


def limit(raw: Any) -> int:
    """A limit where 0 means none (Prometheus's convention for its scrape limits)."""
    value = _whole_number(raw)
    if value < 0:
        raise ValueError(f"must be 0 (no limit) or more (got {value})")
    return value


_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(B|[KMGTP]i?B?)?\s*")
_SIZE_UNITS = {"": 1, "B": 1, **{f"{p}{suffix}": 1024 ** (i + 1) for i, p in enumerate("KMGTP")
                                 for suffix in ("", "B", "i", "iB")}}


def byte_size(raw: Any) -> int:
    """Bytes from ``1048576``, ``512MiB``, ``4Gi`` or ``2GB`` (as Prometheus reads sizes, a KB is
    1,024 bytes); 0 means unset."""
    found = _SIZE.fullmatch(str(raw))
    if found is None:
        raise ValueError(f"must be a size such as 4GiB, 512MiB or a number of bytes (got {raw!r})")
    return int(float(found.group(1)) * _SIZE_UNITS[found.group(2) or ""])


def _whole_number(raw: Any) -> int:
    try:
        return int(str(raw))
    except ValueError:
        raise ValueError(f"must be a whole number (got {raw!r})") from None


def http_url(raw: Any) -> str | None:
    """An http(s) URL with a host, or None when unset."""
    if raw in (None, ""):
        return None
    url = urlsplit(str(raw))
    if url.scheme not in ("http", "https") or not url.hostname:
        raise ValueError(f"must be an http:// or https:// URL with a host (got {str(raw)[:80]!r})")
    return str(raw)


def optional_path(raw: Any) -> str | None:
    return None if raw in (None, "") else str(raw)


def string_list(raw: Any) -> list[str]:
    if isinstance(raw, str):
        return [item.strip() for item in raw.split(",") if item.strip()]
    if isinstance(raw, (list, tuple)) and all(isinstance(item, str) for item in raw):
        return list(raw)
    raise ValueError("must be a list of strings or a comma-separated string")


def optional_string_list(raw: Any) -> list[str] | None:
    return None if raw in (None, "", []) else string_list(raw)


def choice(*allowed: str) -> Callable[[Any], str]:
    def parse(raw: Any) -> str:
        if raw not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)} (got {raw!r})")
        return str(raw)

    parse.__name__ = f"one of {'|'.join(allowed)}"
    return parse


def host_port(raw: Any) -> str:
    host, sep, port = str(raw).rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"must be HOST:PORT with a port from 1 to 65535 (got {raw!r})")
    return f"{host or '0.0.0.0'}:{port}"


def add_flags(parser: argparse.ArgumentParser, options: Iterable[Option], env_prefix: str) -> None:
    """One flag per option; defaults stay None so that unset flags do not hide file or env values."""
    parser.add_argument("--config", metavar="FILE", help="YAML file with any of the settings below")
    for option in options:
        parser.add_argument(
            option.flag, dest=option.name, default=None, metavar=option.metavar,
            # argparse reads help as a %-format: a literal % in an option's text must not be one.
            help=f"{option.help} ({_default_text(option)}env {option.env(env_prefix)})".replace("%", "%%"),
        )


def _default_text(option: Option) -> str:
    return "" if option.default is None else f"default {option.default}; "


def resolve(
    options: Sequence[Option],
    *,
    config_file: str | None,
    flags: Mapping[str, Any],
    environ: Mapping[str, str] | None = None,
    env_prefix: str,
) -> dict[str, Any]:
    """The value of every option: flag, else env var, else config file, else default."""
    environ = os.environ if environ is None else environ
    file_values = _read_file(config_file, {option.name for option in options})
    values: dict[str, Any] = {}
    for option in options:
        raw, source = option.default, None
        if option.name in file_values:
            raw, source = file_values[option.name], config_file
        if option.env(env_prefix) in environ:
            raw, source = environ[option.env(env_prefix)], f"environment variable {option.env(env_prefix)}"
        if flags.get(option.name) is not None:
            raw, source = flags[option.name], f"flag {option.flag}"
        values[option.name] = raw if source is None else _parse(option, raw, source)
    return values


def _parse(option: Option, raw: Any, source: str | None) -> Any:
    try:
        return option.parse(raw)
    except (ValueError, TypeError) as exc:
        raise ConfigError(option.name, str(exc), source) from None


def _read_file(path: str | None, known: set[str]) -> dict[str, Any]:
    if not path:
        return {}
    data = read_yaml(path, "--config")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError("--config", "must be a mapping of setting names to values", path)
    values = {str(key).replace("-", "_"): value for key, value in data.items()}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(unknown[0], f"unknown setting (known: {', '.join(sorted(known))})", path)
    return values
