"""Activity behaviour behind the API: reading a feed page by page, purging an owner."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from taskmesh_activity.repository import ActivityRepository, ActivityRow


class InvalidCursorError(ValueError):
    """The pagination cursor was not issued by this service."""


@dataclass(frozen=True, slots=True)
class FeedPage:
    """One page of a feed and the cursor of the next, if there is one."""

    items: list[ActivityRow]
    next_cursor: str | None


def encode_cursor(row: ActivityRow) -> str:
    """An opaque cursor pointing just after `row`."""
    raw = f"{row.occurred_at.isoformat()}|{row.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    """The keyset position in a cursor, or :class:`InvalidCursorError`."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, _, row_id = raw.partition("|")
        position = datetime.fromisoformat(stamp), int(row_id)
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise InvalidCursorError("malformed cursor") from exc
    if position[0].tzinfo is None or position[1] < 1:
        raise InvalidCursorError("malformed cursor")
    return position


async def list_activity(
    *,
    repo: ActivityRepository,
    owner_id: UUID,
    task_number: int | None,
    limit: int,
    cursor: str | None,
) -> FeedPage:
    """A page of the owner's feed, newest first."""
    after = decode_cursor(cursor) if cursor else None
    rows = await repo.page(owner_id=owner_id, task_number=task_number, after=after, limit=limit + 1)
    if len(rows) > limit:
        return FeedPage(items=rows[:limit], next_cursor=encode_cursor(rows[limit - 1]))
    return FeedPage(items=rows, next_cursor=None)


async def purge_owner(*, repo: ActivityRepository, owner_id: UUID) -> int:
    """Delete everything the feed holds about an owner (account deletion)."""
    return await repo.purge_owner(owner_id)
