"""Task behaviour: ownership, optimistic concurrency, idempotency and keyset paging."""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal, get_args
from uuid import UUID

import orjson
from taskmesh_common.logging import request_id_var

from taskmesh_tasks.errors import (
    IdempotencyKeyReusedError,
    InvalidCursorError,
    TaskNotFoundError,
    VersionMismatchError,
)
from taskmesh_tasks.queries import SortField
from taskmesh_tasks.repository import (
    Idempotency,
    PageRequest,
    Repository,
    StoredResponse,
    TaskFilter,
)
from taskmesh_tasks.schemas import MAX_NUMBER, BulkStatus, TaskCreate, TaskPatch, unique

Sort = Literal["created", "-created", "priority", "-priority", "due", "-due"]
SORTS: tuple[Sort, ...] = get_args(Sort)
_STRONG_ETAG = re.compile(r'^"(\d{1,10})"$')
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True, slots=True)
class Caller:
    """Whose tasks a request acts on, and who is acting (for events)."""

    owner: UUID
    actor: str
    on_behalf: bool = False


@dataclass(frozen=True, slots=True)
class Page:
    """Task JSON documents of one page and the cursor of the next (None on the last page)."""

    items: list[str]
    next_cursor: str | None


def etag(version: int) -> str:
    """The entity tag of a task version."""
    return f'"{version}"'


def if_match_versions(header: str) -> list[int] | None:
    """The versions an `If-Match` header accepts; None for `*` (weak tags never match)."""
    if header.strip() == "*":
        return None
    versions = []
    for part in header.split(","):
        match = _STRONG_ETAG.match(part.strip())
        if match and int(match.group(1)) <= MAX_NUMBER:
            versions.append(int(match.group(1)))
    return versions


def none_match(header: str, version: int) -> bool:
    """Whether `If-None-Match` names this version (weak comparison, as RFC 9110 asks)."""
    if header.strip() == "*":
        return True
    wanted = etag(version)
    return any(part.strip().removeprefix("W/") == wanted for part in header.split(","))


def encode_cursor(sort: Sort, key: str, number: int) -> str:
    """An opaque cursor: the sort order and the last row's key, base64url JSON."""
    raw = orjson.dumps({"s": sort, "k": key, "n": number})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _valid_key(field: SortField, key: str) -> bool:
    try:
        if field == "created":
            return datetime.fromisoformat(key).tzinfo is not None
        if field == "priority":
            return key in {"1", "2", "3", "4", "5"}
        return key == "infinity" or (_DATE.match(key) is not None and bool(date.fromisoformat(key)))
    except ValueError:
        return False


def decode_cursor(cursor: str, sort: Sort) -> tuple[str, int]:
    """The (key, number) after which a cursor continues; it must fit `sort`."""
    try:
        data = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError) as exc:
        raise InvalidCursorError("the cursor is not valid") from exc
    if not isinstance(data, dict) or data.get("s") != sort:
        raise InvalidCursorError("the cursor belongs to another sort order")
    key, number = data.get("k"), data.get("n")
    field: SortField = sort.removeprefix("-")  # type: ignore[assignment]
    valid_number = type(number) is int and 1 <= number <= MAX_NUMBER
    if not (isinstance(key, str) and valid_number and _valid_key(field, key)):
        raise InvalidCursorError("the cursor is not valid")
    assert isinstance(number, int)
    return key, number


def idempotency_of(owner: UUID, key: str, draft: TaskCreate) -> Idempotency:
    """The key with the hash of its request and the advisory-lock id of (owner, key)."""
    canonical = orjson.dumps(draft.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)
    request_hash = hashlib.sha256(canonical).digest()
    lock = hashlib.blake2b(f"{owner} {key}".encode(), digest_size=8).digest()
    return Idempotency(
        key=key, request_hash=request_hash, lock_id=int.from_bytes(lock, "big", signed=True)
    )


