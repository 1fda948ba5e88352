"""Reloading configuration files without a restart: SIGHUP or ``POST /-/reload``, as Prometheus.

A restart of the all-in-one server costs a gap in every scrape and a replay of the store, so an
operator who edits a rule file or alerting.yml asks the running server to read it again instead. Each component
with a ``reload`` hook (``Component.reload``) reads its files again and applies them only when
they are all good; one whose files are bad raises ConfigError naming the file and the field and
keeps what it runs (``ReloadHook`` reports the failure as a health problem until a reload succeeds). Reloads
run one at a time, never on the signal handler's stack: SIGHUP asks for one on a thread, and the
signals that come while it runs make one more, not a thread each.

``POST /-/reload`` (or PUT) is an operator action: authenticated before anything else, as every
action here (cwkernel/auth.py); 200 when every component reloaded, 500 with the errors otherwise
(Prometheus's codes). ``clusterwatch_config_last_reload_successful`` and
``clusterwatch_config_last_reload_success_timestamp_seconds`` say how the last one went.
"""
from __future__ import annotations

import logging
import signal
import threading
import time
from typing import Any, Callable, Iterable

from fastapi import APIRouter, Depends
from fastapi.responses import PlainTextResponse
from prometheus_client.core import GaugeMetricFamily

from cwkernel.auth import Operator, require_operator

log = logging.getLogger(__name__)


class ReloadHook:
    """A component's ``reload``: ``apply`` reads its files and applies them, raising ConfigError
    (and changing nothing) when one is bad; the failure stays a health problem of the component
    (``reload_failed``, ``problems``) until a reload succeeds."""

    def __init__(self, apply: Callable[[], Any], what: str) -> None:
        self.apply = apply
        self.what = what
        self.error = ""

    def __call__(self) -> None:
        try:
            self.apply()
        except Exception as exc:
            self.error = str(exc)
            raise
        self.error = ""

    def problems(self) -> dict[str, str]:
        if not self.error:
            return {}
        return {"reload_failed": f"{self.what} could not be reloaded ({self.error}); what was loaded before "
                                 "still runs"}


class Reloader:
    def __init__(self, components: Iterable[Any], clock=time.time) -> None:  # noqa: ANN001 - a clock
        self.components = [c for c in components if getattr(c, "reload", None) is not None]
        self.clock = clock
        self.successful = True
        self.success_time = clock()  # the files loaded at start count, as in Prometheus
        self._lock = threading.Lock()
        self._requests = threading.RLock()
        self._wanted = False
        self._worker: threading.Thread | None = None
        self._previous: Any = None

    def reload(self, by: str = "SIGHUP") -> list[str]:
        """Every component's hook, in order; the errors as ``component: message`` (none: success)."""
        with self._lock:
            errors = []
            for component in self.components:
                try:
                    component.reload()
                except Exception as exc:  # noqa: BLE001 - one component's files must not stop the others'
                    errors.append(f"{component.name}: {exc}")
            self.successful = not errors
            if errors:
                log.error("reload (%s) failed, the previous configuration still runs: %s", by, "; ".join(errors))
            else:
                self.success_time = self.clock()
                log.info("reload (%s): %s reloaded", by, ", ".join(c.name for c in self.components) or "nothing")
            return errors

    def request(self) -> None:
        """A reload as soon as the one under way (if any) ends, on a thread of its own: requests
        that come meanwhile, however many (a signal sent in a loop), make one more reload, not a
        thread each waiting its turn."""
        with self._requests:  # re-entrant: a signal may come while this thread holds it
            self._wanted = True
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._serve_requests, name="reload", daemon=True)
                self._worker.start()

    def _serve_requests(self) -> None:
        while True:
            with self._requests:
                if not self._wanted:
                    return
                self._wanted = False
            self.reload()

    def on_sighup(self) -> None:
        """Reload on SIGHUP (``request``: never on the signal handler's stack). Only the main
        thread may set a handler: an app served in a test's thread has none."""
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGHUP, lambda *_: self.request())

    def off_sighup(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGHUP, self._previous)
            self._previous = None

    def collect(self) -> Iterable[GaugeMetricFamily]:
        yield GaugeMetricFamily("clusterwatch_config_last_reload_successful",
                                "Whether the last reload of the configuration files succeeded (1) or failed (0).",
                                value=1 if self.successful else 0)
        yield GaugeMetricFamily("clusterwatch_config_last_reload_success_timestamp_seconds",
                                "When the configuration files were last loaded successfully (Unix time).",
                                value=self.success_time)


def build_router(reloader: Reloader) -> APIRouter:
    router = APIRouter()

    def reload(operator: Operator = Depends(require_operator)) -> PlainTextResponse:
        errors = reloader.reload(by=f"POST /-/reload by {operator.name}")
        if errors:
            return PlainTextResponse("failed to reload config: " + "; ".join(errors) + "\n", status_code=500)
        return PlainTextResponse("")

    router.add_api_route("/-/reload", reload, methods=["POST", "PUT"], include_in_schema=False)
    return router


def build(values: Any, deps: Any) -> Any:
    """The reload component of ``serve``: over the components built before it that have a
    ``reload`` hook; none when no component has one. Its metrics are ingested with the rest."""
    from cwkernel.server import Component

    reloader = Reloader(deps.components)
    if not reloader.components:
        return None
    return Component("reload", routers=[build_router(reloader)], start=reloader.on_sighup,
                     stop=reloader.off_sighup, collectors=[reloader])
