"""Server-side sessions in Redis: the browser holds only an opaque id, never a token."""

from __future__ import annotations

import hashlib
import logging
import secrets
from typing import TYPE_CHECKING, Any

import orjson
import redis
from flask.sessions import SessionInterface, SessionMixin
from werkzeug.datastructures import CallbackDict

if TYPE_CHECKING:
    from flask import Flask, Request, Response

logger = logging.getLogger("taskmesh.web.sessions")

KEY_PREFIX = "taskmesh:web:session:"


class ServerSession(CallbackDict[str, Any], SessionMixin):
    """The session's data; `rotate()` gives it a new id (on sign-in, against fixation)."""

    def __init__(
        self,
        initial: dict[str, Any] | None = None,
        sid: str | None = None,
        *,
        available: bool = True,
    ) -> None:
        def on_update(_: CallbackDict[str, Any]) -> None:
            self.modified = True

        super().__init__(initial or {}, on_update)
        self.sid = sid
        self.new = sid is None
        self.modified = False
        self.available = available
        self.previous_sid: str | None = None

    def rotate(self) -> None:
        """Issue a new id for this data at the next save; the old id stops working."""
        if self.sid is not None and self.previous_sid is None:
            self.previous_sid = self.sid
        self.sid = None
        self.modified = True


def _key(sid: str) -> str:
    # Stored under a hash of the id, so a copy of Redis holds no usable cookie.
    return KEY_PREFIX + hashlib.sha256(sid.encode()).hexdigest()


class RedisSessionInterface(SessionInterface):
    """Loads and saves :class:`ServerSession`s; a Redis outage yields an unavailable session."""

    def __init__(
        self, client: redis.Redis, *, cookie_name: str, secure: bool, ttl_seconds: int
    ) -> None:
        self.client = client
        self.cookie_name = cookie_name
        self.secure = secure
        self.ttl_seconds = ttl_seconds

    def open_session(self, app: Flask, request: Request) -> ServerSession:
        sid = request.cookies.get(self.cookie_name)
        if not sid or len(sid) > 128:
            return ServerSession()
        try:
            raw = self.client.get(_key(sid))
        except redis.RedisError:
            logger.warning("session store unavailable")
            return ServerSession(available=False)
        if raw is None:
            return ServerSession()
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return ServerSession()
        return ServerSession(data if isinstance(data, dict) else {}, sid)

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        if not isinstance(session, ServerSession) or not session.available:
            return
        cookie_args: dict[str, Any] = {
            "path": "/",
            "secure": self.secure,
            "httponly": True,
            "samesite": "Lax",
        }
        try:
            if session.previous_sid is not None:
                self.client.delete(_key(session.previous_sid))
            if not session:
                if session.sid is not None:
                    self.client.delete(_key(session.sid))
                if not session.new or session.previous_sid is not None:
                    response.delete_cookie(self.cookie_name, **cookie_args)
                return
            if session.sid is None:
                session.sid = secrets.token_urlsafe(32)
            elif not session.modified:
                return
            self.client.set(_key(session.sid), orjson.dumps(dict(session)), ex=self.ttl_seconds)
        except redis.RedisError:
            logger.warning("session store unavailable while saving")
            return
        response.set_cookie(self.cookie_name, session.sid, max_age=self.ttl_seconds, **cookie_args)
        response.vary.add("Cookie")
