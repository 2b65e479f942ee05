"""Per-request plumbing and operational endpoints: request id, access log, metrics, headers."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

import flask
from flask import Blueprint, Flask, abort, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from taskmesh_common.logging import request_id_var

from taskmesh_web.context import web

access_logger = logging.getLogger("taskmesh.access")

# A registry of our own: the same metric names as the API services, no clash when imported together.
REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)
GCCollector(registry=REGISTRY)
HTTP_REQUESTS = Counter(
    "http_requests_total", "HTTP requests handled", ["method", "route", "status"], registry=REGISTRY
)
HTTP_LATENCY = Histogram(
    "http_request_duration_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
    registry=REGISTRY,
)
HTTP_IN_FLIGHT = Gauge("http_requests_in_flight", "HTTP requests being handled", registry=REGISTRY)

_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
_UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "object-src 'none'",
    ]
)

ops = Blueprint("ops", __name__)


def _begin() -> None:
    incoming = request.headers.get("X-Request-ID")
    request_id = incoming if incoming and _VALID_REQUEST_ID.match(incoming) else uuid.uuid4().hex
    g.request_id = request_id
    g.request_id_token = request_id_var.set(request_id)
    g.started = time.perf_counter()
    HTTP_IN_FLIGHT.inc()


def _refuse_cross_site() -> None:
    # SameSite=Lax already keeps the session cookie off cross-site POSTs; this refuses them
    # outright, before any form is read, when the browser says where the request came from.
    if request.method not in _UNSAFE_METHODS:
        return
    if request.headers.get("Sec-Fetch-Site") == "cross-site":
        abort(403, "Cross-site requests are not accepted.")
    origin = request.headers.get("Origin")
    if origin is None:
        return
    own = {web().settings.public_origin, request.host_url.rstrip("/")}
    if origin not in own:
        abort(403, "Cross-site requests are not accepted.")


def _finish(response: flask.Response) -> flask.Response:
    headers = response.headers
    headers["X-Request-ID"] = g.get("request_id", "")
    headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
    headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    if request.endpoint != "static":
        # Pages show one user's data: never store them in shared or browser caches.
        headers.setdefault("Cache-Control", "no-store")
    response.vary.add("HX-Request")
    return response


def _end(_: BaseException | None) -> None:
    started = g.pop("started", None)
    if started is None:
        return
    HTTP_IN_FLIGHT.dec()
    elapsed = time.perf_counter() - started
    route = request.url_rule.rule if request.url_rule is not None else "unmatched"
    status = g.pop("status", 500)
    HTTP_REQUESTS.labels(request.method, route, str(status)).inc()
    HTTP_LATENCY.labels(request.method, route).observe(elapsed)
    if request.path not in _QUIET_PATHS:
        access_logger.info(
            "request",
            extra={
                "method": request.method,
                "path": request.path,
                "route": route,
                "status": status,
                "duration_ms": round(elapsed * 1000, 2),
            },
        )
    token = g.pop("request_id_token", None)
    if token is not None:
        request_id_var.reset(token)


def _remember_status(response: flask.Response) -> flask.Response:
    g.status = response.status_code
    return response


def install(app: Flask) -> None:
    """Wire the request hooks and the operational endpoints into `app`."""
    app.before_request(_begin)
    app.before_request(_refuse_cross_site)
    app.after_request(_finish)
    app.after_request(_remember_status)
    app.teardown_request(_end)
    app.register_blueprint(ops)


@ops.get("/healthz")
def healthz() -> dict[str, Any]:
    """Liveness: the process answers; no dependencies are consulted."""
    return {"status": "ok"}


@ops.get("/readyz")
def readyz() -> tuple[dict[str, Any], int]:
    """Readiness: Redis, auth and tasks must answer; activity is reported but optional."""
    context = web()
    checks: dict[str, Callable[[], object]] = {
        "redis": lambda: context.redis.ping(),
        "auth": lambda: context.backend.ping(context.backend.auth_url),
        "tasks": lambda: context.backend.ping(context.backend.tasks_url),
        "activity": lambda: context.backend.ping(context.backend.activity_url),
    }
    report: dict[str, Any] = {}
    for name, check in checks.items():
        started = time.perf_counter()
        try:
            check()
        except Exception as exc:  # any failure means "not ready"
            report[name] = {"status": "fail", "error": type(exc).__name__}
        else:
            elapsed = round((time.perf_counter() - started) * 1000, 2)
            report[name] = {"status": "ok", "duration_ms": elapsed}
    # The board works without the activity panel, so activity alone never makes us unready.
    ready = all(report[name]["status"] == "ok" for name in ("redis", "auth", "tasks"))
    return {"status": "ok" if ready else "fail", "checks": report}, 200 if ready else 503


@ops.get("/metrics")
def metrics() -> flask.Response:
    """This worker's metrics in the Prometheus text format."""
    return flask.Response(generate_latest(REGISTRY), mimetype=CONTENT_TYPE_LATEST)
