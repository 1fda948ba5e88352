"""Textfile collector: the ``*.prom`` files cron jobs and scripts write, exposed as node_exporter does.

Sites moving from node_exporter keep their ``--collector.textfile.directory`` files: point
``--textfile-dir`` at the same directory. node_exporter's semantics:

- every ``*.prom`` file directly in the directory (not below it), in name order, in the Prometheus
  text format; the families of all files are exposed together (a family in several files is
  merged; a sample's missing labels are filled with "" so the family has one label set);
- ``node_textfile_mtime_seconds{file}`` (the file's path) for each file read successfully;
- ``node_textfile_scrape_error`` 1 when the directory or any file could not be read or parsed
  (a file with client-side timestamps counts as unparsable: skipped whole), else 0. A bad file is
  reported, never fatal: the other files and every other collector are still exposed;
- a family without HELP gets "Metric read from <files>"; a family whose HELP differs between
  files is kept from the first file only, and counts as an error;
- a series read twice (in two files, or twice in one) is exposed once, the first read kept, and
  counts as an error (node_exporter's registry refuses the repeat alike).

Beyond node_exporter, bounds (the directory is writable by jobs: the checkpoint contract,
docs/operations.md): a file over ``MAX_FILE_BYTES``, or one that is not a regular file (a named
pipe), or with a label value over ``MAX_LABEL_VALUE_LENGTH`` or a sample of more than
``MAX_LABELS_PER_SAMPLE`` labels, is refused as unparsable; files past ``MAX_FILES``, and a file
whose samples would take the textfiles past ``MAX_TEXTFILE_SAMPLES`` (a node's own series are about
1,100; the server refuses a target over 50,000, GPU metrics included), are refused whole; a file
is parsed again only when it changed (inode, size or mtime; or it was modified within a second of
its last read, which stat alone cannot tell from unchanged), and at most
``MAX_PARSE_BYTES_PER_CYCLE`` of changed files a collection, a changed file past it refused until
the next one: parsing takes about half a second per MiB, and the GPU collectors wait for it.

And since jobs write there, a file's family that goes by one of ClusterWatch's own names is
refused (the rest of the file is kept; ``node_textfile_scrape_error`` is 1): a family that any of
the exporter's collectors declares, and the namespaces the rule pack reads (``gpu_``,
``clusterwatch_``, ``DCGM_``, ``slurm_``, ``fabric_``, ``up``...), except ``clusterwatch_job_``,
where a job speaks for itself (the checkpoint mark). Otherwise a job could forge an XID that has
the automation drain its node and requeue everyone's jobs, or repeat a family of the node
collector, whose second ``# TYPE`` makes Prometheus refuse the node's whole page. What a job says of
itself is stamped with the file's owner, ``writer="<user>"`` (unless root or the exporter's own
user owns the file), so that a job cannot speak for another user's job unseen (cwkernel/jobmarks.py).

Writers should write to a temporary name and rename it into place, as with node_exporter, so a
scrape never reads half a file.
"""
from __future__ import annotations

import os
import pwd
import queue
import stat
import threading
import time
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterable

from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families

from cwkernel.boundedread import read_regular_file, utf8
from cwkernel.jobmarks import JOBS_OWN_PREFIX, WRITER_LABEL
from cwkernel.metrics import FamilySet, gauge, metric_table
from exporter.collector import Collector, CollectorContext, NoDataError, declared_families, register_collector

# A textfile is another program's output: one that grew without bound (a runaway script) must
# not take the exporter's memory, nor a named pipe with no writer its collection loop, nor its
# series the node's scrape, nor its parsing the collection's time (module docstring).
MAX_FILE_BYTES = 4 * 2**20
MAX_PARSE_BYTES_PER_CYCLE = 4 * 2**20
MAX_TEXTFILE_SAMPLES = 10_000
MAX_FILES = 1_000
# A label value costs the server its length in every series carrying it, and a job rewriting its
# file with new values makes new series each time: the bytes, not only the count, are bounded.
MAX_LABEL_VALUE_LENGTH = 4096
MAX_LABELS_PER_SAMPLE = 32


