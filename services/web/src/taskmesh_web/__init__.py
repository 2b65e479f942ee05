"""Taskmesh web service: the browser UI, a Flask app served by gunicorn."""

from __future__ import annotations

import atexit
import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import date

import httpx
import redis
from flask import Flask, abort, request, session
from flask_wtf.csrf import CSRFProtect
from taskmesh_common.logging import configure_logging

from taskmesh_web import blank_fields, errors, ops
from taskmesh_web.access import current_account
from taskmesh_web.auth import auth
from taskmesh_web.board import board
from taskmesh_web.clients import Backend
from taskmesh_web.config import WebSettings
from taskmesh_web.context import EXTENSION, WebContext
from taskmesh_web.forms import SignOutForm
from taskmesh_web.sessions import RedisSessionInterface, ServerSession

__all__ = ["create_app"]


def create_app(
    settings: WebSettings | None = None, *, transport: httpx.BaseTransport | None = None
) -> Flask:
    """Build the app; `transport` replaces the network in tests."""
    settings = settings or WebSettings()
    configure_logging("web", settings.log_level)
    # One access line per request comes from `ops`; httpx's own line per backend call is noise.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=settings.secret_key.get_secret_value(),
        # A form stays valid for the session's life; the session itself expires.
        WTF_CSRF_TIME_LIMIT=None,
        MAX_CONTENT_LENGTH=256 * 1024,
        SESSION_COOKIE_NAME=settings.session_cookie_name,
        TEMPLATES_AUTO_RELOAD=False,
    )
    client = redis.Redis.from_url(
        settings.redis_url, socket_timeout=2, socket_connect_timeout=2, health_check_interval=30
    )
    backend = Backend(
        auth_url=settings.auth_url,
        tasks_url=settings.tasks_url,
        activity_url=settings.activity_url,
        timeout=settings.backend_timeout_seconds,
        retries=settings.backend_retries,
        transport=transport,
    )
    # Pages that need several backends ask them at once rather than one after another.
    pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="backend")
    atexit.register(backend.close)
    atexit.register(pool.shutdown, wait=False)
    app.extensions[EXTENSION] = WebContext(
        settings=settings, backend=backend, redis=client, pool=pool
    )
    app.session_interface = RedisSessionInterface(
        client,
        cookie_name=settings.session_cookie_name,
        secure=settings.secure_cookies,
        ttl_seconds=settings.session_ttl_seconds,
    )
    CSRFProtect(app)
    ops.install(app)
    blank_fields.install(app)
    errors.install(app)
    app.before_request(_require_session_store)
    app.register_blueprint(auth)
    app.register_blueprint(board)

    @app.context_processor
    def layout() -> dict[str, object]:
        return {
            "account": current_account(),
            "signout_form": SignOutForm(),
            "today": date.today(),
        }

    return app


def _require_session_store() -> None:
    if request.endpoint in {"static", "ops.healthz", "ops.readyz", "ops.metrics"}:
        return
    if isinstance(session, ServerSession) and not session.available:
        abort(503)
