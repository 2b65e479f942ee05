"""HTTP routes of the tasks API: parse input, call the service, map errors to problems."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Annotated, Any
from uuid import UUID

import orjson
from fastapi import APIRouter, Depends, FastAPI, Header, Path, Query, Request, Response
from starlette.routing import Match
from taskmesh_common.api import PROBLEM_SCHEMA, problem_response
from taskmesh_common.principals import CurrentPrincipal, current_principal
from taskmesh_common.problems import Problem
from taskmesh_common.tokens import Principal

from taskmesh_tasks import service
from taskmesh_tasks.errors import (
    ConflictError,
    IdempotencyKeyInFlightError,
    IdempotencyKeyReusedError,
    InvalidCursorError,
    InvalidTaskError,
    TaskNotFoundError,
    TasksError,
    VersionMismatchError,
)
from taskmesh_tasks.repository import Repository, StoredResponse, TaskFilter
from taskmesh_tasks.schemas import (
    MAX_NUMBER,
    MAX_PRIORITY,
    MIN_PRIORITY,
    TAG_PATTERN,
    TITLE_PATTERN,
    BulkStatus,
    Counts,
    Deleted,
    IsoDate,
    Status,
    Task,
    TaskCreate,
    TaskPage,
    TaskPatch,
    Updated,
)
from taskmesh_tasks.service import Caller, Page, Sort, etag

JSON = "application/json"
# Rules of query parameters and headers, declared below and read again by the fast path (fast.py).
MAX_PAGE_SIZE = 100
MAX_QUERY_LENGTH = 200
QUERY_PATTERN = r"^[^\x00]*$"
MAX_CURSOR_LENGTH = 1000
CURSOR_PATTERN = r"^[A-Za-z0-9_-]+$"
IDEMPOTENCY_KEY_PATTERN = r"^[\x21-\x7e]{1,255}$"
MAX_ETAG_LENGTH = 1000
_PREFIX = re.compile(r"^(/[A-Za-z0-9_~-][A-Za-z0-9._~-]{0,63}){1,8}$")
OWNER_DOC = (
    "Admins only: act on this owner's tasks instead of their own. Without it every operation "
    "applies to the caller's own tasks; a non-admin naming another owner gets 403."
)
_REASONS = {
    400: "Malformed request body or cursor",
    401: "Missing or invalid bearer token",
    403: "The token may not do this",
    404: "No such task for this owner",
    409: "A request with the same Idempotency-Key is in flight, or a concurrent change won",
    412: "If-Match does not name the current version",
    422: "Invalid request",
    428: "If-Match is required",
}


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the problem responses an operation may return."""
    return {
        status: {
            "description": _REASONS[status],
            "content": {"application/problem+json": {"schema": PROBLEM_SCHEMA}},
        }
        for status in (400, 401, 403, 422, *statuses)
    }


_ERRORS: dict[type[TasksError], tuple[int, str]] = {
    TaskNotFoundError: (404, "No such task."),
    VersionMismatchError: (412, "The task has changed; fetch it again and retry with its ETag."),
    IdempotencyKeyReusedError: (422, "This Idempotency-Key was used with a different request."),
    IdempotencyKeyInFlightError: (409, "A request with this Idempotency-Key is still in progress."),
    InvalidCursorError: (400, "The cursor is malformed or belongs to another sort order."),
    InvalidTaskError: (422, "The task breaks a rule of the task model."),
    ConflictError: (409, "A concurrent change won; retry the request."),
}


