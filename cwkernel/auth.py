"""Operator authentication for every state-changing route (drain, resume, silence, ack, approve).

The admin configures operators as ``name:secret`` pairs (``CLUSTERWATCH_OPERATORS``, comma
separated; or ``CLUSTERWATCH_OPERATOR_TOKEN`` alone for one operator called ``operator``). A
request proves it is an operator with ``Authorization: Bearer <secret>`` or
``Authorization: Basic <name:secret>``. Why these choices:

- CSRF: the credential travels in a header the page's script sets, never in a cookie a browser
  attaches by itself. No ``WWW-Authenticate: Basic`` challenge is sent, so browsers never cache
  basic credentials and replay them on cross-site requests either.
- Secrets are compared with ``hmac.compare_digest`` (constant time) against every configured
  operator, and never logged or echoed: errors say what was missing, not what was sent.
- No operator configured means actions are off (403), never open.

Routes declare ``operator: Operator = Depends(require_operator)``; the app factory installs the
``OperatorAuth`` set on ``app.state.operator_auth`` (``install``), else the environment's.
"""
from __future__ import annotations

import base64
import binascii
import hmac
import os
from dataclasses import dataclass
from typing import Mapping

from fastapi import HTTPException, Request

ENV_OPERATORS = "CLUSTERWATCH_OPERATORS"
ENV_TOKEN = "CLUSTERWATCH_OPERATOR_TOKEN"


@dataclass(frozen=True)
class Operator:
    """Who acted: ``name`` goes into audit records as the actor."""

    name: str
    method: str  # "bearer" or "basic"


class OperatorAuth:
    def __init__(self, operators: Mapping[str, str]) -> None:
        for name, secret in operators.items():
            if not name or not secret:
                raise ValueError("every operator needs a name and a non-empty secret")
        self._operators = {name: secret.encode() for name, secret in operators.items()}

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "OperatorAuth":
        """The environment's operators; ValueError naming the variable (never a secret) when malformed."""
        environ = os.environ if environ is None else environ
        operators: dict[str, str] = {}
        for position, pair in enumerate(filter(None, (p.strip() for p in environ.get(ENV_OPERATORS, "").split(","))), 1):
            name, sep, secret = (part.strip() for part in pair.partition(":"))
            if not sep or not name or not secret:
                raise ValueError(f"{ENV_OPERATORS}: entry {position} is not name:secret with both parts non-empty "
                                 f"(comma-separated name:secret pairs)")
            if name in operators:
                raise ValueError(f"{ENV_OPERATORS}: operator {name!r} is listed twice")
            operators[name] = secret
        if environ.get(ENV_TOKEN):
            operators.setdefault("operator", environ[ENV_TOKEN])
        return cls(operators)

    @property
    def enabled(self) -> bool:
        return bool(self._operators)

    def _match(self, secret: bytes, name: str | None = None) -> str | None:
        found = None
        # Compare against every operator (not stopping at a hit) so timing says nothing about which.
        for candidate, expected in self._operators.items():
            same = hmac.compare_digest(secret, expected)
            if same and (name is None or hmac.compare_digest(name.encode(), candidate.encode())):
                found = found or candidate
        return found

    def authenticate(self, authorization: str | None) -> Operator:
        if not self.enabled:
            raise HTTPException(403, "operator actions are disabled: no operator is configured "
                                     f"(set {ENV_OPERATORS} or {ENV_TOKEN})")
        if not authorization:
            raise HTTPException(401, "operator credentials required: Authorization: Bearer <token> or Basic")
        scheme, _, value = authorization.partition(" ")
        scheme = scheme.lower()
        if scheme == "bearer":
            name = self._match(value.strip().encode())
            if name:
                return Operator(name, "bearer")
        elif scheme == "basic":
            try:
                user, sep, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                user, sep, password = "", "", ""
            name = self._match(password.encode(), user) if sep else None
            if name:
                return Operator(name, "basic")
        else:
            raise HTTPException(401, "unsupported authorization scheme (use Bearer or Basic)")
        raise HTTPException(403, "operator credentials not accepted")


def operators_from_env(environ: Mapping[str, str] | None = None) -> OperatorAuth:
    """For a server's start: the environment's operators, or a ``ConfigError`` naming the
    variable, so that a typo stops the server instead of failing every action later."""
    from cwkernel.errors import ConfigError

    try:
        return OperatorAuth.from_env(environ)
    except ValueError as exc:
        raise ConfigError(ENV_OPERATORS, str(exc).removeprefix(f"{ENV_OPERATORS}: "), "the environment") from None


def install(app, auth: OperatorAuth) -> None:
    """Make ``require_operator`` use ``auth`` in ``app``."""
    app.state.operator_auth = auth


def auth_of(app) -> OperatorAuth:
    """The operators ``app`` accepts: those installed, else the environment's."""
    auth: OperatorAuth | None = getattr(app.state, "operator_auth", None)
    return auth if auth is not None else OperatorAuth.from_env()


def require_operator(request: Request) -> Operator:
    """FastAPI dependency: the authenticated operator, or 401/403."""
    return auth_of(request.app).authenticate(request.headers.get("authorization"))


def needs_operator(dependant) -> bool:
    """Whether a route's dependency tree (FastAPI's ``route.dependant``) includes ``require_operator``."""
    return dependant.call is require_operator or any(needs_operator(d) for d in dependant.dependencies)
