"""The hot routes (get one, list, create) answered without FastAPI's per-request machinery.

FastAPI stays the definition of these operations: their validation, their OpenAPI document and
every error they answer with. This middleware takes only requests it can read completely with a
few strict checks (no `owner`, no unknown or repeated parameter, every value well-formed) and
answers them through the same service functions, response builders and exception handlers as
the routes. Anything else goes to FastAPI untouched (a create's body is replayed), so both paths
answer every request alike; they save the dependency solving, routing and parameter validation
that cost more than the database round trip of a simple read.
"""

from __future__ import annotations

import re
from datetime import date
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import orjson
from fastapi.routing import APIRoute
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response
from taskmesh_common.principals import verify_bearer

from taskmesh_tasks import service
from taskmesh_tasks.repository import TaskFilter
from taskmesh_tasks.routes import (
    CURSOR_PATTERN,
    IDEMPOTENCY_KEY_PATTERN,
    MAX_CURSOR_LENGTH,
    MAX_ETAG_LENGTH,
    MAX_PAGE_SIZE,
    MAX_QUERY_LENGTH,
    QUERY_PATTERN,
    caller_for,
    created_response,
    location_prefix,
    page_response,
    router,
    task_response,
)
from taskmesh_tasks.schemas import (
    MAX_NUMBER,
    MAX_PRIORITY,
    MIN_PRIORITY,
    STATUSES,
    TAG_PATTERN,
    TaskCreate,
)
from taskmesh_tasks.service import SORTS

if TYPE_CHECKING:
    from collections.abc import Callable

    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from taskmesh_tasks.repository import Repository

_ONE_TASK = re.compile(r"/v1/tasks/([1-9][0-9]{0,9})")
# Integers only in their plain spelling: FastAPI parses the others ("05", "+5").
_INTEGER = re.compile(r"[1-9][0-9]{0,9}")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_IDEMPOTENCY_KEY = re.compile(IDEMPOTENCY_KEY_PATTERN)
# The request headers the fast path reads; a repeated one sends the request to FastAPI.
_READ_HEADERS = frozenset({b"authorization", b"if-none-match", b"idempotency-key", b"content-type"})
_FORWARDED_PREFIX = b"x-forwarded-prefix"


class _Defer(Exception):  # noqa: N818 - a signal, not an error
    """The request is not a plain one: FastAPI answers it."""


def _date(value: str) -> date:
    if not _DATE.fullmatch(value):
        raise _Defer
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise _Defer from None


def _text(
    pattern: str, *, min_length: int = 0, max_length: int | None = None
) -> Callable[[str], str]:
    compiled = re.compile(pattern)

    def parse(value: str) -> str:
        too_long = max_length is not None and len(value) > max_length
        if len(value) < min_length or too_long or not compiled.fullmatch(value):
            raise _Defer
        return value

    return parse


def _one_of(allowed: tuple[str, ...]) -> Callable[[str], str]:
    def parse(value: str) -> str:
        if value not in allowed:
            raise _Defer
        return value

    return parse


def _integer(low: int, high: int) -> Callable[[str], int]:
    def parse(value: str) -> int:
        if not _INTEGER.fullmatch(value) or not low <= int(value) <= high:
            raise _Defer
        return int(value)

    return parse


# The list parameters as the route declares them (the same constants: routes.py, schemas.py).
_LIST_PARAMETERS: dict[str, Callable[[str], Any]] = {
    "status": _one_of(STATUSES),
    "priority_min": _integer(MIN_PRIORITY, MAX_PRIORITY),
    "priority_max": _integer(MIN_PRIORITY, MAX_PRIORITY),
    "tag": _text(TAG_PATTERN),
    "due_before": _date,
    "due_after": _date,
    "q": _text(QUERY_PATTERN, min_length=1, max_length=MAX_QUERY_LENGTH),
    "sort": _one_of(SORTS),
    "limit": _integer(1, MAX_PAGE_SIZE),
    "cursor": _text(CURSOR_PATTERN, min_length=1, max_length=MAX_CURSOR_LENGTH),
}


def _list_arguments(query_string: bytes) -> dict[str, Any]:
    # Parsed exactly as Starlette parses `request.query_params`.
    arguments: dict[str, Any] = {}
    for name, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
        parse = _LIST_PARAMETERS.get(name)
        if parse is None or name in arguments:
            raise _Defer
        arguments[name] = parse(value)
    return arguments


def _route(path: str, method: str) -> APIRoute:
    for route in router.routes:
        if isinstance(route, APIRoute) and route.path == path and method in (route.methods or ()):
            return route
    raise LookupError(f"no route {method} {path}")


