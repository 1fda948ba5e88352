"""The server's file descriptors, shared out at start so that no use can starve another.

Every inbound connection, every scrape socket, every state file and pipe takes a descriptor from
one per-process limit (RLIMIT_NOFILE). When inbound connections took them all (1,100 half-sent
requests against the usual soft limit of 1,024), the health check could not be accepted and the
scraper could not open a socket, so healthy targets read as down. Hence, at start:

- the soft limit is raised to the hard limit (what systemd or ulimit allows), and logged;
- what the process holds now plus a margin (state databases, outbound notifications, scheduler
  commands, snapshot writes) is kept for the rest of the process;
- the scraper gets its own share (``scrape``: its socket pool never holds more);
- the listening socket's backlog is sized so that one burst of accepts fits too (asyncio accepts
  up to ``backlog`` sockets before any of them reaches the connection guard);
- inbound connections get at most what is left (``inbound``; cwkernel/connections.py
  enforces it), never more than asked for.
"""
from __future__ import annotations

import logging
import os
import resource
from dataclasses import dataclass

log = logging.getLogger(__name__)

# Descriptors kept beyond those open at start, for the rest of the process: at least this many,
# or a sixteenth of the limit (sqlite files per thread, outbound notifications, pipes...).
RESERVE_MARGIN = 64
UNLIMITED_CAP = 1 << 20  # what "unlimited" is taken as (the kernel's default nr_open)
MIN_SCRAPE = 4
MIN_BACKLOG = 16
MAX_BACKLOG = 2048


@dataclass(frozen=True)
class DescriptorBudget:
    limit: int  # the soft RLIMIT_NOFILE in force
    reserve: int  # kept for everything but inbound connections and scrapes
    scrape: int  # sockets the scraper may hold
    backlog: int  # listen backlog (and the most sockets one accept burst can create)
    inbound: int  # concurrent inbound connections

    def describe(self) -> str:
        return (f"file descriptors: limit {self.limit}; at most {self.inbound} inbound connections, "
                f"{self.scrape} scrape connections, listen backlog {self.backlog}, {self.reserve} kept for the rest")


def raise_soft_limit() -> int:
    """The soft RLIMIT_NOFILE raised to the hard limit where allowed; the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = UNLIMITED_CAP if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            log.info("raised the soft file descriptor limit from %d to %d", soft, target)
            soft = target
        except (ValueError, OSError) as exc:
            log.warning("could not raise the soft file descriptor limit from %d to %d: %s", soft, target, exc)
    return UNLIMITED_CAP if soft == resource.RLIM_INFINITY else soft


def open_descriptors() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:  # no procfs: assume a small process
        return 32


def plan(limit: int, open_now: int, inbound_wanted: int, scrape_wanted: int) -> DescriptorBudget:
    """Shares of ``limit`` for the rest of the process, scrapes, the accept backlog and inbound
    connections, in that order of priority; ``ValueError`` when not even a minimum fits."""
    reserve = open_now + max(RESERVE_MARGIN, limit // 16)
    available = limit - reserve
    scrape = min(scrape_wanted, max(MIN_SCRAPE, available // 4))
    backlog = min(MAX_BACKLOG, max(MIN_BACKLOG, available // 8))
    inbound = min(inbound_wanted, available - scrape - backlog)
    if inbound < 1:
        raise ValueError(f"the file descriptor limit {limit} leaves no room for inbound connections "
                         f"({reserve} kept for the process, {scrape} for scrapes, {backlog} for the backlog): "
                         f"raise it (ulimit -n, LimitNOFILE=)")
    return DescriptorBudget(limit, reserve, scrape, backlog, inbound)
