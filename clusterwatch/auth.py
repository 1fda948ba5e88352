"""Authentication shared by every router: ``require_operator`` guards the routes that change
state (silences, acknowledgements, drains, approvals).

The token is configured once on the app (``set_operator_token``, from ``--operator-token`` /
CLUSTERWATCH_SERVE_OPERATOR_TOKEN) and compared in constant time. Without a configured token
every state change is refused: an install nobody configured stays read-only.
"""
from __future__ import annotations

import hmac

from fastapi import FastAPI, HTTPException, Request, status

OPERATOR_TOKEN_STATE = "operator_token"


def set_operator_token(app: FastAPI, token: str | None) -> None:
    setattr(app.state, OPERATOR_TOKEN_STATE, token or None)


def bearer_token(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def token_matches(given: str | None, expected: str | None) -> bool:
    if not given or not expected:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


def require_operator(request: Request) -> str:
    """FastAPI dependency: the request must carry ``Authorization: Bearer <operator token>``.
    Returns "operator", the actor name audit records use."""
    expected = getattr(request.app.state, OPERATOR_TOKEN_STATE, None)
    if not expected:
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            "state changes are disabled: no operator token configured (--operator-token)")
    if not token_matches(bearer_token(request), expected):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "operator token required (Authorization: Bearer ...)",
                            headers={"WWW-Authenticate": "Bearer"})
    return "operator"
