"""FastAPI's 422 for a request that fails validation, always serialisable.

FastAPI's own handler echoes each bad input back, and its JSON encoder refuses NaN and
infinities, so ``{"reason": NaN}`` (which Python's JSON parser accepts) turned a 422 into a 500
with a traceback in the log. Here the echoed inputs are made JSON-safe first: non-finite numbers
as strings, bytes decoded with replacement, strings cut to ``MAX_ECHO`` characters, nesting cut
at ``MAX_DEPTH``. The answer keeps FastAPI's shape, ``{"detail": [errors...]}``.
"""
from __future__ import annotations

import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

MAX_ECHO = 200
MAX_DEPTH = 8


def json_safe(value: Any, depth: int = 0) -> Any:
    """``value`` with what JSON cannot carry (or should not echo at length) replaced."""
    if depth > MAX_DEPTH:
        return "..."
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if isinstance(value, str):
        return value if len(value) <= MAX_ECHO else value[:MAX_ECHO] + "..."
    if isinstance(value, dict):
        return {str(k)[:MAX_ECHO]: json_safe(v, depth + 1) for k, v in list(value.items())[:50]}
    if isinstance(value, (list, tuple)):
        return [json_safe(v, depth + 1) for v in list(value)[:50]]
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    return json_safe(str(value), depth + 1)


async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    return JSONResponse(status_code=422, content={"detail": jsonable_encoder(json_safe(list(exc.errors())))})


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, validation_error)
