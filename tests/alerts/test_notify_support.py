"""Helpers for the notification tests (no tests here): a fake clock, a capturing HTTP receiver
on 127.0.0.1 whose answers can be scripted (503 then 200), and config/alert builders."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from alerts.model import Alert
from alerts.notify import config as alerting_config


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


class CaptureServer:
    """Records every POST; answers with ``statuses`` in turn (the last one repeats)."""

    def __init__(self, statuses=(200,)) -> None:
        self.statuses = list(statuses)
        self.requests: list[dict] = []
        self.received = threading.Condition()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                with outer.received:
                    status = outer.statuses.pop(0) if len(outer.statuses) > 1 else outer.statuses[0]
                    outer.requests.append({"path": self.path, "headers": dict(self.headers), "body": body,
                                           "status": status})
                    outer.received.notify_all()
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
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
