"""``clusterwatch report``: the reliability review (goodput, interruptions by cause, MTBI, lemon nodes) as text or JSON.

The numbers are the ``/reliability`` page's, computed by the same definitions (dashboard/goodput.py,
docs/architecture.md#definitions): asked of a running ``clusterwatch serve`` (``--server``, its
``/api/reliability``) or computed here from any Prometheus-API server that holds the rule pack's
``clusterwatch-reliability`` series and the scheduler's metrics (``--prometheus-url``). The JSON is
the page's view model, so a weekly review can be kept and compared.
"""
from __future__ import annotations

import argparse
import sys
import time
from typing import TextIO

import httpx
from pydantic import ValidationError

from cwkernel import httpdeadline
from cwkernel.durations import parse_duration
from cwkernel.errors import ConfigError

DEFAULT_SERVER = "http://127.0.0.1:9464"
TIMEOUT_S = 120.0  # a 30-day range over a large fleet is a few dozen queries
MAX_ANSWER_BYTES = 32 * 2**20  # the view lists at most 200 jobs and 1,000 interruptions: far below this


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("report", help="print the reliability review (ETTR, interruptions by cause, "
                                   "MTBI, lemon nodes) as text or JSON",
                                   description=__doc__.splitlines()[0].split(": ", 1)[-1])
    parser.add_argument("--range", default="7d", help="duration ending at --end, e.g. 7d or 30d (at most 31d)")
    parser.add_argument("--end", default=None, help="Unix seconds or ISO 8601 (default now)")
    parser.add_argument("--format", choices=("text", "json"), default="text",
                        help="text to read; json: the /api/reliability view model, to keep and compare")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--server", default=None, metavar="URL",
                        help=f"a clusterwatch serve to ask (its /api/reliability; default {DEFAULT_SERVER})")
    source.add_argument("--prometheus-url", default=None, metavar="URL",
                        help="compute here from a Prometheus-API server holding the clusterwatch-reliability series")
    return parser


def _url(value: str, option: str) -> str:
    if not value.startswith(("http://", "https://")) or len(value) > 2048:
        raise ConfigError(option, f"not an http(s) URL: {value[:80]!r}")
    return value.rstrip("/")


def _range_params(args: argparse.Namespace) -> dict[str, str]:
    try:
        parse_duration(args.range)
    except ValueError as exc:
        raise ConfigError("--range", str(exc)) from None
    params = {"range": args.range}
    if args.end:
        params["end"] = args.end
    return params


def from_server(base: str, params: dict[str, str]):
    """The server's view model, read bounded in size and time and validated."""
    from dashboard.views.reliability import ReliabilityView

    try:
        with httpdeadline.client(timeout=TIMEOUT_S) as client, httpdeadline.deadline(TIMEOUT_S) as extensions, \
                client.stream("GET", f"{base}/api/reliability", params=params, extensions=extensions) as response:
            body = httpdeadline.read_capped(response, MAX_ANSWER_BYTES)
    except httpdeadline.AnswerTooLarge as exc:
        raise ConfigError("--server", f"{exc}: refused") from None
    except httpx.TimeoutException:
        raise ConfigError("--server", f"{base}: no answer within {TIMEOUT_S:.1f}s") from None
    except httpx.HTTPError as exc:
        raise ConfigError("--server", f"{base}: {exc}") from None
    if response.status_code != 200:
        raise ConfigError("--server", f"HTTP {response.status_code}: {body[:300].decode(errors='replace')}")
    try:
        return ReliabilityView.model_validate_json(body)
    except ValidationError as exc:
        raise ConfigError("--server", f"not a reliability view: {str(exc)[:300]}") from None


def from_prometheus(url: str, params: dict[str, str]):
    from fastapi import HTTPException

    from dashboard.params import parse_range
    from dashboard.views.reliability import reliability
    from tsdb.client import HTTPQueryClient, QueryError

    now = time.time()
    try:
        tr = parse_range(params["range"], params.get("end"), now)
    except HTTPException as exc:
        raise ConfigError("--range/--end", str(exc.detail)) from None
    client = HTTPQueryClient(url, timeout=TIMEOUT_S)
    try:
        return reliability(client, tr, now)
    except QueryError as exc:
        raise ConfigError("--prometheus-url", f"query failed: {exc}") from None
    finally:
        client.close()


