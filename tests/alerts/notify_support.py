"""Helpers for the notification tests (no tests here): a fake clock, a capturing HTTP receiver
on 127.0.0.1 whose answers can be scripted (503 then 200), config/alert builders, an app served by
uvicorn in a thread, and a pipeline on the fake clock with a capturing hook (``Harness``)."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import uvicorn

from alerts.model import Alert
from alerts.notify import config as alerting_config
from alerts.notify.pipeline import Pipeline
from tests.realcomponents import free_port, wait_http


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


class CaptureServer:
    """Records every POST; answers with ``statuses`` in turn (the last one repeats). An answer is a
    status, or a (status, headers) pair: ``(429, {"Retry-After": "120"})``."""

    def __init__(self, statuses=(200,)) -> None:
        self.statuses = list(statuses)
        self.requests: list[dict] = []
        self.received = threading.Condition()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                with outer.received:
                    answer = outer.statuses.pop(0) if len(outer.statuses) > 1 else outer.statuses[0]
                    status, headers = answer if isinstance(answer, tuple) else (answer, {})
                    outer.requests.append({"path": self.path, "headers": dict(self.headers), "body": body,
                                           "status": status})
                    outer.received.notify_all()
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        # A short poll: close() waits for it (0.5 s by default).
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def delivered(self) -> list[dict]:
        """Bodies of the requests answered 2xx."""
        return [json.loads(r["body"]) for r in self.requests if 200 <= r["status"] < 300]

    def wait_for(self, count: int, timeout: float = 10.0) -> None:
        with self.received:
            self.received.wait_for(lambda: len(self.requests) >= count, timeout)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def config(text: str) -> alerting_config.AlertingConfig:
    return alerting_config.parse(text, "test.yml")


def alert(starts_at: float = 0.0, ends_at: float | None = None, **labels: str) -> Alert:
    return Alert(labels=labels, annotations={"summary": f"{labels.get('alertname')} test"}, starts_at=starts_at,
                 ends_at=ends_at)


class ServedApp:
    """An ASGI app served by uvicorn in a thread on a free port of 127.0.0.1."""

    def __init__(self, app) -> None:
        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        wait_http(f"http://127.0.0.1:{self.port}/-/healthy")

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


# ``Harness``'s pipeline: one route to a capturing hook, Alertmanager's timers.
CONFIG = """
global: {resolve_timeout: 1d}  # timer tests: the evaluator is not re-sending
route:
  receiver: hook
  group_by: [alertname]
  group_wait: 30s
  group_interval: 5m
  repeat_interval: 4h
receivers:
  - name: hook
    hook_configs: [{name: capture}]
"""


class Harness:
    """A notification pipeline on a fake clock starting at ``START``; ``sent`` holds what its hook got."""

    def __init__(self, text: str = CONFIG, db=":memory:", clock: Clock | None = None) -> None:
        self.clock = clock or Clock()
        self.sent: list = []
        self.pipeline = Pipeline(config(text), db, clock=self.clock)
        self.pipeline.register_hook("capture", self.sent.append)

    def at(self, seconds: float) -> list:
        """Advance to ``seconds`` after the start, flush and deliver; returns what was sent now."""
        self.clock.now = START + seconds
        before = len(self.sent)
        self.pipeline.flush()
        self.pipeline.deliver()
        return [(n.status, sorted(a.labels.get("instance", "") for a in n.alerts)) for n in self.sent[before:]]


START = Clock().now
