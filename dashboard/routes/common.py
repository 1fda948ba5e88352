"""What every router shares: turning view failures into clear HTTP errors."""
from __future__ import annotations

from typing import Callable, TypeVar

from fastapi import HTTPException

from tsdb.client import QueryError

T = TypeVar("T")


def run_view(compute: Callable[[], T]) -> T:
    """Compute a view model; unknown subjects are 404, a failing query backend 502 with its error."""
    try:
        return compute()
    except LookupError as exc:
        raise HTTPException(404, str(exc.args[0] if exc.args else exc)) from None
    except QueryError as exc:
        raise HTTPException(502, f"metrics query failed: {exc}") from None