def _version(info: os.stat_result) -> tuple[int, int, int, int]:
    """What tells a rewritten file from the one parsed (writers rename a new file into place), or
    one given to another user (its samples name their writer: ``stamp_writer``)."""
    return info.st_ino, info.st_size, info.st_mtime_ns, info.st_uid


# Names a textfile may not use (module docstring): the exporter's own families come from its
# collectors' tables (declared_families); these are the namespaces of ClusterWatch's other sources.
RESERVED_PREFIXES = ("gpu_", "clusterwatch_", "DCGM_", "slurm_", "fabric_", "scrape_")
RESERVED_NAMES = frozenset({"up", "ALERTS", "ALERTS_FOR_STATE"})


def is_reserved(name: str, declared: frozenset[str]) -> bool:
    if name.startswith(JOBS_OWN_PREFIX):
        return name in declared
    return name in declared or name in RESERVED_NAMES or name.startswith(RESERVED_PREFIXES)


def split_reserved(families: list[Metric], declared: frozenset[str]) -> tuple[list[Metric], list[str]]:
    """(the families a textfile may expose, the names of those it may not). A family is judged by
    every name it would put on the page: prometheus_client drops a counter's ``_total``, and a
    histogram's samples carry suffixes."""
    kept, refused = [], []
    for family in families:
        names = {family.name, f"{family.name}_total"} | {sample.name for sample in family.samples}
        if any(is_reserved(name, declared) for name in names):
            refused.append(family.name)
        else:
            kept.append(family)
    return kept, refused


class UserNames:
    """uid -> user name, looked up off the collection: the user database (NSS: LDAP, SSSD) can hang,
    and the node's page must not wait for it. A uid not yet resolved reads as its number (believed
    where it is the job's uid in ``slurm_job_info``); the name is looked up on a thread of its own
    and used from the next collection on. A failed lookup is not remembered: asked again."""

    def __init__(self, lookup: Callable[[int], str] = lambda uid: pwd.getpwuid(uid).pw_name,
                 limit: int = 1024) -> None:
        self._lookup = lookup
        self._limit = limit
        self._names: dict[int, str] = {}
        self._pending: set[int] = set()
        self._queue: queue.SimpleQueue[int] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def name(self, uid: int) -> str:
        name = self._names.get(uid)
        if name is None:
            self._ask(uid)
            return str(uid)
        return name

    def _ask(self, uid: int) -> None:
        with self._lock:
            if uid in self._pending or len(self._pending) >= self._limit:
                return
            self._pending.add(uid)
            self._queue.put(uid)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._resolve, name="textfile-user-names", daemon=True)
                self._thread.start()

    def _resolve(self) -> None:
        while True:
            uid = self._queue.get()
            try:
                name: str | None = self._lookup(uid)
            except Exception:  # noqa: BLE001 - KeyError (no such user) or the database failing: ask again later
                name = None
            with self._lock:
                self._pending.discard(uid)
                if name and len(self._names) < self._limit:
                    self._names[uid] = name


USER_NAMES = UserNames()


def writer_of(uid: int) -> str | None:
    """The ``writer`` a file of ``uid`` gives its job samples: None for root and the exporter's own
    user (they speak for any job), else the user's name (``USER_NAMES``; its uid until resolved)."""
    if uid in (0, os.geteuid()):
        return None
    return USER_NAMES.name(uid)


def stamp_writer(families: Iterable[Metric], writer: str | None) -> None:
    """Stamps each sample of what a job says of itself (cwkernel/jobmarks.py) with ``writer``,
    replacing any writer the file claims."""
    for family in families:
        if not family.name.startswith(JOBS_OWN_PREFIX):
            continue
        for index, sample in enumerate(family.samples):
            labels = {name: value for name, value in sample.labels.items() if name != WRITER_LABEL}
            if writer is not None:
                labels[WRITER_LABEL] = writer
            family.samples[index] = sample._replace(labels=labels)


# An mtime is coarse (ext4: a few milliseconds) and a rename may reuse the inode number it frees, so
# a file rewritten at the same size in the tick it was read in looks unchanged: such a file, whose
# mtime is not well before its read, is read again (as git treats a "racily clean" index entry).
RACY_S = 1.0


