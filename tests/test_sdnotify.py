"""Under systemd (deploy/systemd/clusterwatch-server.service, ``Type=notify``, ``WatchdogSec=``)
the server says ready once it watches, pings systemd's watchdog while its loops come round, and
withholds the ping when one is wedged, so that systemd restarts it. Before: no unit for the
server shipped, and a wedged server kept running until someone noticed (the heartbeat tells
someone; nothing mended it). The socket here is a real Unix datagram socket, as systemd's is."""
from __future__ import annotations

import socket
import sys
import time
from pathlib import Path

import pytest

from cwkernel.server import Component, Deps
from cwkernel.sdnotify import Notifier, Watchdog, build, watchdog_interval
from tests.realcomponents import free_port, wait_http

PATIENCE_S = 60.0


@pytest.fixture
def systemd_socket(tmp_path: Path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = tmp_path / "notify.sock"
    sock.bind(str(path))
    sock.settimeout(PATIENCE_S)
    yield sock, str(path)
    sock.close()


def messages_until(sock: socket.socket, wanted: str, limit: int = 50) -> list[str]:
    """Datagrams received until one holds the line ``wanted`` (each datagram's lines joined by |)."""
    seen: list[str] = []
    for _ in range(limit):
        seen.append(sock.recv(4096).decode().replace("\n", "|"))
        if wanted in seen[-1].split("|"):
            return seen
    raise AssertionError(f"no {wanted} in {seen}")


class Loops:
    def __init__(self) -> None:
        self.wedged: dict[str, str] = {}

    def component(self) -> Component:
        return Component("rules", stalled=lambda: self.wedged)


def test_the_watchdog_is_pinged_while_the_loops_come_round_and_withheld_once_one_is_wedged(systemd_socket) -> None:
    sock, path = systemd_socket
    loops = Loops()
    watchdog = Watchdog(Notifier(path), 1.0, [loops.component()])
    assert watchdog.ping()
    assert sock.recv(4096) == b"WATCHDOG=1"
    loops.wedged = {"hardware": "the rule group hardware loop has not come round for 900 s"}
    assert not watchdog.ping()
    status = sock.recv(4096).decode()
    assert status.startswith("STATUS=watchdog withheld: the rule group hardware loop") and "WATCHDOG=1" not in status
    loops.wedged = {}
    assert watchdog.ping()
    assert sock.recv(4096) == b"WATCHDOG=1\nSTATUS=watching"


def test_an_abstract_socket_address_and_a_socket_that_went_away(tmp_path: Path) -> None:
    name = f"clusterwatch-test-{time.monotonic_ns()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        assert Notifier("@" + name).send("READY=1")
        assert sock.recv(64) == b"READY=1"
    assert not Notifier(str(tmp_path / "gone.sock")).send("WATCHDOG=1"), "a failed send is reported, not raised"


def test_the_watchdog_interval_is_half_systemds_and_only_for_this_process() -> None:
    assert watchdog_interval({"WATCHDOG_USEC": "120000000"}, 42) == 60.0
    assert watchdog_interval({"WATCHDOG_USEC": "120000000", "WATCHDOG_PID": "42"}, 42) == 60.0
    assert watchdog_interval({"WATCHDOG_USEC": "120000000", "WATCHDOG_PID": "7"}, 42) is None
    assert watchdog_interval({}, 42) is None
    assert watchdog_interval({"WATCHDOG_USEC": "soon"}, 42) is None
    assert build({}, Deps(), environ={}) is None, "nothing outside systemd"


@pytest.mark.real_component
def test_serve_under_systemd_says_ready_pings_its_watchdog_and_says_stopping(systemd_socket, process_factory) -> None:
    sock, path = systemd_socket
    port = free_port()
    proc = process_factory([sys.executable, "-m", "clusterwatch", "serve", "--listen", f"127.0.0.1:{port}"],
                           name="serve", env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "1000000"})
    first = messages_until(sock, "READY=1")
    assert len(first) == 1 and "STATUS=watching" in first[0]
    wait_http(f"http://127.0.0.1:{port}/-/ready", timeout=30, proc=proc)
    messages_until(sock, "WATCHDOG=1")
    messages_until(sock, "WATCHDOG=1")
    proc.stop(timeout=PATIENCE_S)
    messages_until(sock, "STOPPING=1")
