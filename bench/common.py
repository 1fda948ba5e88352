"""Shared helpers for the benchmarks: percentiles, free ports, process RSS/CPU, HTTP timing."""
from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import statistics
import time
import urllib.request
from pathlib import Path
from typing import Sequence


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation, as numpy's default does."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary_ms(values: Sequence[float]) -> str:
    return (f"p50 {percentile(values, 50) * 1e3:.2f} ms, p99 {percentile(values, 99) * 1e3:.2f} ms, "
            f"mean {statistics.fmean(values) * 1e3:.2f} ms (n={len(values)})")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except Exception:  # noqa: BLE001 - not up yet
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def time_gets(host: str, port: int, path: str, count: int, headers: dict[str, str] | None = None,
              timeout: float = 30) -> tuple[list[float], int]:
    """Latencies of ``count`` sequential GETs on one keep-alive connection (as Prometheus scrapes)
    and the size of the last body."""
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    latencies, size = [], 0
    for _ in range(count):
        start = time.perf_counter()
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        body = response.read()
        latencies.append(time.perf_counter() - start)
        if response.status != 200:
            raise RuntimeError(f"GET {host}:{port}{path} answered {response.status}: {body[:200]!r}")
        size = len(body)
    connection.close()
    return latencies, size


def time_scrapes(host: str, port: int, path: str, count: int) -> tuple[list[float], int]:
    return time_gets(host, port, path, count, {"Accept": "text/plain;version=0.0.4"})


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} not ready after {timeout}s")


def start(argv: list[str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(argv, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