@dataclass(frozen=True)
class _Parsed:
    version: tuple[int, int, int, int]
    mtime: float
    read_at: float  # wall time of the read: a file modified within RACY_S of it may have changed unseen
    families: tuple[Metric, ...]  # changed only to re-stamp their writer: merging copies them
    samples: int
    refused: tuple[str, ...]  # families left out: they go by ClusterWatch's own names
    writer: str | None = None  # what its job samples are stamped with (``writer_of`` its owner)


TABLE = metric_table(
    gauge("node_textfile_mtime_seconds", "Unixtime mtime of textfiles successfully read.", ("file",), "seconds",
          "stat(<textfile-dir>/*.prom)"),
    gauge("node_textfile_scrape_error", "1 if there was an error opening or reading a file, 0 otherwise", (),
          "boolean", "<textfile-dir>/*.prom (only with --textfile-dir; the files' own families as they declare them)"),
)


def parse_prom(text: str) -> list[Metric]:
    """The families of one file; ValueError where it is not the text format, has timestamps, or a
    sample's labels are past the bounds."""
    families = list(text_string_to_metric_families(text))
    for family in families:
        for sample in family.samples:
            if sample.timestamp is not None:
                raise ValueError("contains unsupported client-side timestamps, skipping entire file")
            if len(sample.labels) > MAX_LABELS_PER_SAMPLE:
                raise ValueError(f"{sample.name} has {len(sample.labels)} labels, more than "
                                 f"{MAX_LABELS_PER_SAMPLE}: skipping entire file")
            for name, value in sample.labels.items():
                if len(value) > MAX_LABEL_VALUE_LENGTH:
                    raise ValueError(f"{sample.name}: label {name} is {len(value):,} characters long, more "
                                     f"than {MAX_LABEL_VALUE_LENGTH:,}: skipping entire file")
    return families