def install_error_mapping(app: FastAPI) -> None:
    """Render domain errors as problem+json."""

    async def on_tasks_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, TasksError)
        status, detail = _ERRORS.get(type(exc), (409, "The request conflicts with current state."))
        headers = {}
        if isinstance(exc, VersionMismatchError):
            headers["ETag"] = etag(exc.current_version)
        return problem_response(Problem(status, detail, headers=headers), request)

    async def on_method_not_allowed(request: Request, exc: Exception) -> Response:
        # Starlette's 405 names only the first route's methods; list every method of the path.
        allowed = [
            method
            for method in ("GET", "POST", "PUT", "PATCH", "DELETE")
            if any(
                route.matches({**request.scope, "method": method})[0] == Match.FULL
                for route in request.app.router.routes
            )
        ]
        problem = Problem(
            405, "This method is not allowed here.", headers={"Allow": ", ".join(allowed)}
        )
        return problem_response(problem, request)

    app.add_exception_handler(TasksError, on_tasks_error)
    app.add_exception_handler(405, on_method_not_allowed)


async def get_repo(request: Request) -> Repository:
    """The repository built by the app's lifespan (async: sync dependencies cost a thread hop)."""
    repo: Repository = request.app.state.repository
    return repo


TaskRepo = Annotated[Repository, Depends(get_repo)]


def acting(scope: str) -> Callable[..., Awaitable[Caller]]:
    """A dependency resolving whose tasks a user request acts on, requiring `scope`."""

    # The principal is resolved inline rather than as a sub-dependency: each dependency node
    # costs FastAPI several microseconds on every request.
    async def dependency(
        request: Request,
        owner: Annotated[UUID | None, Query(description=OWNER_DOC)] = None,
    ) -> Caller:
        return caller_for(await current_principal(request), scope, owner)

    return dependency


def caller_for(principal: Principal, scope: str, owner: UUID | None) -> Caller:
    """Whose tasks `principal` acts on (its own, or `owner`'s for an admin), requiring `scope`."""
    me = _user_id(principal, scope)
    if owner is None or owner == me:
        return Caller(owner=me, actor=principal.subject)
    if not principal.is_admin:
        raise Problem(403, "Only admins may act on another owner's tasks.")
    return Caller(owner=owner, actor=principal.subject, on_behalf=True)


def _user_id(principal: Principal, scope: str) -> UUID:
    if principal.kind != "user":
        raise Problem(403, "The task API is for user tokens.")
    if not principal.has_scope(scope):
        raise Problem(403, f"The token lacks the `{scope}` scope.")
    try:
        return UUID(principal.subject)
    except ValueError as exc:
        raise Problem(403, "The token's subject is not a user id.") from exc


Reader = Annotated[Caller, Depends(acting("tasks:read"))]
Writer = Annotated[Caller, Depends(acting("tasks:write"))]
Number = Annotated[int, Path(ge=1, le=MAX_NUMBER, description="the task's per-owner #N")]
# If-Match is required (the OpenAPI document says so); a missing one is 428, not 422, and one
# that names no current version (even a malformed one) is 412.
IfMatch = Annotated[
    str | None,
    Header(
        alias="If-Match",
        max_length=MAX_ETAG_LENGTH,
        description="The task's ETag as read (`*` matches any version).",
    ),
]
TitleQuery = Annotated[str, Query(min_length=1, max_length=200, pattern=TITLE_PATTERN)]


def _require(if_match: str | None) -> str:
    if if_match is None:
        raise Problem(428, "Send If-Match with the task's ETag to change it.")
    return if_match