def _hours(value: float | None) -> str:
    return "unknown (no checkpoint signal)" if value is None else f"{value:.2f}"


def _when(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(t))


def write_text(view, out: TextIO) -> None:
    """The review as plain text: the page's numbers in the page's order."""
    ettr = "-" if view.ettr is None else f"{'<= ' if view.ettr_upper_bound else ''}{view.ettr * 100:.1f}%"
    mtbi = view.mtbi_per_1000_gpus_hours
    mtbi = "none in range" if mtbi is None else f"{mtbi:.1f} h" if mtbi >= 1 else f"{mtbi * 60:.1f} min"
    lines = [f"ClusterWatch reliability report, {_when(view.start)} to {_when(view.end)}", "",
             f"cluster ETTR (GPU-hour weighted): {ettr}",
             f"GPU-hours owed to jobs: {view.wall_gpu_hours:.2f}; productive: {view.productive_gpu_hours:.2f}",
             f"interruptions: {view.interruptions_total}; MTBI per 1,000 GPUs: {mtbi} ({view.fleet_gpus} GPUs)",
             f"interrupted jobs without a checkpoint signal: {view.redone_unknown_jobs}", "", "GPU-hours lost by cause:"]
    lines += [f"  {title:45} {view.lost_gpu_hours[cause]:10.2f}" for cause, title in view.causes.items()]
    lines += ["", "interruptions by cause:"]
    lines += [f"  {title:45} {view.interruptions_by_class[cls]:10d}" for cls, title in view.classes.items()]
    lines += ["", "interruptions per day (UTC):"]
    for day, counts in view.interruptions_by_day.items():
        detail = ", ".join(f"{view.classes[c]} {n}" for c, n in counts.items())
        lines.append(f"  {day}  {sum(counts.values()):4d}" + (f"  ({detail})" if detail else ""))
    lines += ["", "lemon nodes:"] + ([f"  {lemon.node:30} {lemon.interruptions:4d}  "
                                      + ", ".join(f"{view.classes[c]} {n}" for c, n in lemon.classes.items())
                                      for lemon in view.lemons] or ["  none"])
    lines += ["", f"jobs that lost time ({len(view.jobs)} of {view.jobs_total}):"]
    for job in view.jobs:
        job_ettr = "-" if job.ettr is None else f"{'<= ' if job.ettr_upper_bound else ''}{job.ettr * 100:.1f}%"
        lost = ", ".join(f"{cause} {_hours(value)}" for cause, value in job.lost_gpu_hours.items() if value != 0)
        lines.append(f"  {job.job_id:14} GPUs {job.gpus:6.0f}  ETTR {job_ettr:9}  interruptions {job.interruptions}  "
                     f"lost GPU-h: {lost or 'none'}")
    lines += ["", "interruptions:"]
    for item in view.interruptions:
        redone = "unknown (no checkpoint signal)" if item.redone_seconds is None else f"{item.redone_seconds / 60:.0f} min"
        lines.append(f"  {_when(item.time)}  job {item.job_id} #{item.ordinal} ({item.state}): "
                     f"{view.classes[item.cause]}: {item.evidence or 'no alert on its nodes, unknown'}; redone {redone}")
    lines += [f"note: {note}" for note in view.notes]
    out.write("\n".join(lines) + "\n")


def run(args: argparse.Namespace) -> int:
    params = _range_params(args)
    if args.prometheus_url:
        view = from_prometheus(_url(args.prometheus_url, "--prometheus-url"), params)
    else:
        view = from_server(_url(args.server or DEFAULT_SERVER, "--server"), params)
    if args.format == "json":
        sys.stdout.write(view.model_dump_json(indent=2) + "\n")
    else:
        write_text(view, sys.stdout)
    return 0
