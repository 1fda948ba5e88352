"""Slurm through slurmrestd over HTTP, authenticated with a JWT (``X-SLURM-USER-TOKEN``).

The API version in the URL (``/slurm/v0.0.40/...``) changes with Slurm releases; when it is not
configured it is discovered once from the server's own OpenAPI document (``/openapi/v3``), taking
the newest version that serves both ``/jobs`` and ``/nodes``. Node updates (drain, resume) exist
from v0.0.39 on; a checkpoint signal to the batch script alone is ``DELETE /job/{id}?signal=USR1&
flags=BATCH_JOB`` from v0.0.40 on (older versions have no BATCH_JOB flag and would signal every
step, so they are refused); requeue and reboot have no slurmrestd endpoint and are refused before
anything runs (use the command backend for them).
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Callable

import httpx

from cwkernel import httpdeadline
from scheduler.actions_model import DRAIN, RESUME, SIGNAL, Action, Answer
from scheduler.backends.base import SchedulerError, SchedulerTimeout, read_answer
from scheduler.model import SchedulerSnapshot
from scheduler.parsers import SlurmResponseError, load_document, parse_jobs, parse_nodes, source_info

_VERSION_PATH = re.compile(r"^/slurm/(v\d+\.\d+\.\d+)/(jobs|nodes)/?$")
# The first API version whose DELETE /job/{id} takes flags=BATCH_JOB (signal the batch script only).
FIRST_BATCH_SIGNAL_VERSION = (0, 0, 40)


@dataclass(frozen=True)
class Reply:
    """An answer read whole within the bounds (``read_answer``)."""
    status_code: int
    text: str


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version[1:].split("."))


def newest_api_version(openapi: dict) -> str | None:
    """The highest ``vX.Y.Z`` whose paths include both jobs and nodes."""
    found: dict[str, set[str]] = {}
    for path in (openapi.get("paths") or {}):
        match = _VERSION_PATH.match(path)
        if match:
            found.setdefault(match.group(1), set()).add(match.group(2))
    complete = [version for version, kinds in found.items() if kinds >= {"jobs", "nodes"}]
    if not complete:
        return None
    return max(complete, key=_version_tuple)


class SlurmRestBackend:
    supported_actions = frozenset({DRAIN, RESUME, SIGNAL})

    def __init__(self, base_url: str, token: str | None = None, user_name: str | None = None,
                 api_version: str | None = None, client: httpx.Client | None = None,
                 name: str = "slurmrestd", wall_clock: Callable[[], float] = time.time) -> None:
        self.base_url = base_url.rstrip("/")
        self.name = name
        self.api_version = api_version
        headers: dict[str, str] = {}
        if token:
            headers["X-SLURM-USER-TOKEN"] = token
        if user_name:
            headers["X-SLURM-USER-NAME"] = user_name
        self.client = client or httpdeadline.client()
        self.headers = headers
        self._wall_clock = wall_clock

    def _request(self, method: str, path: str, timeout: float, json: dict | None = None,
                 params: dict[str, str] | None = None) -> Reply:
        url = f"{self.base_url}{path}"
        try:
            with httpdeadline.deadline(timeout) as extensions, \
                    self.client.stream(method, url, headers=self.headers, json=json, params=params,
                                       timeout=timeout, extensions=extensions) as response:
                return Reply(response.status_code, read_answer(response, f"{method} {url}"))
        except httpx.TimeoutException as exc:
            raise SchedulerTimeout(f"{method} {url}: no answer within {timeout:.1f}s") from exc
        except httpx.HTTPError as exc:
            raise SchedulerError(f"{method} {url}: {exc}") from exc

    def _version(self, timeout: float) -> str:
        if self.api_version is None:
            response = self._request("GET", "/openapi/v3", timeout)
            if response.status_code != 200:
                raise SchedulerError(f"cannot discover the slurmrestd API version: HTTP {response.status_code}")
            version = newest_api_version(load_document(response.text, "openapi/v3"))
            if version is None:
                raise SchedulerError("slurmrestd serves no API version with both /jobs and /nodes")
            self.api_version = version
        return self.api_version

    def _get_json(self, what: str, deadline: float) -> dict:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise SchedulerTimeout(f"{what}: poll timeout used up before it ran")
        response = self._request("GET", f"/slurm/{self._version(remaining)}/{what}", remaining)
        if response.status_code != 200:
            # slurmrestd puts its reasons in the body's "errors", also on HTTP errors.
            load_document(response.text, what)
            raise SchedulerError(f"GET {what}: HTTP {response.status_code}")
        return load_document(response.text, what)

    def fetch(self, timeout: float) -> SchedulerSnapshot:
        deadline = time.monotonic() + timeout
        jobs_document = self._get_json("jobs", deadline)
        nodes_document = self._get_json("nodes", deadline)
        return SchedulerSnapshot(jobs=tuple(parse_jobs(jobs_document)), nodes=tuple(parse_nodes(nodes_document)),
                        taken_at=self._wall_clock(), source=source_info(jobs_document, self.name))

    def execute(self, action: Action, timeout: float) -> Answer:
        if action.kind not in self.supported_actions:
            raise ValueError(f"{self.name} cannot {action.kind}")
        version = self._version(timeout)
        if action.kind == SIGNAL:
            if _version_tuple(version) < FIRST_BATCH_SIGNAL_VERSION:
                raise SchedulerError(f"slurmrestd {version} cannot signal a job's batch script alone (flags="
                                     "BATCH_JOB needs v0.0.40 or later): use the slurm-cli backend for checkpoints")
            # The signal is always set: a DELETE /job without one is a cancel (SIGKILL).
            path, params = f"/slurm/{version}/job/{action.target}", {"signal": action.signal, "flags": "BATCH_JOB"}
            response = self._request("DELETE", path, timeout, params=params)
            return self._answer(response, "job signal", f"DELETE {self.base_url}{path}?signal={action.signal}"
                                                        "&flags=BATCH_JOB")
        body: dict = {"state": ["DRAIN"] if action.kind == DRAIN else ["RESUME"]}
        if action.kind == DRAIN:
            body["reason"] = action.reason
        path = f"/slurm/{version}/node/{action.target}"
        response = self._request("POST", path, timeout, json=body)
        return self._answer(response, "node update", f"POST {self.base_url}{path}")

    @staticmethod
    def _answer(response: Reply, what: str, command: str) -> Answer:
        message = response.text.strip()[:2000]
        ok = response.status_code == 200
        if message:
            try:
                load_document(response.text, what)
            except SlurmResponseError as exc:
                ok, message = False, str(exc)
        return Answer(ok=ok, message=message or f"HTTP {response.status_code}",
                      returncode=response.status_code, command=(command,))
