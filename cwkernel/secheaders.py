"""Security headers on every response: a Content-Security-Policy the dashboard's pages satisfy,
no framing, no MIME sniffing, no referrer.

The pages load only their own scripts and styles from /static (no inline script: the view model
travels in a ``<script type="application/json">`` data block, which CSP does not execute), call
only this server's /api, and use a ``data:`` favicon. plotly.js sets style attributes as it draws
(d3's ``.attr("style")``), which CSP counts as inline style, hence ``style-src 'unsafe-inline'``;
scripts stay ``'self'`` only, so an injected ``<script>`` or event-handler attribute does not
run. A route that sets its own header of the same name keeps it.
"""
from __future__ import annotations

from typing import Any, Awaitable, Callable

CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
       "font-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
       "form-action 'self'")
HEADERS = (
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
)


class SecurityHeadersMiddleware:
    """ASGI middleware adding ``HEADERS`` to every HTTP response that lacks them."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Callable[[], Awaitable[dict]],
                       send: Callable[[dict], Awaitable[None]]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", ())}
                message["headers"] = [*message.get("headers", ()), *(h for h in HEADERS if h[0] not in present)]
            await send(message)

        await self.app(scope, receive, send_with_headers)