@register_collector("textfile")
class TextfileCollector(Collector):
    """Metrics from the *.prom files of --textfile-dir (node_exporter's textfile collector)."""

    def __init__(self, ctx: CollectorContext) -> None:
        super().__init__(ctx)
        self.directory: str | None = getattr(ctx.config, "textfile_dir", None) or None
        self._parsed: dict[str, _Parsed] = {}  # path -> its last parse, for the files there now
        self._declared = declared_families()

    def collect(self) -> Iterable[Metric | FamilySet]:
        if not self.directory:
            raise NoDataError("no --textfile-dir")
        errored = False
        merged: dict[str, Metric] = {}
        files_of: dict[str, list[str]] = {}
        origins: dict[str, list[str]] = {}  # family -> the file of each of its samples
        help_of: dict[str, str] = {}
        mtimes: dict[str, float] = {}
        try:
            names = sorted(name for name in os.listdir(self.directory) if name.endswith(".prom"))
        except OSError as exc:
            self.skip(f"textfile directory {self.directory}", exc)
            names, errored = [], True
        if len(names) > MAX_FILES:
            self.skip(f"textfile directory {self.directory}: {len(names)} *.prom files, the first {MAX_FILES} read")
            names, errored = names[:MAX_FILES], True
        parsed: dict[str, _Parsed] = {}
        budget, samples = MAX_PARSE_BYTES_PER_CYCLE, 0
        for name in names:
            path = os.path.join(self.directory, name)
            try:
                found, cost = self._parse(path, budget)
            except (OSError, ValueError, UnicodeDecodeError) as exc:
                self.skip(f"textfile {path}", exc)
                errored = True
                continue
            budget -= cost
            parsed[path] = found
            if found.refused:
                self.skip(f"textfile {path}: {', '.join(found.refused)}: ClusterWatch's own name"
                          f"{'s' if len(found.refused) > 1 else ''}, not taken from a textfile")
                errored = True
            if samples + found.samples > MAX_TEXTFILE_SAMPLES:
                self.skip(f"textfile {path}: {found.samples} samples would take the textfiles past "
                          f"{MAX_TEXTFILE_SAMPLES}")
                errored = True
                continue
            samples += found.samples
            for family in found.families:
                if family.name in help_of and family.documentation and family.documentation != help_of[family.name]:
                    self.skip(f"textfile {path}: {family.name} has another help text than in "
                              f"{files_of[family.name][0]}")
                    errored = True
                    continue
                previous = merged.get(family.name)
                if previous is not None and previous.type != family.type:
                    self.skip(f"textfile {path}: {family.name} is a {family.type}, a {previous.type} in "
                              f"{files_of[family.name][0]}")
                    errored = True
                    continue
                if family.documentation:
                    help_of.setdefault(family.name, family.documentation)
                if files_of.setdefault(family.name, [])[-1:] != [path]:  # a file's untyped lines come one by one
                    files_of[family.name].append(path)
                if previous is None:
                    merged[family.name] = previous = Metric(family.name, family.documentation, family.type, family.unit)
                    origins[family.name] = []
                previous.samples.extend(family.samples)
                origins[family.name].extend([path] * len(family.samples))
            mtimes[path] = float(int(found.mtime))
        self._parsed = parsed
        out: list[Metric | FamilySet] = []
        for name, family in merged.items():
            if not family.documentation:
                family.documentation = f"Metric read from {', '.join(files_of[name])}"
            _fill_labels(family)
            for sample, path, first in _repeated_series(family, origins[name]):
                self.skip(f"textfile {path}: {sample.name}{_label_text(sample.labels)} was read before from "
                          f"{first}: the first kept")
                errored = True
            out.append(family)
        own = FamilySet(TABLE)
        for path in sorted(mtimes):
            own.add("node_textfile_mtime_seconds", mtimes[path], file=path)
        own.add("node_textfile_scrape_error", 1 if errored else 0)
        out.append(own)
        return out

    def _parse(self, path: str, budget: int) -> tuple[_Parsed, int]:
        """The file's families: its last parse while it is unchanged, else parsed now within the
        collection's ``budget`` of bytes (ValueError past it); and the bytes parsed."""
        known = self._parsed.get(path)
        info = os.stat(path)
        if known is not None and known.version == _version(info) and stat.S_ISREG(info.st_mode) \
                and info.st_mtime < known.read_at - RACY_S:
            if (writer := writer_of(info.st_uid)) != known.writer:  # the owner's name was found since
                stamp_writer(known.families, writer)
                known = replace(known, writer=writer)
            return known, 0
        if stat.S_ISREG(info.st_mode) and info.st_size > budget:
            raise ValueError(f"changed, and the textfiles changed since the last collection are past "
                             f"{MAX_PARSE_BYTES_PER_CYCLE // 2**20} MiB: read at the next one")
        read_at = time.time()
        info, data = read_regular_file(path, MAX_FILE_BYTES)
        text = utf8(data)
        families, refused = split_reserved(parse_prom(text), self._declared)
        writer = writer_of(info.st_uid)
        stamp_writer(families, writer)
        return _Parsed(_version(info), info.st_mtime, read_at, tuple(families),
                       sum(len(f.samples) for f in families), tuple(refused), writer), len(text)


def _repeated_series(family: Metric, origins: list[str]) -> list[tuple[Any, str, str]]:
    """Removes from ``family`` every sample of a series it already has, and returns each with its
    file and the file of the one kept. node_exporter keeps the first too (its registry refuses
    the repeat); exposed twice, Prometheus would drop one at each scrape and log it."""
    first_from: dict[tuple, str] = {}
    kept, repeated = [], []
    for sample, path in zip(family.samples, origins):
        key = (sample.name, tuple(sorted(sample.labels.items())))
        if key in first_from:
            repeated.append((sample, path, first_from[key]))
        else:
            first_from[key] = path
            kept.append(sample)
    family.samples[:] = kept
    return repeated


def _label_text(labels: dict[str, str]) -> str:
    return "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}" if labels else ""


def _fill_labels(family: Metric) -> None:
    """node_exporter: samples of one family missing some of its labels get them as ""."""
    names = {label for sample in family.samples for label in sample.labels
             if label not in ("le", "quantile")}
    for index, sample in enumerate(family.samples):
        missing = names - set(sample.labels)
        if missing:
            family.samples[index] = sample._replace(labels={**sample.labels, **dict.fromkeys(missing, "")})
