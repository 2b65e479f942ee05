"""Request and response bodies of the activity API."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from pydantic import BaseModel

from taskmesh_activity.service import FeedPage


class ActivityItem(BaseModel):
    """One feed entry; `summary` is plain text."""

    id: int
    event_id: UUID
    type: str
    task_number: int | None
    title: str | None
    summary: str
    occurred_at: datetime


class ActivityPage(BaseModel):
    """A page of the caller's feed, newest first."""

    items: list[ActivityItem]
    next_cursor: str | None

    @classmethod
    def of(cls, page: FeedPage) -> ActivityPage:
        """The API shape of a feed page."""
        items = [
            ActivityItem(
                id=row.id,
                event_id=row.event_id,
                type=row.type,
                task_number=row.task_number,
                title=row.title,
                summary=row.summary,
                occurred_at=row.occurred_at,
            )
            for row in page.items
        ]
        return cls(items=items, next_cursor=page.next_cursor)


class PurgeResult(BaseModel):
    """How many feed entries a purge deleted."""

    deleted: int
