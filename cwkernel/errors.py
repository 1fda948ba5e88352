"""Errors shared by every command: what the user got wrong, said so they can fix it."""
from __future__ import annotations

from pathlib import Path

import yaml


class UsageError(Exception):
    """Bad flags or configuration; the CLI prints it and exits with status 2."""


class ConfigError(UsageError):
    """A configuration value is wrong: names the field and, where there is one, the file."""

    def __init__(self, field: str, message: str, source: str | None = None) -> None:
        self.field = field
        self.source = source
        where = f" (from {source})" if source else ""
        super().__init__(f"{field}: {message}{where}")


def read_yaml(path: str, field: str, error: type[ConfigError] = ConfigError) -> object:
    """A YAML file's document; a file that cannot be read or parsed is ``error`` naming ``field``
    and the file, so every configuration file fails the same way."""
    try:
        return yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise error(field, f"cannot read: {exc.strerror}", path) from None
    except yaml.YAMLError as exc:
        raise error(field, f"not valid YAML: {exc}", path) from None