class FastRoutes:
    """ASGI middleware answering plain get-one, list and create requests itself."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.get_route = _route("/v1/tasks/{number:int}", "GET")
        self.list_route = _route("/v1/tasks", "GET")
        self.create_route = _route("/v1/tasks", "POST")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("root_path"):
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        try:
            if method == "GET" and path == "/v1/tasks":
                await self._list(scope, receive, send)
                return
            if method == "POST" and path == "/v1/tasks":
                await self._create(scope, receive, send)
                return
            if method == "GET" and (match := _ONE_TASK.fullmatch(path)):
                await self._get(scope, receive, send, int(match.group(1)))
                return
        except _Defer:
            pass
        await self.app(scope, receive, send)

    @staticmethod
    def _headers(scope: Scope) -> tuple[dict[bytes, str], str]:
        """The headers the fast path reads (first values) and the forwarded prefix."""
        found: dict[bytes, str] = {}
        prefix = None
        for name, value in scope["headers"]:
            if name in _READ_HEADERS:
                if name in found:
                    raise _Defer
                found[name] = value.decode("latin-1")
            elif name == _FORWARDED_PREFIX and prefix is None:
                prefix = value.decode("latin-1")
        return found, prefix or ""

    async def _respond(
        self, scope: Scope, receive: Receive, send: Send, route: APIRoute, answer: Any
    ) -> None:
        """Send the response `answer` builds, or what the app's handler makes of its error."""
        scope["route"] = route  # metrics and the access log name the route template
        app = scope["app"]
        try:
            response: Response = await answer(app.state.repository)
        except Exception as exc:
            handler = _handler_for(app.exception_handlers, exc)
            if handler is None:
                raise
            response = await handler(Request(scope, receive), exc)
        await response(scope, receive, send)

    async def _get(self, scope: Scope, receive: Receive, send: Send, number: int) -> None:
        if scope["query_string"] or number > MAX_NUMBER:
            raise _Defer
        headers, _ = self._headers(scope)
        if_none_match = headers.get(b"if-none-match")
        if if_none_match is not None and len(if_none_match) > MAX_ETAG_LENGTH:
            raise _Defer
        verifier = scope["app"].state.token_verifier

        async def answer(repo: Repository) -> Response:
            principal = await verify_bearer(verifier, headers.get(b"authorization", ""))
            caller = caller_for(principal, "tasks:read", None)
            version, body = await service.get_task(repo=repo, caller=caller, number=number)
            return task_response(version, body, if_none_match=if_none_match)

        await self._respond(scope, receive, send, self.get_route, answer)

    async def _list(self, scope: Scope, receive: Receive, send: Send) -> None:
        arguments = _list_arguments(scope["query_string"])
        headers, _ = self._headers(scope)
        verifier = scope["app"].state.token_verifier
        where = TaskFilter(
            status=arguments.get("status"),
            priority_min=arguments.get("priority_min"),
            priority_max=arguments.get("priority_max"),
            tag=arguments.get("tag"),
            due_before=arguments.get("due_before"),
            due_after=arguments.get("due_after"),
            q=arguments.get("q"),
        )

        async def answer(repo: Repository) -> Response:
            principal = await verify_bearer(verifier, headers.get(b"authorization", ""))
            caller = caller_for(principal, "tasks:read", None)
            page = await service.list_tasks(
                repo=repo,
                caller=caller,
                where=where,
                sort=arguments.get("sort", "-created"),
                limit=arguments.get("limit", 50),
                cursor=arguments.get("cursor"),
            )
            return page_response(page)

        await self._respond(scope, receive, send, self.list_route, answer)

    async def _create(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["query_string"]:
            raise _Defer
        headers, prefix = self._headers(scope)
        key = headers.get(b"idempotency-key")
        if headers.get(b"content-type") != "application/json" or (
            key is not None and not _IDEMPOTENCY_KEY.fullmatch(key)
        ):
            raise _Defer
        messages, body = await _read_body(receive)
        if body is None:
            await self.app(scope, _replaying(messages, receive), send)
            return
        try:
            # orjson accepts a subset of what the route's json.loads does, with equal results;
            # the rest (and every invalid body) gets the route's own answer.
            draft = TaskCreate.model_validate(orjson.loads(body))
        except (orjson.JSONDecodeError, ValidationError):
            await self.app(scope, _replaying(messages, receive), send)
            return
        verifier = scope["app"].state.token_verifier

        async def answer(repo: Repository) -> Response:
            principal = await verify_bearer(verifier, headers.get(b"authorization", ""))
            caller = caller_for(principal, "tasks:write", None)
            stored, replayed = await service.create_task(
                repo=repo,
                caller=caller,
                draft=draft,
                location_prefix=location_prefix(prefix),
                idempotency_key=key,
            )
            return created_response(stored, replayed=replayed)

        await self._respond(scope, receive, send, self.create_route, answer)


def _handler_for(handlers: dict[Any, Any], exc: Exception) -> Any:
    """The app's handler for `exc` as Starlette's ExceptionMiddleware would pick it.

    Crashes (no handler below `Exception`) propagate to ServerErrorMiddleware, as on the routes.
    """
    for cls in type(exc).__mro__:
        if cls is Exception:
            return None
        if cls in handlers:
            return handlers[cls]
    return None


async def _read_body(receive: Receive) -> tuple[list[Message], bytes | None]:
    """Every message of the request body, and the body (None if the client went away)."""
    messages: list[Message] = []
    chunks: list[bytes] = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return messages, None  # the route handles a disconnect as it always does
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return messages, b"".join(chunks)


def _replaying(messages: list[Message], receive: Receive) -> Receive:
    """A `receive` that hands out `messages` again before the live ones."""
    pending = list(messages)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay
