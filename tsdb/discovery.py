"""Scrape targets from static addresses and Prometheus file_sd files (JSON or YAML).

A target's final labels come out as Prometheus derives them without relabel rules: ``job``,
``instance`` (the target's own ``instance`` label if it has one, else ``__address__``), its
other labels, and no ``__``-prefixed ones; ``__metrics_path__``, ``__scheme__`` and
``__param_*`` shape the URL. A file that fails to read keeps its last good targets.
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable
from urllib.parse import urlencode

import yaml

log = logging.getLogger(__name__)


class DiscoveryError(ValueError):
    """A file_sd file is not a list of {targets, labels} groups."""


@dataclass(frozen=True)
class Target:
    url: str
    labels: tuple[tuple[str, str], ...]  # final target labels, sorted (job, instance, ...)
    discovered: tuple[tuple[str, str], ...]  # labels before the __ ones were dropped

    @property
    def key(self) -> str:
        """Identity of the target: a changed URL or label set is a new target, as in Prometheus."""
        return self.url + "|" + ",".join(f"{k}={v}" for k, v in self.labels)

    @property
    def instance(self) -> str:
        return dict(self.labels).get("instance", "")


def make_target(address: str, labels: dict[str, str], job: str) -> Target:
    raw = {"job": job, "__address__": address, "__metrics_path__": "/metrics", "__scheme__": "http", **labels}
    address = raw["__address__"]
    path = raw["__metrics_path__"] or "/metrics"
    if not path.startswith("/"):
        path = "/" + path
    params = {k[len("__param_"):]: v for k, v in raw.items() if k.startswith("__param_")}
    url = f"{raw['__scheme__']}://{address}{path}" + (f"?{urlencode(params)}" if params else "")
    final = {k: v for k, v in raw.items() if not k.startswith("__") and v != ""}
    final.setdefault("instance", address)
    return Target(url, tuple(sorted(final.items())), tuple(sorted(raw.items())))


def static_targets(addresses: Iterable[str], job: str) -> list[Target]:
    return [make_target(address, {}, job) for address in addresses]


def parse_file_sd(text: str, job: str, source: str = "file_sd") -> list[Target]:
    """Targets of one file_sd document (JSON, or YAML, which is a superset)."""
    try:
        groups: Any = json.loads(text) if text.lstrip().startswith("[") else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise DiscoveryError(f"{source}: cannot parse: {exc}") from None
    if groups is None:
        return []
    if not isinstance(groups, list):
        raise DiscoveryError(f"{source}: must be a list of target groups")
    targets = []
    for number, group in enumerate(groups):
        if not isinstance(group, dict) or not isinstance(group.get("targets", []), list):
            raise DiscoveryError(f"{source}: group {number} must be an object with a 'targets' list")
        labels = group.get("labels") or {}
        if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
            raise DiscoveryError(f"{source}: group {number}: 'labels' must map names to strings")
        targets.extend(make_target(str(address), labels, job) for address in group.get("targets", []))
    return targets


class FileSD:
    """file_sd files re-read when their modification time or size changes."""

    def __init__(self, paths: Iterable[str], job: str) -> None:
        self.job = job
        self._files: dict[str, tuple[tuple[float, int] | None, list[Target]]] = {p: (None, []) for p in paths}
        self.errors: dict[str, str] = {}

    def targets(self) -> list[Target]:
        out: list[Target] = []
        for path in list(self._files):
            out.extend(self._read(path))
        return out

    def _read(self, path: str) -> list[Target]:
        stamp, targets = self._files[path]
        try:
            stat = os.stat(path)
        except OSError as exc:
            self.errors[path] = f"cannot read {path}: {exc.strerror}"
            return targets
        current = (stat.st_mtime, stat.st_size)
        if current == stamp:
            return targets
        try:
            targets = parse_file_sd(Path(path).read_text(), self.job, path)
            self.errors.pop(path, None)
        except (OSError, DiscoveryError) as exc:
            self.errors[path] = str(exc)
            log.warning("file_sd %s: %s (keeping %d previous targets)", path, exc, len(targets))
        self._files[path] = (current, targets)
        return targets
