"""Scrape targets from static addresses and Prometheus file_sd files (JSON or YAML).

A target's final labels come out as Prometheus derives them without relabel rules: ``job``,
``instance`` (the target's own ``instance`` label if it has one, else ``__address__``), its
other labels, and no ``__``-prefixed ones; ``__metrics_path__``, ``__scheme__`` and
``__param_*`` shape the URL. A file that fails to read keeps its last good targets.

The files are written by other tools (a CMDB export, the scheduler's node list), so a read is
bounded: a regular file of at most ``MAX_FILE_SD_BYTES``, opened without waiting for a writer,
naming at most ``MAX_FILE_SD_TARGETS`` targets once YAML's aliases are expanded, nested no deeper
than the parser's stack. ``Discovery`` runs the reads on a thread of their own, so that a slow
parse or a file on a hung mount holds up the next target list, never a scrape.
"""
from __future__ import annotations

import json
import logging
import os
import re
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterable
from urllib.parse import urlencode

import yaml

from cwkernel.boundedread import FileRefused, read_regular_file, utf8

log = logging.getLogger(__name__)

MAX_FILE_SD_BYTES = 16 * 2**20  # 16,384 nodes with a few labels each are 1-2 MB
MAX_FILE_SD_TARGETS = 100_000  # per file; after YAML aliases, which may name one list many times
MAX_FILE_SD_LABELS = 32 * MAX_FILE_SD_TARGETS  # target x label pairs, after aliases
REFRESH_S = 1.0  # how often Discovery stats the files (a changed one is re-read)
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
# libyaml when PyYAML was built with it: the same documents, three times faster (a 16,384-node
# file: 1.6 s against 4.7 s).
YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


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


def read_file_sd(path: str) -> str:
    """The file's text, refused (``OSError``, ``DiscoveryError``) unless it is a regular file
    within ``MAX_FILE_SD_BYTES``; a named pipe is not waited on."""
    try:
        return utf8(read_regular_file(path, MAX_FILE_SD_BYTES)[1])
    except FileRefused as exc:
        raise DiscoveryError(f"{path}: {exc}") from None


def parse_file_sd(text: str, job: str, source: str = "file_sd") -> list[Target]:
    """Targets of one file_sd document (JSON, or YAML, which is a superset)."""
    try:
        groups: Any = json.loads(text) if text.lstrip().startswith("[") else yaml.load(text, Loader=YAML_LOADER)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise DiscoveryError(f"{source}: cannot parse: {exc}") from None
    except RecursionError:
        raise DiscoveryError(f"{source}: nested too deeply to be a list of target groups") from None
    if groups is None:
        return []
    if not isinstance(groups, list):
        raise DiscoveryError(f"{source}: must be a list of target groups")
    if len(groups) > MAX_FILE_SD_TARGETS:
        raise DiscoveryError(f"{source}: has more than {MAX_FILE_SD_TARGETS:,} target groups")
    checked: set[int] = set()  # an aliased group is one object, checked once
    for number, group in enumerate(groups):
        if id(group) not in checked:
            check_group(group, number, source)
            checked.add(id(group))
    # Counted before any target is built: aliases can name one long list, or one long label set,
    # thousands of times in a few bytes.
    if sum(len(group.get("targets", [])) for group in groups) > MAX_FILE_SD_TARGETS:
        raise DiscoveryError(f"{source}: names more than {MAX_FILE_SD_TARGETS:,} targets")
    if sum(len(group.get("targets", [])) * len(group.get("labels") or {}) for group in groups) > MAX_FILE_SD_LABELS:
        raise DiscoveryError(f"{source}: gives its targets more than {MAX_FILE_SD_LABELS:,} labels in all")
    return [make_target(address_of(address, number, index, source), group.get("labels") or {}, job)
            for number, group in enumerate(groups) for index, address in enumerate(group.get("targets", []))]


def address_of(address: Any, number: int, index: int, source: str) -> str:
    if not isinstance(address, (str, int, float)):
        raise DiscoveryError(f"{source}: group {number}: target {index} must be a host:port string")
    return str(address)


def check_group(group: Any, number: int, source: str) -> None:
    """A target group as Prometheus unmarshals one: a targets list, valid label names, string values."""
    if not isinstance(group, dict) or not isinstance(group.get("targets", []), list):
        raise DiscoveryError(f"{source}: group {number} must be an object with a 'targets' list")
    labels = group.get("labels") or {}
    if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
        raise DiscoveryError(f"{source}: group {number}: 'labels' must map names to strings")
    for name in labels:
        if not isinstance(name, str) or not LABEL_NAME.fullmatch(name):
            raise DiscoveryError(f"{source}: group {number}: {str(name)[:64]!r} is not a valid label name")


class FileSD:
    """file_sd files re-read when their modification time or size changes."""

    def __init__(self, paths: Iterable[str], job: str) -> None:
        self.job = job
        self._files: dict[str, tuple[tuple[float, int] | None, list[Target]]] = {p: (None, []) for p in paths}
        self.errors: dict[str, str] = {}  # path -> why its last read failed
        self.read_failures = 0

    def targets(self) -> list[Target]:
        out: list[Target] = []
        for path in list(self._files):
            out.extend(self._read(path))
        return out

    def problems(self) -> dict[str, str]:
        """For the component's health hook: every file whose last read failed, and what it kept."""
        failed = sorted(dict(self.errors).items())
        if not failed:
            return {}
        return {"file_sd_invalid": "; ".join(f"{error} (keeping {len(self._files[path][1])} previous targets)"
                                             for path, error in failed)}

    def _read(self, path: str) -> list[Target]:
        stamp, targets = self._files[path]
        try:
            info = os.stat(path)
        except OSError as exc:
            self.errors[path] = f"cannot read {path}: {exc.strerror}"
            return targets
        current = (info.st_mtime, info.st_size)
        if current == stamp:
            return targets
        try:
            targets = parse_file_sd(read_file_sd(path), self.job, path)
            self.errors.pop(path, None)
        except OSError as exc:
            self.errors[path] = f"cannot read {path}: {exc.strerror}"
        except DiscoveryError as exc:
            self.errors[path] = str(exc)
        if path in self.errors:
            self.read_failures += 1
            log.warning("file_sd %s (keeping %d previous targets)", self.errors[path], len(targets))
        self._files[path] = (current, targets)
        return targets


class Discovery:
    """``source`` (the file_sd reads) run on a thread of its own every ``every`` seconds, as
    Prometheus's discovery manager runs apart from its scrape loops: ``targets()`` answers the
    latest list at once. Before ``start`` (tests, one-off scrapes) it reads in the caller."""

    def __init__(self, source: Callable[[], list[Target]], every: float = REFRESH_S) -> None:
        self.source = source
        self.every = every
        self.failures = 0
        self._latest: list[Target] = []
        self._first = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def targets(self) -> list[Target]:
        return self._latest if self._thread else self.source()

    def start(self, first_wait: float = 10.0) -> None:
        """Starts the reads; waits up to ``first_wait`` for the first, so that the first scrape
        round already has the files' targets (a file on a hung mount only delays them)."""
        self._thread = threading.Thread(target=self._loop, name="tsdb-discovery", daemon=True)
        self._thread.start()
        self._first.wait(first_wait)

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        while True:
            try:
                self._latest = self.source()
            except Exception:  # noqa: BLE001 - discovery failing must keep the last targets
                self.failures += 1
                log.exception("service discovery failed (keeping %d previous targets)", len(self._latest))
            self._first.set()
            if self._stop.wait(self.every):
                return
