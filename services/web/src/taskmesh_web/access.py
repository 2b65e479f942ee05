"""The signed-in user's tokens: kept server-side, refreshed transparently, revoked on sign-out."""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
import redis
from flask import session
from taskmesh_common.logging import security_event

from taskmesh_web.clients import (
    BackendError,
    BackendUnavailable,
    InvalidInput,
    NotAuthenticated,
    TokenPair,
    User,
)
from taskmesh_web.context import web
from taskmesh_web.sessions import ServerSession

logger = logging.getLogger("taskmesh.web.access")

T = TypeVar("T")

LOGIN_PREFIX = "taskmesh:web:login:"
# Refresh a little before expiry so a request never starts with a token about to lapse.
EXPIRY_MARGIN_SECONDS = 30


class SignInRequired(Exception):  # noqa: N818 - names the outcome, as the UI says it
    """There is no usable sign-in for this browser session."""


@dataclass(frozen=True)
class Account:
    """Who is signed in, as the pages show it."""

    id: str
    email: str
    display_name: str


@dataclass(frozen=True)
class _Tokens:
    access: str
    refresh: str
    expires_at: float

    @classmethod
    def from_pair(cls, pair: TokenPair) -> _Tokens:
        return cls(pair.access_token, pair.refresh_token, time.time() + pair.expires_in)


def current_account() -> Account | None:
    """The signed-in account of this session, if any."""
    user = session.get("user")
    if not isinstance(user, dict) or not session.get("login"):
        return None
    return Account(id=user["id"], email=user["email"], display_name=user["display_name"])


def start(user: User, pair: TokenPair) -> None:
    """Sign `user` in: a new session id, a new login record holding the tokens."""
    login = secrets.token_urlsafe(24)
    _store(login, _Tokens.from_pair(pair))
    session.clear()
    if isinstance(session, ServerSession):
        session.rotate()
    session["login"] = login
    session["user"] = {"id": user.id, "email": user.email, "display_name": user.display_name}
    security_event(logger, "web.signed_in", user_id=user.id)


def end() -> None:
    """Sign out: revoke the refresh token at auth and forget everything."""
    login = session.get("login")
    if isinstance(login, str):
        tokens = _load(login)
        if tokens is not None:
            try:
                web().backend.logout(refresh_token=tokens.refresh)
            except BackendError as exc:
                # The local session ends regardless; auth expires the token on its own.
                logger.warning("refresh token revocation failed", extra={"status": exc.status})
        web().redis.delete(LOGIN_PREFIX + login)
    user = session.get("user")
    session.clear()
    if isinstance(user, dict):
        security_event(logger, "web.signed_out", user_id=user.get("id"))


def replace_tokens(pair: TokenPair) -> None:
    """Store a new token pair for the current login (after a password change)."""
    login = session.get("login")
    if not isinstance(login, str):
        raise SignInRequired
    _store(login, _Tokens.from_pair(pair))


def with_token(call: Callable[[str], T], *, retry_refused: bool = True) -> T:
    """Run `call(access_token)`, refreshing the token first if it is due or once if refused.

    Calls that check a password answer 401 for a wrong one; they pass `retry_refused=False`.
    """
    login = session.get("login")
    if not isinstance(login, str):
        raise SignInRequired
    tokens = _load(login)
    if tokens is None:
        raise SignInRequired
    if tokens.expires_at - EXPIRY_MARGIN_SECONDS < time.time():
        tokens = _refresh(login, stale=tokens.access)
    try:
        return call(tokens.access)
    except NotAuthenticated:
        if not retry_refused:
            raise
        tokens = _refresh(login, stale=tokens.access)
    return call(tokens.access)


def _refresh(login: str, *, stale: str) -> _Tokens:
    # Refresh tokens rotate and auth treats reuse as theft, so concurrent requests of one
    # session must refresh once: the lock serialises them and the loser uses the winner's pair.
    lock = web().redis.lock(f"{LOGIN_PREFIX}{login}:lock", timeout=15, blocking_timeout=10)
    try:
        acquired = lock.acquire()
    except redis.RedisError as exc:
        raise BackendUnavailable(503, "The session store is unavailable.") from exc
    if not acquired:
        raise BackendUnavailable(503, "Could not renew the session in time.")
    try:
        current = _load(login)
        if current is None:
            raise SignInRequired
        if current.access != stale:
            return current
        try:
            pair = web().backend.refresh(refresh_token=current.refresh)
        except (NotAuthenticated, InvalidInput) as exc:
            web().redis.delete(LOGIN_PREFIX + login)
            raise SignInRequired from exc
        fresh = _Tokens.from_pair(pair)
        _store(login, fresh)
        return fresh
    finally:
        try:
            lock.release()
        except redis.RedisError:
            logger.warning("refresh lock release failed")


def _store(login: str, tokens: _Tokens) -> None:
    data: dict[str, Any] = {"a": tokens.access, "r": tokens.refresh, "e": tokens.expires_at}
    ttl = web().settings.session_ttl_seconds
    web().redis.set(LOGIN_PREFIX + login, orjson.dumps(data), ex=ttl)


def _load(login: str) -> _Tokens | None:
    raw = web().redis.get(LOGIN_PREFIX + login)
    if raw is None:
        return None
    data = orjson.loads(raw)
    return _Tokens(access=data["a"], refresh=data["r"], expires_at=float(data["e"]))
