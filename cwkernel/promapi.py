"""The envelope of Prometheus's HTTP API, for every route that answers in its shape.

``{"status": "success", "data": ...}``, or ``{"status": "error", "errorType": ..., "error": ...}``
with the status code Prometheus gives that error type (``bad_data`` 400, ``execution`` 422, ...).
Grafana and Prometheus's client libraries read the error's text from there, so the query API
(``tsdb``) and the rules API (``alerts``) answer alike.
"""
from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

ERROR_STATUS = {"bad_data": 400, "execution": 422, "timeout": 503, "canceled": 503, "unavailable": 503,
                "internal": 500}


def success(data: Any) -> JSONResponse:
    return JSONResponse({"status": "success", "data": data})


def failure(error_type: str, message: str, status: int | None = None) -> JSONResponse:
    return JSONResponse({"status": "error", "errorType": error_type, "error": message},
                        status_code=status or ERROR_STATUS.get(error_type, 500))
