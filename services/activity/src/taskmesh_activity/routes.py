"""HTTP routes of the activity API: parse, call the service, map errors."""

from __future__ import annotations

import hashlib
from typing import Annotated
from uuid import UUID

import orjson
from fastapi import APIRouter, Depends, Query, Request, Response
from taskmesh_common.api import OrjsonResponse
from taskmesh_common.principals import require_scope
from taskmesh_common.problems import Problem
from taskmesh_common.tokens import Principal

from taskmesh_activity import service
from taskmesh_activity.repository import ActivityRepository
from taskmesh_activity.schemas import ActivityPage, PurgeResult

router = APIRouter(prefix="/v1")


def get_repo(request: Request) -> ActivityRepository:
    """The repository built by the app's lifespan."""
    repo: ActivityRepository = request.app.state.repo
    return repo


Repo = Annotated[ActivityRepository, Depends(get_repo)]
Reader = Annotated[Principal, Depends(require_scope("activity:read"))]
Purger = Annotated[Principal, Depends(require_scope("activity:purge"))]


def _owner(principal: Principal) -> UUID:
    try:
        if principal.kind == "user":
            return UUID(principal.subject)
    except ValueError:
        pass
    raise Problem(403, "Only a user has an activity feed.")


@router.get(
    "/activity",
    response_model=ActivityPage,
    responses={304: {"description": "Not modified"}, 400: {"description": "Malformed cursor"}},
)
async def get_activity(
    request: Request,
    principal: Reader,
    repo: Repo,
    task: Annotated[int | None, Query(ge=1, le=2_147_483_647, description="task number")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    """The caller's activity feed, newest first."""
    try:
        page = await service.list_activity(
            repo=repo, owner_id=_owner(principal), task_number=task, limit=limit, cursor=cursor
        )
    except service.InvalidCursorError as exc:
        raise Problem(400, "The cursor is malformed; use `next_cursor` as given.") from exc
    body = ActivityPage.of(page).model_dump(mode="json")
    etag = f'W/"{hashlib.blake2b(orjson.dumps(body), digest_size=12).hexdigest()}"'
    headers = {"ETag": etag, "Cache-Control": "private, no-cache", "Vary": "Authorization"}
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    return OrjsonResponse(body, headers=headers)


# Service-to-service only: the gateway never routes /v1/internal/, so it is no part of the
# published API (OpenAPI document) either.
@router.delete("/internal/owners/{owner_id}/activity", include_in_schema=False)
async def purge_owner_activity(owner_id: UUID, principal: Purger, repo: Repo) -> PurgeResult:
    """Delete an owner's feed (the auth service calls this when an account is deleted)."""
    if principal.kind != "service":
        raise Problem(403, "Only a service may purge an owner's activity.")
    return PurgeResult(deleted=await service.purge_owner(repo=repo, owner_id=owner_id))
