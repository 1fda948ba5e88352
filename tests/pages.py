"""Exporter-like HTTP targets on 127.0.0.1 for the scraper's tests: each serves exposition pages
by path, over HTTP/1.0 (a new socket per scrape) or HTTP/1.1 (kept alive, as real exporters)."""
from __future__ import annotations

import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Iterator

Pages = Callable[[str], "str | None"]  # path -> exposition text, None for a 404


def _handler(pages: Pages, keep_alive: bool) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1" if keep_alive else "HTTP/1.0"

        def do_GET(self) -> None:  # noqa: N802
            body = pages(self.path)
            if body is None:
                self.send_error(404)
                return
            data = body.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    return Handler


@contextmanager
def page_servers(pages: Pages, count: int = 1, keep_alive: bool = False) -> Iterator[list[str]]:
    """``count`` servers of ``pages``; yields their HOST:PORT, stops them on exit."""
    servers = [ThreadingHTTPServer(("127.0.0.1", 0), _handler(pages, keep_alive)) for _ in range(count)]
    for httpd in servers:  # a short poll: shutdown() waits for it (0.5 s by default, at every test's end)
        threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        yield [f"127.0.0.1:{httpd.server_address[1]}" for httpd in servers]
    finally:
        for httpd in servers:
            httpd.shutdown()
            httpd.server_close()


def one_gauge(path: str) -> str:
    return "gpu_temperature_celsius 40\n"
