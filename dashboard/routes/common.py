"""What every router shares: computing a view (failures turned into clear HTTP errors) and
sending a view model as JSON."""
from __future__ import annotations

from typing import Callable, TypeVar

from fastapi import HTTPException, Response
from pydantic import BaseModel

from cwkernel.gcpause import gc_paused
from tsdb.client import QueryError

T = TypeVar("T")


def run_view(compute: Callable[[], T]) -> T:
    """Compute a view model; unknown subjects are 404, a failing query backend 502 with its error.

    The cyclic GC is held off meanwhile (cwkernel/gcpause.py): a view over 16,384 nodes makes and
    drops hundreds of thousands of objects, and a full collection they trigger costs ~1 s there."""
    try:
        with gc_paused():
            return compute()
    except LookupError as exc:
        raise HTTPException(404, str(exc.args[0] if exc.args else exc)) from None
    except QueryError as exc:
        raise HTTPException(502, f"metrics query failed: {exc}") from None


def model_json(model: BaseModel) -> Response:
    """A view model serialised by pydantic-core directly: FastAPI's ``response_model`` path would
    dump it to dicts, validate it again and encode it with json (hundreds of ms for the overview
    of 16,384 nodes or a 512-GPU job). Routes keep ``response_model`` for the OpenAPI schema."""
    return Response(model.model_dump_json(), media_type="application/json")
