"""A node's exporter cannot be made to look down by connections it never gets a request on.

Anything on the node's network can open connections to the exporter's port. Observed before:
each connection held a thread until its client went away, with no limit; 400 half-sent requests
against an exporter whose descriptor limit is 160 (systemd's default soft limit is 1,024) took
every descriptor, its accept failed, and the scraper's own connection waited in the backlog
until its scrape timed out: the node read as ``up == 0``, the first step of a false
``ExporterDown`` and of a healthy node drained.
"""
from __future__ import annotations

import sys
import time

import httpx
import pytest

from bench.flood import HalfOpenFlood
from tests.realcomponents import ManagedProcess, free_port, wait_http

pytestmark = pytest.mark.real_component

FD_LIMIT = 160
FLOOD = 400
FLOOD_SECONDS = 10.0
LIMITED_EXPORTER = ("import resource, runpy, sys; resource.setrlimit(resource.RLIMIT_NOFILE, ({0}, {0})); "
                    "sys.argv = ['clusterwatch'] + sys.argv[1:]; runpy.run_module('clusterwatch', run_name='__main__')")


def test_half_open_flood_leaves_the_scrapes_of_an_exporter_alone(tmp_path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    proc = ManagedProcess([sys.executable, "-c", LIMITED_EXPORTER.format(FD_LIMIT), "exporter", "--backend", "fake",
                           "--listen", f"127.0.0.1:{port}", "--interval", "1s", "--kmsg", ""], tmp_path / "exporter.log")
    try:
        wait_http(url, timeout=60, proc=proc)
        failures: list[str] = []
        scrapes = 0
        with HalfOpenFlood(port, FLOOD) as flood:
            filled = time.monotonic() + 90
            while flood.opened < FLOOD and time.monotonic() < filled:
                time.sleep(0.1)
            deadline = time.monotonic() + FLOOD_SECONDS
            while time.monotonic() < deadline:
                scrapes += 1
                try:  # a new connection each time, as a scraper after the exporter closed its last one
                    response = httpx.get(url, timeout=10, headers={"Connection": "close"})
                    if response.status_code != 200 or b"gpu_" not in response.content:
                        failures.append(f"HTTP {response.status_code}")
                except httpx.HTTPError as exc:
                    failures.append(f"{type(exc).__name__}: {exc}")
                time.sleep(0.25)
            opened = flood.opened
        assert failures == [], f"{len(failures)} of {scrapes} scrapes failed during the flood: {failures[:3]}"
        assert opened >= FD_LIMIT, f"the flood opened only {opened} connections"
        assert proc.popen.poll() is None, proc.log_tail()
    finally:
        proc.stop()
