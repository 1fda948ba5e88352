"""Validated request parameters shared by every page and JSON route: the time range, names.

Everything from a URL that ends up inside a PromQL query is checked against a strict pattern
first (node names, job ids), so a query string can never change a query's shape.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime

from fastapi import HTTPException, Query
from starlette.convertors import Convertor, register_url_convertor

from cwkernel.durations import format_duration, parse_duration
from scheduler import JOB_ID_PATTERN, is_job_id, is_node_name  # the ids the scheduler's actions accept
MAX_RANGE_S = 31 * 86400.0
MIN_RANGE_S = 60.0
MAX_POINTS = 240  # per series in a range query: enough for a laptop-wide chart


@dataclass(frozen=True)
class TimeRange:
    start: float
    end: float

    @property
    def seconds(self) -> float:
        return self.end - self.start

    @property
    def window(self) -> str:
        """The range as a PromQL range selector duration (whole seconds)."""
        return format_duration(max(1, round(self.seconds)))

    def step(self, points: int = MAX_POINTS) -> float:
        return max(5.0, round(self.seconds / points))

    def clipped(self, start: float | None = None, end: float | None = None) -> "TimeRange":
        """The part of this range inside [start, end] (a job's lifetime), at least one minute."""
        lo = max(self.start, start) if start else self.start
        hi = min(self.end, end) if end else self.end
        return TimeRange(min(lo, hi - MIN_RANGE_S), hi)


def bad_request(message: str) -> HTTPException:
    return HTTPException(status_code=400, detail=message)


def _time(text: str, name: str) -> float:
    """Unix seconds or an ISO 8601 date; NaN, infinities and times before 1970 are refused (NaN
    passed every later comparison and failed deep inside the views)."""
    try:
        value = float(text)
    except ValueError:
        try:
            value = datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
        except (ValueError, OverflowError, OSError):
            raise bad_request(f"{name}: not a Unix time or ISO 8601 date: {text[:40]!r}") from None
    if not math.isfinite(value) or value < 0:
        raise bad_request(f"{name}: not a finite Unix time from 1970 on: {text[:40]!r}")
    return value


def parse_range(range_: str | None, end: str | None, now: float) -> TimeRange:
    """``range`` (a duration such as 1h, default 1h) ending at ``end`` (default now)."""
    try:
        seconds = parse_duration(range_ or "1h")
    except ValueError as exc:
        raise bad_request(f"range: {exc}") from None
    if not MIN_RANGE_S <= seconds <= MAX_RANGE_S:
        raise bad_request(f"range: must be between 1m and 31d, not {range_!r}")
    stop = _time(end, "end") if end else now
    if stop > now + 300:
        raise bad_request("end: must not be in the future")
    return TimeRange(stop - seconds, stop)


class RangeParams:
    """FastAPI dependency: ``?range=6h&end=...`` validated into a ``TimeRange``."""

    def __init__(self, range: str | None = Query(None, description="duration, e.g. 15m, 1h, 6h, 24h, 7d"),  # noqa: A002
                 end: str | None = Query(None, description="Unix seconds or ISO 8601; default now")) -> None:
        self.range = range
        self.end = end

    def resolve(self, now: float) -> TimeRange:
        return parse_range(self.range, self.end, now)


def check_node(name: str) -> str:
    if not is_node_name(name):
        raise bad_request(f"not a node name: {name[:80]!r}")
    return name


# A Kubernetes pod's job id, ``<namespace>/<pod>`` (exporter/collectors/jobs.py ``pod_job_id``):
# a namespace is a DNS-1123 label, a pod's name a DNS-1123 subdomain.
_NAMESPACE = re.compile(r"[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?")
_POD = re.compile(r"[a-z0-9](?:[-.a-z0-9]{0,251}[a-z0-9])?")


def is_pod_job_id(job_id: str) -> bool:
    namespace, slash, pod = job_id.partition("/")
    return bool(slash) and _NAMESPACE.fullmatch(namespace) is not None and _POD.fullmatch(pod) is not None


class SlurmJobIdConvertor(Convertor):
    """``{job_id:slurm_job_id}`` in a route: matches a Slurm job id only, so that the route of a
    Slurm job's sub-page (``/api/jobs/1234/continuity``) leaves a pod's ``/api/jobs/<namespace>/<pod>``
    to the route that takes it."""

    regex = JOB_ID_PATTERN

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("slurm_job_id", SlurmJobIdConvertor())


def check_job_id(job_id: str) -> str:
    """A Slurm job id, or a pod's ``<namespace>/<pod>``."""
    if not is_job_id(job_id) and not is_pod_job_id(job_id):
        kind = "pod (<namespace>/<pod>, lowercase DNS names)" if "/" in job_id else "job id (1234 or 1234_5)"
        raise bad_request(f"not a {kind}: {job_id[:80]!r}")
    return job_id


def regex_of(names: list[str]) -> str:
    """A PromQL regex matching exactly the (already validated) names, written for a PromQL
    double-quoted string: only '.' is special among node-name characters, and its backslash must
    itself be escaped inside the string literal."""
    for name in names:
        if not is_node_name(name):
            raise ValueError(f"not a node name: {name[:80]!r}")
    return "|".join(n.replace(".", "\\\\.") for n in sorted(set(names)))