def _json(
    body: str | bytes, *, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    content = body.encode() if isinstance(body, str) else body
    return Response(content, status_code=status, headers=headers, media_type=JSON)


def location_prefix(forwarded_prefix: str) -> str:
    """The gateway's path prefix (validated), so Location works through the gateway."""
    prefix = forwarded_prefix.rstrip("/")
    return prefix if _PREFIX.match(prefix) else ""


router = APIRouter(prefix="/v1", tags=["tasks"])


@router.post(
    "/tasks",
    status_code=201,
    response_model=Task,
    responses=problems(409),
    summary="Create a task",
    description=(
        "Creates a task numbered #N for the owner. With `Idempotency-Key`, a retry with the "
        "same body within 24 h returns the stored response (header `Idempotent-Replayed`); "
        "another body with the same key is 422, a concurrent duplicate still in progress 409."
    ),
)
async def create_task(
    request: Request,
    draft: TaskCreate,
    caller: Writer,
    repo: TaskRepo,
    idempotency_key: Annotated[
        str | None, Header(alias="Idempotency-Key", pattern=IDEMPOTENCY_KEY_PATTERN)
    ] = None,
) -> Response:
    stored, replayed = await service.create_task(
        repo=repo,
        caller=caller,
        draft=draft,
        location_prefix=location_prefix(request.headers.get("x-forwarded-prefix", "")),
        idempotency_key=idempotency_key,
    )
    return created_response(stored, replayed=replayed)


def created_response(stored: StoredResponse, *, replayed: bool) -> Response:
    """The response to a create: as first sent, marked when it replays an earlier request."""
    headers = {"Location": stored.headers["location"], "ETag": stored.headers["etag"]}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return _json(stored.body, status=stored.status, headers=headers)


@router.get(
    "/tasks",
    response_model=TaskPage,
    responses=problems(400),
    summary="List tasks",
    description=(
        "One page of the owner's tasks. Filters combine with AND; `due_before`/`due_after` are "
        "inclusive; `q` is a full-text search (web-search syntax) over title and description. "
        "Tasks without a due date sort after every date. Pass `next_cursor` back as `cursor`."
    ),
)
async def list_tasks(
    caller: Reader,
    repo: TaskRepo,
    status: Status | None = None,
    priority_min: Annotated[int | None, Query(ge=MIN_PRIORITY, le=MAX_PRIORITY)] = None,
    priority_max: Annotated[int | None, Query(ge=MIN_PRIORITY, le=MAX_PRIORITY)] = None,
    tag: Annotated[str | None, Query(pattern=TAG_PATTERN)] = None,
    due_before: Annotated[IsoDate | None, Query()] = None,
    due_after: Annotated[IsoDate | None, Query()] = None,
    q: Annotated[
        str | None, Query(min_length=1, max_length=MAX_QUERY_LENGTH, pattern=QUERY_PATTERN)
    ] = None,
    sort: Sort = "-created",
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 50,
    cursor: Annotated[
        str | None, Query(min_length=1, max_length=MAX_CURSOR_LENGTH, pattern=CURSOR_PATTERN)
    ] = None,
) -> Response:
    where = TaskFilter(
        status=status,
        priority_min=priority_min,
        priority_max=priority_max,
        tag=tag,
        due_before=due_before,
        due_after=due_after,
        q=q,
    )
    page = await service.list_tasks(
        repo=repo, caller=caller, where=where, sort=sort, limit=limit, cursor=cursor
    )
    return page_response(page)


def page_response(page: Page) -> Response:
    """A page of tasks as the API's `TaskPage` JSON."""
    body = b'{"items":[%s],"next_cursor":%s}' % (
        ",".join(page.items).encode(),
        orjson.dumps(page.next_cursor),
    )
    return _json(body)


@router.delete(
    "/tasks",
    response_model=Deleted,
    responses=problems(),
    summary="Delete all tasks with a title",
    description="Deletes every one of the owner's tasks whose title is exactly `title`.",
)
async def delete_by_title(caller: Writer, repo: TaskRepo, title: TitleQuery) -> Response:
    deleted = await service.delete_by_title(repo=repo, caller=caller, title=title)
    return _json(orjson.dumps({"deleted": deleted}))


@router.get("/tasks/counts", response_model=Counts, responses=problems(), summary="Count tasks")
async def count_tasks(caller: Reader, repo: TaskRepo) -> Response:
    return _json(orjson.dumps(await service.count_tasks(repo=repo, caller=caller)))


@router.post(
    "/tasks/bulk-status",
    response_model=Updated,
    responses=problems(),
    summary="Change the status of several tasks",
    description="Tasks already in that status, or not the owner's, are skipped (not counted).",
)
async def bulk_status(change: BulkStatus, caller: Writer, repo: TaskRepo) -> Response:
    updated = await service.bulk_status(repo=repo, caller=caller, change=change)
    return _json(orjson.dumps({"updated": updated}))


@router.post(
    "/tasks/reset",
    response_model=Deleted,
    responses=problems(),
    summary="Reset the owner's tasks",
    description="Deletes all the owner's tasks; numbering restarts at #1.",
)
async def reset_tasks(caller: Writer, repo: TaskRepo) -> Response:
    deleted = await service.reset_tasks(repo=repo, caller=caller)
    return _json(orjson.dumps({"deleted": deleted}))


@router.get(
    "/tasks/{number:int}",
    response_model=Task,
    responses={304: {"description": "Not modified (If-None-Match)"}, **problems(404)},
    summary="Get a task",
)
async def get_task(
    number: Number,
    caller: Reader,
    repo: TaskRepo,
    if_none_match: Annotated[
        str | None, Header(alias="If-None-Match", max_length=MAX_ETAG_LENGTH)
    ] = None,
) -> Response:
    version, body = await service.get_task(repo=repo, caller=caller, number=number)
    return task_response(version, body, if_none_match=if_none_match)


def task_response(version: int, body: str, *, if_none_match: str | None) -> Response:
    """A task with its ETag, or 304 when `If-None-Match` names its version."""
    headers = {"ETag": etag(version)}
    if if_none_match is not None and service.none_match(if_none_match, version):
        return Response(status_code=304, headers=headers)
    return _json(body, headers=headers)


@router.patch(
    "/tasks/{number:int}",
    response_model=Task,
    responses=problems(404, 409, 412, 428),
    summary="Update a task",
    description="Changes the fields sent (`due: null` clears the due date). Requires If-Match.",
)
async def update_task(
    number: Number, patch: TaskPatch, caller: Writer, repo: TaskRepo, if_match: IfMatch = None
) -> Response:
    version, body = await service.update_task(
        repo=repo, caller=caller, number=number, if_match=_require(if_match), patch=patch
    )
    return _json(body, headers={"ETag": etag(version)})


@router.delete(
    "/tasks/{number:int}",
    status_code=204,
    response_class=Response,
    responses=problems(404, 409, 412, 428),
    summary="Delete a task",
)
async def delete_task(
    number: Number, caller: Writer, repo: TaskRepo, if_match: IfMatch = None
) -> Response:
    await service.delete_task(repo=repo, caller=caller, number=number, if_match=_require(if_match))
    return Response(status_code=204)


@router.post(
    "/admin/tasks/reset",
    response_model=Deleted,
    responses=problems(),
    summary="Reset everyone's tasks (admins)",
    description="Admins only: deletes every owner's tasks and restarts every numbering.",
)
async def reset_everything(principal: CurrentPrincipal, repo: TaskRepo) -> Response:
    _user_id(principal, "tasks:write")
    if not principal.is_admin:
        raise Problem(403, "Only admins may reset everyone's tasks.")
    deleted = await service.reset_everything(repo=repo, actor=principal.subject)
    return _json(orjson.dumps({"deleted": deleted}))


# Service-to-service only: the gateway never routes /v1/internal/, so it is no part of the
# published API (OpenAPI document) either.
@router.delete(
    "/internal/owners/{owner_id}/tasks",
    response_model=Deleted,
    responses=problems(),
    include_in_schema=False,
    summary="Purge an owner (services)",
    description=(
        "For the auth service on account deletion: a service token with scope `tasks:purge` "
        "removes the owner's tasks, numbering and idempotency records."
    ),
)
async def purge_owner(owner_id: UUID, principal: CurrentPrincipal, repo: TaskRepo) -> Response:
    if principal.kind != "service" or not principal.has_scope("tasks:purge"):
        raise Problem(403, "A service token with the `tasks:purge` scope is required.")
    deleted = await service.purge_owner(
        repo=repo, owner=owner_id, actor=f"service:{principal.subject}"
    )
    return _json(orjson.dumps({"deleted": deleted}))
