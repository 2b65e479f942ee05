"""FastAPI glue: problem+json error handlers and a fast JSON response class."""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from taskmesh_common.problems import PROBLEM_CONTENT_TYPE, Problem, problem_body

logger = logging.getLogger("taskmesh.errors")

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
    },
}
"""JSON Schema of an RFC 9457 problem details object, for OpenAPI documents."""

DATABASE_UNAVAILABLE: tuple[type[Exception], ...] = (
    OSError,  # refused or reset connections, and TimeoutError: connect, pool and query timeouts
    asyncpg.PostgresConnectionError,  # a connection lost mid-query or refused by the server
    asyncpg.exceptions.OperatorInterventionError,  # a server starting up or shutting down
)
"""What PostgreSQL being unreachable raises; the problem handlers answer it with a 503."""

DATABASE_UNAVAILABLE_DETAIL = "The database is unavailable; retry shortly."


class OrjsonResponse(JSONResponse):
    """JSON response rendered by orjson (several times faster than the stdlib encoder)."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)


class ProblemResponse(OrjsonResponse):
    """A response whose body is a problem details object."""

    media_type = PROBLEM_CONTENT_TYPE


def problem_response(problem: Problem, request: Request | None = None) -> ProblemResponse:
    """Render a :class:`Problem` as an HTTP response."""
    instance = request.url.path if request is not None else None
    return ProblemResponse(
        problem.to_dict(instance=instance), status_code=problem.status, headers=problem.headers
    )


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    errors = []
    for error in exc.errors():
        location = [str(part) for part in error.get("loc", ())]
        errors.append(
            {"loc": location, "msg": str(error.get("msg", "")), "type": error.get("type")}
        )
    return errors


def _allowed_methods(app: FastAPI, request: Request) -> list[str]:
    # Starlette's 405 lists only the first matching route's methods; RFC 9110 wants all of them.
    return sorted(
        {
            method
            for route in app.router.routes
            if isinstance(route, APIRoute) and route.matches(request.scope)[0] != Match.NONE
            for method in route.methods or ()
        }
    )


def install_problem_handlers(
    app: FastAPI, *, unavailable_detail: str = DATABASE_UNAVAILABLE_DETAIL
) -> None:
    """Make every error, including validation errors, outages and crashes, an RFC 9457 response."""

    async def on_problem(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Problem)
        return problem_response(exc, request)

    async def on_http_exception(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        detail = exc.detail if isinstance(exc.detail, str) else None
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(_allowed_methods(app, request))
        body = problem_body(exc.status_code, detail=detail, instance=request.url.path)
        return ProblemResponse(body, status_code=exc.status_code, headers=headers)

    async def on_validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        body = problem_body(
            422,
            title="Invalid request",
            detail="The request did not pass validation; see `errors`.",
            instance=request.url.path,
            errors=_validation_errors(exc),
        )
        return ProblemResponse(body, status_code=422)

    async def on_database_unavailable(request: Request, exc: Exception) -> Response:
        # PostgreSQL is down or restarting: a 503 tells clients (and the gateway) to retry, where
        # a crash (500) would also make uvicorn drop the gateway's connection.
        logger.warning("database unavailable", extra={"error": repr(exc)})
        problem = Problem(503, unavailable_detail, headers={"Retry-After": "1"})
        return problem_response(problem, request)

    async def on_crash(request: Request, exc: Exception) -> Response:
        logger.exception("unhandled error", extra={"path": request.url.path})
        body = problem_body(500, detail="An unexpected error occurred.", instance=request.url.path)
        return ProblemResponse(body, status_code=500)

    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(StarletteHTTPException, on_http_exception)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    for unavailable in DATABASE_UNAVAILABLE:
        app.add_exception_handler(unavailable, on_database_unavailable)
    app.add_exception_handler(Exception, on_crash)


def _problem_openapi(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document, with problem+json declared as every operation's error response."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["Problem"] = PROBLEM_SCHEMA
    problem = {
        "description": "Problem details (RFC 9457)",
        "content": {
            "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
        },
    }
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            for parameter in operation.get("parameters", []):
                # Missing If-Match is answered 428 by the route, so it is optional to FastAPI only.
                if parameter["in"] == "header" and parameter["name"] == "if-match":
                    parameter["required"] = True
            responses = operation.setdefault("responses", {})
            for status, response in list(responses.items()):
                if status[0] in "45":
                    responses[status] = {**problem, "description": response["description"]}
            responses["default"] = problem
    app.openapi_schema = schema
    return schema


def install_problem_openapi(app: FastAPI) -> None:
    """Publish problem+json as the body of every error response in the app's OpenAPI document."""
    app.openapi = lambda: _problem_openapi(app)  # type: ignore[method-assign]
