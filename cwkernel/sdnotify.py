"""systemd's service notifications (sd_notify(3)), so that systemd restarts a wedged server.

Under a unit of ``Type=notify`` (deploy/systemd/clusterwatch-server.service) systemd passes
``NOTIFY_SOCKET``, and with ``WatchdogSec=`` also ``WATCHDOG_USEC`` (and ``WATCHDOG_PID``). The
server then says ``READY=1`` once its components have started (so ``systemctl start`` returns when
it watches, and units ordered after it start then), ``WATCHDOG=1`` every half watchdog interval
while every component's loops come round (``Component.stalled``, cwkernel/loopwatch.py), and
``STOPPING=1`` when it stops. A stalled loop withholds the ping and says why in ``STATUS=``
(``systemctl status`` shows it): systemd kills the process once the interval passes and
``Restart=`` starts it again from its state directory, snapshot and write-ahead log. The
heartbeat (alerts/notify/heartbeat.py) tells someone outside the machine; this mends what a
restart can mend without anyone.

The protocol is one datagram per message on a Unix socket (``@`` for Linux's abstract namespace);
no library is needed. Without ``NOTIFY_SOCKET`` (not under systemd) nothing is built.
"""
from __future__ import annotations

import logging
import os
import socket
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping

from cwkernel.health import stalled_in
from cwkernel.periodic import Periodic

if TYPE_CHECKING:
    from cwkernel.server import Component, Deps

log = logging.getLogger(__name__)


class Notifier:
    """Messages to systemd's notification socket; a send that fails is logged once, never raised:
    the watching must not stop because systemd's socket went away."""

    def __init__(self, address: str) -> None:
        # "@name" is an abstract socket: its name starts with a NUL byte.
        self.address = "\0" + address[1:] if address.startswith("@") else address
        self._failed = False

    def send(self, *lines: str) -> bool:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.sendto("\n".join(lines).encode(), self.address)
        except OSError as exc:
            if not self._failed:
                log.warning("systemd notification to %s failed: %s", self.address.lstrip("\0"), exc)
            self._failed = True
            return False
        self._failed = False
        return True


class Watchdog:
    """``ping()`` once: ``WATCHDOG=1`` if no component has a stalled loop, else the reason in
    ``STATUS=``; ``start``/``stop`` a thread that pings every ``interval`` seconds."""

    def __init__(self, notifier: Notifier, interval: float, components: Iterable[Any]) -> None:
        self.notifier = notifier
        self.interval = interval
        self.components = list(components)
        self._periodic = Periodic("systemd-watchdog", interval, self.ping)
        self._withholding = False

    def ping(self) -> bool:
        stalled = stalled_in(self.components)
        if stalled:
            if not self._withholding:
                log.error("systemd watchdog withheld, so that systemd restarts the server: %s",
                          "; ".join(stalled.values()))
            self._withholding = True
            self.notifier.send(f"STATUS=watchdog withheld: {'; '.join(stalled.values())}"[:1024])
            return False
        lines = ["WATCHDOG=1"] + (["STATUS=watching"] if self._withholding else [])
        self._withholding = False
        return self.notifier.send(*lines)

    def start(self) -> None:
        self._periodic.start()

    def stop(self) -> None:
        self._periodic.stop()


def watchdog_interval(environ: Mapping[str, str], pid: int) -> float | None:
    """Seconds between pings (half of systemd's ``WATCHDOG_USEC``), or None: no watchdog, or one
    meant for another process (``WATCHDOG_PID``)."""
    try:
        usec = int(environ.get("WATCHDOG_USEC", ""))
        meant_for = int(environ.get("WATCHDOG_PID", pid))
    except ValueError:
        return None
    return usec / 2e6 if usec > 0 and meant_for == pid else None


def build(values: Mapping[str, Any], deps: Deps,
          environ: Mapping[str, str] = os.environ, pid: Callable[[], int] = os.getpid) -> Component | None:
    """None outside systemd (no ``NOTIFY_SOCKET``); else a component that says ready when the
    components before it have started, pings the watchdog while their loops come round, and
    says stopping."""
    from cwkernel.server import Component  # cwkernel.server names this module's types

    address = environ.get("NOTIFY_SOCKET", "")
    if not address:
        return None
    notifier = Notifier(address)
    interval = watchdog_interval(environ, pid())
    watchdog = Watchdog(notifier, interval, deps.components) if interval else None

    def start() -> None:
        notifier.send("READY=1", "STATUS=watching")
        if watchdog is not None:
            watchdog.start()

    def stop() -> None:
        notifier.send("STOPPING=1")
        if watchdog is not None:
            watchdog.stop()

    return Component("systemd", start=start, stop=stop)
