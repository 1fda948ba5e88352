"""The envelope every Slurm JSON answer shares: ``meta`` (versions) and ``errors``."""
from __future__ import annotations

import json
from typing import Any

from scheduler.errors import SchedulerError
from scheduler.fields import dig, first, text
from scheduler.model import SourceInfo


class SlurmResponseError(SchedulerError):
    """Slurm answered, but with errors or with something that is not its JSON."""


def load_document(raw: str | bytes | dict, what: str) -> dict:
    """Decode one answer and raise on Slurm-reported errors (a poll with errors is not data)."""
    if isinstance(raw, dict):
        document: Any = raw
    else:
        try:
            document = json.loads(raw)
        except ValueError as exc:
            preview = (raw[:200] if isinstance(raw, str) else raw[:200].decode("utf-8", "replace"))
            raise SlurmResponseError(f"{what}: not JSON ({exc}): {preview!r}") from exc
        except RecursionError:
            raise SlurmResponseError(f"{what}: nested too deeply to be Slurm's JSON") from None
    if not isinstance(document, dict):
        raise SlurmResponseError(f"{what}: expected a JSON object, got {type(document).__name__}")
    errors = document.get("errors") or []
    if errors:
        raise SlurmResponseError(f"{what}: {describe_errors(errors)}")
    return document


def describe_errors(errors: list) -> str:
    messages = []
    for error in errors:
        if isinstance(error, dict):
            messages.append(
                text(first(error, "description", "error")) or text(error.get("error_number"))
            )
        else:
            messages.append(text(error))
    return "; ".join(message for message in messages if message) or "unspecified error"


def source_info(document: dict, backend: str) -> SourceInfo:
    """Slurm release and data parser version, wherever this release put them."""
    meta = document.get("meta") or {}
    # 22.05 writes meta.Slurm and the version in plugin.type ("openapi/v0.0.38"); 23.02+ writes
    # meta.slurm and a separate plugin.data_parser ("data_parser/v0.0.40").
    slurm = first(meta, "slurm", "Slurm") or {}
    release = text(dig(slurm, "release"))
    if not release:
        version = dig(slurm, "version") or {}
        if isinstance(version, dict) and "major" in version:
            release = ".".join(text(version.get(key)) for key in ("major", "minor", "micro"))
    plugin = meta.get("plugin") or {}
    parser = text(plugin.get("data_parser")) or text(plugin.get("type"))
    return SourceInfo(backend=backend, release=release, data_parser=parser.rpartition("/")[2])