async def create_task(
    *,
    repo: Repository,
    caller: Caller,
    draft: TaskCreate,
    location_prefix: str,
    idempotency_key: str | None,
) -> tuple[StoredResponse, bool]:
    """Create a task; return the response and whether it replays an earlier identical request."""
    fields = draft.model_dump()
    fields["tags"] = unique(draft.tags)
    idempotency = idempotency_of(caller.owner, idempotency_key, draft) if idempotency_key else None
    result = await repo.create(
        owner=caller.owner,
        fields=fields,
        location=(
            f"{location_prefix}/v1/tasks/",
            f"?owner={caller.owner}" if caller.on_behalf else "",
        ),
        actor=caller.actor,
        request_id=request_id_var.get(),
        idempotency=idempotency,
    )
    if result.created is not None:
        return result.created, False
    assert result.prior is not None
    assert idempotency is not None
    if result.prior_hash != idempotency.request_hash:
        raise IdempotencyKeyReusedError(idempotency.key)
    return result.prior, True


async def get_task(*, repo: Repository, caller: Caller, number: int) -> tuple[int, str]:
    """The task's version and JSON."""
    found = await repo.get(owner=caller.owner, number=number)
    if found is None:
        raise TaskNotFoundError(number)
    return found


async def update_task(
    *, repo: Repository, caller: Caller, number: int, if_match: str, patch: TaskPatch
) -> tuple[int, str]:
    """Apply a partial update when `if_match` names the current version."""
    change = await repo.update(
        owner=caller.owner,
        number=number,
        expected=if_match_versions(if_match),
        changes=patch.changes(),
        actor=caller.actor,
        request_id=request_id_var.get(),
    )
    if change.current_version is None:
        raise TaskNotFoundError(number)
    if not change.applied:
        raise VersionMismatchError(change.current_version)
    assert change.version is not None
    assert change.body is not None
    return change.version, change.body


async def delete_task(*, repo: Repository, caller: Caller, number: int, if_match: str) -> None:
    """Delete a task when `if_match` names the current version."""
    change = await repo.delete(
        owner=caller.owner,
        number=number,
        expected=if_match_versions(if_match),
        actor=caller.actor,
        request_id=request_id_var.get(),
    )
    if change.current_version is None:
        raise TaskNotFoundError(number)
    if not change.applied:
        raise VersionMismatchError(change.current_version)


async def list_tasks(
    *,
    repo: Repository,
    caller: Caller,
    where: TaskFilter,
    sort: Sort,
    limit: int,
    cursor: str | None,
) -> Page:
    """One page of the caller's tasks in `sort` order, after `cursor`."""
    field: SortField = sort.removeprefix("-")  # type: ignore[assignment]
    after = decode_cursor(cursor, sort) if cursor else None
    request = PageRequest(field=field, descending=sort.startswith("-"), limit=limit, after=after)
    rows = await repo.list(owner=caller.owner, where=where, page=request)
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(sort, rows[-1].sort_key, rows[-1].number) if more else None
    return Page(items=[row.body for row in rows], next_cursor=next_cursor)


async def count_tasks(*, repo: Repository, caller: Caller) -> dict[str, int]:
    """The caller's tasks per status, for the board."""
    return await repo.counts(owner=caller.owner)


async def delete_by_title(*, repo: Repository, caller: Caller, title: str) -> int:
    """Delete every task of the caller titled exactly `title` (the origin's "delete all")."""
    return await repo.delete_by_title(
        owner=caller.owner, title=title, actor=caller.actor, request_id=request_id_var.get()
    )


async def bulk_status(*, repo: Repository, caller: Caller, change: BulkStatus) -> int:
    """Move the listed tasks to one status; tasks already there or missing are skipped."""
    return await repo.bulk_status(
        owner=caller.owner,
        numbers=sorted(set(change.numbers)),
        status=change.status,
        actor=caller.actor,
        request_id=request_id_var.get(),
    )


async def reset_tasks(*, repo: Repository, caller: Caller) -> int:
    """Remove the caller's tasks and restart numbering at 1 (the origin's reset)."""
    return await repo.reset_owner(
        owner=caller.owner, actor=caller.actor, request_id=request_id_var.get()
    )


async def reset_everything(*, repo: Repository, actor: str) -> int:
    """Remove every owner's tasks and restart every numbering (admins only)."""
    return await repo.reset_all(actor=actor, request_id=request_id_var.get())


async def purge_owner(*, repo: Repository, owner: UUID, actor: str) -> int:
    """Forget an owner entirely (account deletion): tasks, numbering and idempotency records."""
    return await repo.reset_owner(
        owner=owner, actor=actor, request_id=request_id_var.get(), forget_keys=True
    )
