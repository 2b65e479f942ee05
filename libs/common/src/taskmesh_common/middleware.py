"""ASGI middleware: request id propagation, one access-log line and metrics per request."""

from __future__ import annotations

import logging
import os
import re
import time
from typing import TYPE_CHECKING

from taskmesh_common.logging import request_id_var
from taskmesh_common.metrics import HTTP_IN_FLIGHT, HTTP_LATENCY, HTTP_REQUESTS

if TYPE_CHECKING:
    from prometheus_client import Counter, Histogram
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_ID_HEADER = "x-request-id"
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

access_logger = logging.getLogger("taskmesh.access")
# Label sets seen so far, so a request skips prometheus_client's locked label lookup. Methods
# come from clients, so the caches stop growing at this size (later sets are looked up).
_MAX_CACHED_LABELS = 1000
_counters: dict[tuple[str, str, int], Counter] = {}
_histograms: dict[tuple[str, str], Histogram] = {}


def _observe(method: str, template: str, status: int, elapsed: float) -> None:
    counter = _counters.get((method, template, status))
    if counter is None:
        counter = HTTP_REQUESTS.labels(method, template, str(status))
        if len(_counters) < _MAX_CACHED_LABELS:
            _counters[method, template, status] = counter
    counter.inc()
    histogram = _histograms.get((method, template))
    if histogram is None:
        histogram = HTTP_LATENCY.labels(method, template)
        if len(_histograms) < _MAX_CACHED_LABELS:
            _histograms[method, template] = histogram
    histogram.observe(elapsed)


def accept_request_id(value: str | None) -> str:
    """Keep a well-formed incoming request id, otherwise mint a new one."""
    if value and _VALID_REQUEST_ID.match(value):
        return value
    return new_request_id()


def new_request_id() -> str:
    """A random (version 4) UUID as 32 hex digits, as `uuid.uuid4().hex` but without its object."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    return raw.hex()


class RequestContextMiddleware:
    """Sets the request id context, echoes `X-Request-ID`, logs and measures each request."""

    def __init__(self, app: ASGIApp, *, quiet_paths: frozenset[str] = frozenset()) -> None:
        self.app = app
        self.quiet_paths = quiet_paths or frozenset({"/healthz", "/readyz", "/metrics"})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                incoming = value.decode("latin-1")
                break
        request_id = accept_request_id(incoming)
        token = request_id_var.set(request_id)
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500
        started = time.perf_counter()
        HTTP_IN_FLIGHT.inc()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            HTTP_IN_FLIGHT.dec()
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope["method"]
            _observe(method, template, status, elapsed)
            path = scope["path"]
            if path not in self.quiet_paths:
                access_logger.info(
                    "request",
                    extra={
                        "method": method,
                        "path": path,
                        "route": template,
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 2),
                    },
                )
            request_id_var.reset(token)
