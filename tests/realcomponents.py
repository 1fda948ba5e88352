"""Helpers for tests that start real servers (Prometheus, Alertmanager, Slurm, Chromium, ...).

Rules these helpers enforce: servers bind 127.0.0.1 on a free port, every process is stopped by
its PID when the test ends, a component that is not installed makes the test skip with the
reason, except under ``CI=true`` where a missing component is a failure (CI must really run them),
and a test that starts a process or needs a component carries the ``real_component`` marker (so
that ``make test-fast`` leaves it out): unmarked, it fails saying so.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Sequence

import pytest

# Debian package that provides each binary; `make test` installs these when it can.
PACKAGES = {
    "prometheus": "prometheus",
    "promtool": "prometheus",
    "prometheus-alertmanager": "prometheus-alertmanager",
    "amtool": "prometheus-alertmanager",
    "prometheus-node-exporter": "prometheus-node-exporter",
    "victoria-metrics": "victoria-metrics",
    "vmalert": "victoria-metrics",
    "vmagent": "victoria-metrics",
    "slurmctld": "slurmctld",
    "slurmd": "slurmd",
    "squeue": "slurm-client",
    "munged": "munge",
    "chromium": "chromium",
    "systemd-analyze": "systemd",
}


# The test being set up or run (set by tests/conftest.py before its fixtures).
current_test: pytest.Item | None = None


def require_marker(what: str) -> None:
    """Fail the current test when it is not marked ``real_component``: it starts ``what``."""
    item = current_test
    if item is not None and item.get_closest_marker("real_component") is None:
        pytest.fail(f"{item.nodeid} starts {what}: mark it real_component "
                    "(pytestmark = pytest.mark.real_component), `make test-fast` leaves those out", pytrace=False)


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def require_binary(name: str) -> str:
    """Path of ``name`` on PATH (or in /usr/sbin); skip, or fail under CI, when it is absent."""
    require_marker(name)
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin:/sbin:/bin")
    if path:
        return path
    package = PACKAGES.get(name, name)
    reason = f"{name} not installed (Debian package {package}; `make test` installs it as root)"
    if in_ci():
        pytest.fail(f"CI=true and a real component is missing: {reason}")
    pytest.skip(reason)


def unavailable(reason: str) -> None:
    """Skip (or fail under CI) for a component that is installed but cannot run here."""
    if in_ci():
        pytest.fail(f"CI=true and a real component cannot run: {reason}")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def until(check, timeout: float, what: str):
    """``check()``'s first truthy answer, polled every half second; after ``timeout`` seconds an
    AssertionError naming ``what`` and the last answer (a real component's own pace, not a timer
    the test must beat: timeouts are generous)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


def wait_http(url: str, timeout: float = 20.0, proc: "ManagedProcess | None" = None) -> None:
    """Poll ``url`` until it answers 2xx; fail with the process log when it never does."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.popen.poll() is not None:
            pytest.fail(f"{proc.argv[0]} exited with {proc.popen.returncode}:\n{proc.log_tail()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if 200 <= response.status < 300:
                    return
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready yet"
            last = exc
        time.sleep(0.1)
    tail = proc.log_tail() if proc else ""
    pytest.fail(f"{url} not ready after {timeout}s ({last})\n{tail}")


class ManagedProcess:
    """A server process started for a test; ``stop()`` ends it by PID (TERM, then KILL)."""

    def __init__(self, argv: Sequence[str], log_path: Path, cwd: Path | None = None, env: dict | None = None) -> None:
        require_marker(f"a process ({' '.join(map(str, argv))[:100]})")
        self.argv = list(argv)
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.popen = subprocess.Popen(
            self.argv, stdout=self._log, stderr=subprocess.STDOUT, cwd=cwd,
            env={**os.environ, **(env or {})}, start_new_session=True,
        )
        self.pid = self.popen.pid

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self, timeout: float = 10.0) -> None:
        if self.popen.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.popen.wait(5)
        self._log.close()


@pytest.fixture
def process_factory(tmp_path: Path):
    """Start processes that are stopped by PID when the test ends, whatever its outcome."""
    started: list[ManagedProcess] = []

    def start(argv: Sequence[str], name: str | None = None, **kwargs) -> ManagedProcess:
        log = tmp_path / f"{name or Path(argv[0]).name}-{len(started)}.log"
        proc = ManagedProcess(argv, log, **kwargs)
        started.append(proc)
        return proc

    yield start
    for proc in reversed(started):
        proc.stop()
