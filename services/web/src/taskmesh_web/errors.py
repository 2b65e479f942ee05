"""Friendly error pages: plain words, the right status, never a stack trace."""

from __future__ import annotations

import logging

import redis
from flask import Flask, flash, redirect, render_template, request, session, url_for
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, InternalServerError
from werkzeug.wrappers import Response

from taskmesh_web.access import SignInRequired
from taskmesh_web.clients import (
    BackendError,
    BackendUnavailable,
    Forbidden,
    NotFound,
    RateLimited,
)

logger = logging.getLogger("taskmesh.web.errors")

MESSAGES = {
    400: (
        "That request did not make sense",
        "Something in it was malformed. Go back and try again.",
    ),
    403: (
        "Not allowed",
        "This request was refused. If you submitted a form, reload the page and try again.",
    ),
    404: (
        "Page not found",
        "There is nothing here. It may have been deleted, or the address is wrong.",
    ),
    405: ("Not allowed", "This address does not accept that kind of request."),
    413: ("Too much data", "What you sent is larger than Taskmesh accepts."),
    429: ("Slow down", "Too many requests in a short time. Wait a moment, then try again."),
    500: ("Something went wrong", "An unexpected error happened on our side. It has been logged."),
    503: (
        "Taskmesh is unavailable right now",
        "A part of Taskmesh is not answering. Your data is safe; please try again in a minute.",
    ),
}


def is_htmx_fragment() -> bool:
    """Whether htmx asked for a piece of a page (not a boosted full-page navigation)."""
    return (
        request.headers.get("HX-Request") == "true" and request.headers.get("HX-Boosted") != "true"
    )


def error_page(
    status: int, detail: str | None = None, *, retry_after: int | None = None
) -> Response:
    """Render the error page for `status`."""
    title, message = MESSAGES.get(status, MESSAGES[500] if status >= 500 else MESSAGES[400])
    template = "_error_fragment.html" if is_htmx_fragment() else "error.html"
    body = render_template(template, status=status, title=title, message=message, detail=detail)
    response = Response(body, status=status, mimetype="text/html")
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response


def _http_error(exc: HTTPException) -> Response:
    status = exc.code or 500
    detail = exc.description if status == 403 and exc.description else None
    return error_page(status, detail)


def _csrf_error(exc: CSRFError) -> Response:
    logger.info("csrf check failed", extra={"reason": exc.description})
    return error_page(
        403, "The form had expired or did not come from this site. Reload the page and try again."
    )


def _sign_in_required(_: SignInRequired) -> Response:
    had_account = "user" in session
    session.clear()
    if had_account:
        flash("Your session has ended. Please sign in again.", "info")
    target = url_for("auth.signin", next=request.full_path if request.method == "GET" else None)
    if is_htmx_fragment():
        response = Response("", status=200)
        response.headers["HX-Redirect"] = target
        return response
    return redirect(target, code=303)


def _unavailable(exc: Exception) -> Response:
    logger.warning("dependency unavailable", extra={"error": type(exc).__name__})
    return error_page(503, retry_after=5)


def _rate_limited(exc: RateLimited) -> Response:
    return error_page(429, retry_after=exc.retry_after or 5)


def _not_found(_: NotFound) -> Response:
    return error_page(404)


def _forbidden(_: Forbidden) -> Response:
    return error_page(403)


def _backend_error(exc: BackendError) -> Response:
    # A refusal no page expected (the specific ones are handled where they can happen).
    logger.warning("unexpected backend answer", extra={"status": exc.status})
    return error_page(400 if 400 <= exc.status < 500 else 503)


def _crash(exc: InternalServerError) -> Response:
    original = exc.original_exception
    if isinstance(original, redis.RedisError):
        return _unavailable(original)
    # Flask has already logged the exception with its traceback.
    return error_page(500)


def install(app: Flask) -> None:
    """Register the handlers on `app`."""
    app.register_error_handler(CSRFError, _csrf_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(SignInRequired, _sign_in_required)
    app.register_error_handler(BackendUnavailable, _unavailable)
    app.register_error_handler(redis.RedisError, _unavailable)
    app.register_error_handler(RateLimited, _rate_limited)
    app.register_error_handler(NotFound, _not_found)
    app.register_error_handler(Forbidden, _forbidden)
    app.register_error_handler(BackendError, _backend_error)
    app.register_error_handler(InternalServerError, _crash)
