"""FastAPI dependencies that turn a bearer token into a typed :class:`Principal`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request

from taskmesh_common.problems import Problem
from taskmesh_common.tokens import Principal, TokenError, TokenVerifier


def _unauthorized(detail: str) -> Problem:
    return Problem(
        401,
        detail,
        headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
    )


async def verify_bearer(verifier: TokenVerifier, header: str) -> Principal:
    """The principal of an `Authorization: Bearer` header value, or a 401 problem."""
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Problem(401, "A bearer token is required.", headers={"WWW-Authenticate": "Bearer"})
    try:
        return await verifier.verify(token.strip())
    except TokenError as exc:
        raise _unauthorized(str(exc)) from exc


async def current_principal(request: Request) -> Principal:
    """Verify the request's bearer token with `app.state.token_verifier`."""
    verifier: TokenVerifier = request.app.state.token_verifier
    return await verify_bearer(verifier, request.headers.get("authorization", ""))


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def require_scope(scope: str) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency that admits only principals whose token grants `scope`."""

    async def dependency(principal: CurrentPrincipal) -> Principal:
        if not principal.has_scope(scope):
            raise Problem(403, f"The token lacks the `{scope}` scope.")
        return principal

    return dependency
