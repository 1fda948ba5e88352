"""The parameters of a Prometheus API request, read as Prometheus reads them, and bounded.

GET query strings and POST form bodies are merged (Grafana posts forms). A form body is read
only up to ``MAX_FORM_BYTES`` (a declared ``Content-Length`` over it is refused before a byte is
read; a streamed one when it passes it): a 20 MB form used to take the server to 3.7 GB. 1 MiB
holds the longest query the engine accepts (256 Ki characters, ``tsdb.promql.querytext``) with
room for its percent-encoding and a page of ``match[]``s, and is the front door's own limit for
these routes. What was read is decoded as UTF-8 with bad bytes replaced, as Go reads them: the
parser then names the character, as Prometheus's does.

Times and durations follow Prometheus's ``parseTime``/``parseDuration``, with the bounds it
leaves out: a time must lie within its MinTime..MaxTime (int64 milliseconds), so ``1e300`` or
``NaN`` is a ``bad_data``, never an overflow deeper in.
"""
from __future__ import annotations

import math
import re
from datetime import datetime
from urllib.parse import parse_qsl

from fastapi import Request

from cwkernel.durations import parse_duration
from tsdb.promql.values import PromQLError, bad_data

MAX_FORM_BYTES = 1 << 20
MAX_FORM_FIELDS = 10_000
# Prometheus's MinTime and MaxTime (model/timestamp), in seconds.
MIN_TIME_S = -9_223_309_901_257_974.0
MAX_TIME_S = 9_223_309_901_257_974.0
_MAX_DURATION_S = (2**63 - 1) / 1e9  # time.Duration: int64 nanoseconds
_INTEGER = re.compile(r"[+-]?[0-9]+")
_FORM = "application/x-www-form-urlencoded"


class FormTooLarge(PromQLError):
    """413 in Prometheus's error shape."""

    status = 413

    def __init__(self) -> None:
        super().__init__(f"request body too large: the form is over {MAX_FORM_BYTES >> 20} MiB", "bad_data",
                         limit="form_size")


class Params:
    """Query-string and form parameters merged; ``match[]`` may repeat."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._pairs = pairs

    @classmethod
    async def of(cls, request: Request) -> "Params":
        pairs = list(request.query_params.multi_items())
        if request.method == "POST" and _FORM in request.headers.get("content-type", ""):
            body = await read_bounded(request, MAX_FORM_BYTES)
            try:
                pairs += parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True,
                                   max_num_fields=MAX_FORM_FIELDS)
            except ValueError:
                raise bad_data(f"cannot parse the form: more than {MAX_FORM_FIELDS:,} fields") from None
        return cls(pairs)

    def get(self, name: str) -> str | None:
        values = self.all(name)
        return values[0] if values else None

    def all(self, name: str) -> list[str]:
        return [v for k, v in self._pairs if k == name]

    def required(self, name: str) -> str:
        value = self.get(name)
        if value is None or value == "":
            raise bad_data(f"invalid parameter \"{name}\": missing")
        return value

    def time(self, name: str, default: float) -> float:
        text = self.get(name)
        return default if text in (None, "") else parse_time(text, name)

    def duration(self, name: str) -> float | None:
        """Seconds (a float or a Prometheus duration), None when absent; NaN passes, as in Go."""
        text = self.get(name)
        return None if text in (None, "") else parse_duration_param(text, name)

    def timeout(self) -> float | None:
        """Prometheus's ``timeout``: seconds, or None for the server's own. Where Prometheus times
        a query out at once for a zero or negative one, it is refused here, as NaN is."""
        seconds = self.duration("timeout")
        if seconds is not None and math.isnan(seconds):
            raise bad_data(f'invalid parameter "timeout": cannot parse "{self.get("timeout")}" to a valid duration')
        if seconds is not None and seconds <= 0:
            raise bad_data('invalid parameter "timeout": zero or negative timeouts are not accepted')
        return seconds

    def limit(self) -> int | None:
        """Prometheus's ``limit``: an int64, negative or absent for none."""
        text = self.get("limit")
        if text in (None, ""):
            return None
        if not _INTEGER.fullmatch(text) or not -(2**63) <= int(text) < 2**63:
            raise bad_data("limit must be a number")
        value = int(text)
        return value if value >= 0 else None


async def read_bounded(request: Request, limit: int) -> bytes:
    """The request's body, refused (413) past ``limit`` bytes, declared or streamed."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise FormTooLarge()
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise FormTooLarge()
    return bytes(body)


def parse_time(text: str, name: str) -> float:
    """Unix seconds or RFC 3339, like Prometheus's parseTime, within its MinTime..MaxTime."""
    try:
        value = float(text)
    except ValueError:
        try:
            value = datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
        except (ValueError, OverflowError):
            value = math.nan
    if not MIN_TIME_S <= value <= MAX_TIME_S:  # NaN too
        raise bad_data(f'invalid parameter "{name}": cannot parse "{text}" to a valid timestamp')
    return value


def parse_duration_param(text: str, name: str) -> float:
    """Seconds, as Prometheus's parseDuration: a float, or a duration like ``5m``; past int64
    nanoseconds it "overflows int64"."""
    try:
        seconds = float(text)
    except ValueError:
        try:
            seconds = parse_duration(text)
        except ValueError:
            raise bad_data(f'invalid parameter "{name}": cannot parse "{text}" to a valid duration') from None
    if abs(seconds) > _MAX_DURATION_S:
        raise bad_data(f'invalid parameter "{name}": cannot parse "{text}" to a valid duration. It overflows int64')
    return seconds
