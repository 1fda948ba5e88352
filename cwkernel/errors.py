"""Errors shared by every command: what the user got wrong, said so they can fix it."""
from __future__ import annotations


class UsageError(Exception):
    """Bad flags or configuration; the CLI prints it and exits with status 2."""


class ConfigError(UsageError):
    """A configuration value is wrong: names the field and, where there is one, the file."""

    def __init__(self, field: str, message: str, source: str | None = None) -> None:
        self.field = field
        self.source = source
        where = f" (from {source})" if source else ""
        super().__init__(f"{field}: {message}{where}")
