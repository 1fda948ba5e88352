"""``serve``'s HTTP front door: its settings, the descriptor budget, the connection guard and the
uvicorn configuration that puts them together (docs/operations.md, "Limits").

What each request may send once it is in (body sizes, operator credentials before the body) is
the app's middleware (cwkernel/httplimits.py); this module is about connections.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from cwkernel import settings
from cwkernel.admission import Admission
from cwkernel.connections import ConnectionGuard, guarded_protocol
from cwkernel.errors import ConfigError
from cwkernel.fdbudget import DescriptorBudget, open_descriptors, plan, raise_soft_limit
from cwkernel.memguard import MemoryGuard
from cwkernel.settings import Option, positive_int

if TYPE_CHECKING:  # cwkernel.server imports FastAPI: not while the CLI builds its parsers
    from cwkernel.server import Component, Deps

log = logging.getLogger(__name__)

KEEP_ALIVE_S = 5  # uvicorn's idle keep-alive timeout, kept
MAX_HEADER_BYTES = 16 * 1024  # request line and headers; larger is a 400 (h11's own default)


OPTIONS = (
    Option("http_max_connections", 4096, "most inbound HTTP connections open at once (lowered at start to fit the "
           "file descriptor limit); at the cap the connection idle longest is closed", positive_int, "N"),
    Option("http_header_timeout", 10.0, "time a client has to send a request's line and headers", settings.duration,
           "DURATION"),
    Option("http_body_timeout", 60.0, "time a client has to send a request's body once its headers are in",
           settings.duration, "DURATION"),
    Option("http_max_active_requests", 2, "requests of one class (pages and their JSON; Prometheus API queries) "
           "handled at once; more wait their turn (cwkernel/admission.py)", positive_int, "N"),
    Option("http_max_queued_requests", 200, "requests of one class waiting for their turn; more are refused "
           "(503)", positive_int, "N"),
    Option("http_queue_timeout", 10.0, "longest a request waits for its turn before a 503", settings.duration,
           "DURATION"),
    Option("memory_limit", 0, "memory the server holds itself to: past 85 % of it, new pages and queries are "
           "refused with 503 until it is below again, so that the OOM killer does not end the watcher (e.g. 4GiB; "
           "default: its cgroup's memory.max, else the machine's memory)", settings.byte_size, "SIZE"),
    Option("scrape_max_connections", 1024, "most sockets the scraper holds open (idle kept-alive ones included; "
           "lowered at start to fit the file descriptor limit)", positive_int, "N"),
)


def apply_descriptor_budget(values: dict, config=None) -> DescriptorBudget:
    """Raise the soft descriptor limit, share it out, and lower the connection settings in
    ``values`` (and the scraper's in ``config``, a TSDBConfig) to their shares."""
    limit = raise_soft_limit()
    try:
        budget = plan(limit, open_descriptors(), values["http_max_connections"], values["scrape_max_connections"])
    except ValueError as exc:
        raise ConfigError("http_max_connections", str(exc)) from None
    values["http_max_connections"] = budget.inbound
    values["scrape_max_connections"] = budget.scrape
    if config is not None:
        config.scrape_max_connections = budget.scrape
    log.info(budget.describe())
    return budget


def build(values: Mapping[str, Any], deps: Deps) -> Component:
    """The front door as a component: its connection guard, its queues of request work and the
    memory bound they keep, with their metrics and health."""
    from cwkernel.server import Component

    guard = ConnectionGuard(values["http_max_connections"], values["http_header_timeout"], values["http_body_timeout"])
    memory = deps.memory or MemoryGuard.for_setting(values.get("memory_limit", 0))
    log.info("memory limit %s MiB (%s): pages and queries are refused above %s MiB",
             f"{memory.limit_bytes / 2**20:,.0f}", memory.source, f"{memory.high_bytes / 2**20:,.0f}")
    admission = Admission(values["http_max_active_requests"], values["http_max_queued_requests"],
                          values["http_queue_timeout"], memory)
    return Component("http", collectors=[guard, admission, memory],
                     health=lambda: {**guard.problems(), **admission.problems(), **memory.problems()})


def guard_of(components: Iterable) -> ConnectionGuard | None:
    """The connection guard among the server's components (``build_components`` adds it)."""
    return _collector_of(components, ConnectionGuard)


def admission_of(components: Iterable) -> Admission | None:
    """The queues of request work among the server's components, if any (``build_app`` installs them)."""
    return _collector_of(components, Admission)


def _collector_of(components: Iterable, kind: type):
    for component in components:
        for collector in component.collectors:
            if isinstance(collector, kind):
                return collector
    return None


def uvicorn_config(app, guard: ConnectionGuard, budget: DescriptorBudget):
    import uvicorn

    # log_config=None: uvicorn's lines go through the root logger's handlers, where the command
    # set the format and the rate limit (cwkernel/logthrottle.py), instead of its own handlers.
    return uvicorn.Config(app, http=guarded_protocol(guard), backlog=budget.backlog, timeout_keep_alive=KEEP_ALIVE_S,
                          h11_max_incomplete_event_size=MAX_HEADER_BYTES, log_config=None, log_level="warning",
                          access_log=False)
