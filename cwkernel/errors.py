"""Errors shared by every command: what the user got wrong, said so they can fix it."""
from __future__ import annotations

from cwkernel import configfile


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
        return configfile.load_yaml(path)
    except configfile.UnreadableConfig as exc:
        raise error(field, str(exc), path) from None
