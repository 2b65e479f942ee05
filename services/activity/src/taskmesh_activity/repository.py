"""SQL for the activity feed and its inbox (asyncpg)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from taskmesh_activity.feed import FeedEntry

# One statement, so one transaction and one round trip: the inbox row and the feed entry are
# written together or not at all, and a redelivered event (already in the inbox) adds nothing.
_APPLY = """
WITH first_time AS (
    INSERT INTO processed_events (event_id, stream_id) VALUES ($2, $9)
    ON CONFLICT (event_id) DO NOTHING
    RETURNING event_id
), entry AS (
    INSERT INTO activity
        (owner_id, event_id, type, task_id, task_number, title, summary, occurred_at)
    SELECT $1, event_id, $3, $4, $5, $6, $7, $8 FROM first_time
    WHERE NOT EXISTS (SELECT 1 FROM purged_owners WHERE owner_id = $1)
)
SELECT count(*) FROM first_time
"""

# The same for a whole batch in one statement (one transaction, one commit): the arrays are the
# columns of the batch in stream order, so identity ids follow it; event ids must be distinct.
_APPLY_BATCH = """
WITH batch AS (
    SELECT * FROM unnest(
        $1::uuid[], $2::text[], $3::uuid[], $4::text[], $5::uuid[], $6::int[], $7::text[],
        $8::text[], $9::timestamptz[]
    ) WITH ORDINALITY
    AS b (event_id, stream_id, owner_id, type, task_id, task_number, title, summary, occurred_at,
          position)
), first_time AS (
    INSERT INTO processed_events (event_id, stream_id)
    SELECT event_id, stream_id FROM batch ORDER BY position
    ON CONFLICT (event_id) DO NOTHING
    RETURNING event_id
), entry AS (
    INSERT INTO activity
        (owner_id, event_id, type, task_id, task_number, title, summary, occurred_at)
    SELECT b.owner_id, b.event_id, b.type, b.task_id, b.task_number, b.title, b.summary,
           b.occurred_at
    FROM batch AS b JOIN first_time USING (event_id)
    WHERE NOT EXISTS (SELECT 1 FROM purged_owners AS p WHERE p.owner_id = b.owner_id)
    ORDER BY b.position
)
SELECT event_id FROM first_time
"""

_PAGE = """
SELECT id, event_id, type, task_number, title, summary, occurred_at
FROM activity
WHERE owner_id = $1 {task} {after}
ORDER BY occurred_at DESC, id DESC
LIMIT {limit}
"""


@dataclass(frozen=True, slots=True)
class ActivityRow:
    """A stored feed entry as the API shows it."""

    id: int
    event_id: UUID
    type: str
    task_number: int | None
    title: str | None
    summary: str
    occurred_at: datetime


class ActivityRepository:
    """The activity database: feed entries, applied-event inbox and purged owners."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def apply(self, entry: FeedEntry, *, stream_id: str) -> bool:
        """Record the event and add its entry in one transaction; False if it was applied before."""
        inserted = await self.pool.fetchval(
            _APPLY,
            entry.owner_id,
            entry.event_id,
            entry.type,
            entry.task_id,
            entry.task_number,
            entry.title,
            entry.summary,
            entry.occurred_at,
            stream_id,
        )
        return bool(inserted)

    async def apply_batch(self, entries: Sequence[tuple[FeedEntry, str]]) -> set[UUID]:
        """Apply (entry, stream id) pairs in one transaction; the event ids new to the inbox."""
        # A later pair with the event id of an earlier one is a redelivery within the batch: it
        # is left out (the statement would add its feed entry twice).
        unique: dict[UUID, tuple[FeedEntry, str]] = {}
        for entry, stream_id in entries:
            unique.setdefault(entry.event_id, (entry, stream_id))
        if not unique:
            return set()
        batch = list(unique.values())
        rows = await self.pool.fetch(
            _APPLY_BATCH,
            [entry.event_id for entry, _ in batch],
            [stream_id for _, stream_id in batch],
            [entry.owner_id for entry, _ in batch],
            [entry.type for entry, _ in batch],
            [entry.task_id for entry, _ in batch],
            [entry.task_number for entry, _ in batch],
            [entry.title for entry, _ in batch],
            [entry.summary for entry, _ in batch],
            [entry.occurred_at for entry, _ in batch],
        )
        return {row["event_id"] for row in rows}

    async def is_applied(self, event_id: UUID) -> bool:
        """Whether the event is in the inbox."""
        found = await self.pool.fetchval(
            "SELECT true FROM processed_events WHERE event_id = $1", event_id
        )
        return bool(found)

    async def page(
        self,
        *,
        owner_id: UUID,
        task_number: int | None,
        after: tuple[datetime, int] | None,
        limit: int,
    ) -> list[ActivityRow]:
        """Up to `limit` entries newest first, strictly after the keyset position `after`."""
        args: list[Any] = [owner_id]
        task_clause = after_clause = ""
        if task_number is not None:
            args.append(task_number)
            task_clause = f"AND task_number = ${len(args)}"
        if after is not None:
            args.extend(after)
            after_clause = f"AND (occurred_at, id) < (${len(args) - 1}, ${len(args)})"
        sql = _PAGE.format(task=task_clause, after=after_clause, limit=int(limit))
        rows = await self.pool.fetch(sql, *args)
        return [ActivityRow(**dict(row)) for row in rows]

    async def purge_owner(self, owner_id: UUID) -> int:
        """Delete an owner's feed and drop their future events; the number of entries deleted."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO purged_owners (owner_id) VALUES ($1) ON CONFLICT DO NOTHING", owner_id
            )
            status = await conn.execute("DELETE FROM activity WHERE owner_id = $1", owner_id)
        return int(status.split()[-1])

    async def ping(self) -> None:
        """Raise unless the database answers."""
        await self.pool.fetchval("SELECT 1")
