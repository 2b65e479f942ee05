"""The outbox relay: publishes committed task events to the Redis stream, in order, at least once.

Ordering with several replicas: each batch runs in a transaction holding one transaction-level
advisory lock, so at most one relay publishes at a time and always the oldest unpublished rows
first (events of one task are committed in order because changes to a task lock its row). A
replica that loses the race simply skips its turn. While Redis is down, rows stay unpublished
(the outbox is the buffer) and the relay retries with exponential backoff.

A published row is deleted in the transaction that published it, so the outbox holds only what
the stream has not got yet. That transaction commits asynchronously: a crash may lose the delete
but never an event, and the rows it brings back are published again, which at-least-once
delivery (consumers dedupe by event id) already allows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import asyncpg
import orjson
from prometheus_client import Counter, Gauge, Histogram
from pydantic import ValidationError
from redis.asyncio import Redis
from redis.exceptions import RedisError
from taskmesh_common.events import (
    EVENT_FIELD,
    TASK_EVENTS_STREAM,
    TaskCreated,
    TaskDeleted,
    TaskSnapshot,
    TasksReset,
    TaskUpdated,
    encode_event,
)

logger = logging.getLogger("taskmesh.tasks.outbox")

RELAY_LOCK_ID = 0x7461736B6F7574  # "taskout": the one advisory lock every relay replica shares
MIN_BACKOFF = 0.1
MAX_BACKOFF = 5.0
SWEEP_INTERVAL = 60.0
STOP_TIMEOUT = 5.0
COALESCE_SECONDS = 0.02
TRACKED_FIELDS = ("title", "description", "priority", "status", "due", "tags")

OUTBOX_LAG = Gauge(
    "tasks_outbox_lag_seconds", "Age of the oldest unpublished outbox event at the last relay pass"
)
OUTBOX_PUBLISHED = Counter("tasks_outbox_published_total", "Outbox events published to Redis")
OUTBOX_ERRORS = Counter("tasks_outbox_relay_errors_total", "Relay passes that failed", ["kind"])
OUTBOX_DELIVERY = Histogram(
    "tasks_outbox_delivery_seconds",
    "Time from a change's commit to its event being on the stream",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)

PENDING = """
SELECT id, event_id, type, owner_id, actor, request_id, occurred_at, before, after, deleted,
       extract(epoch FROM clock_timestamp() - occurred_at)::float8 AS age
FROM outbox ORDER BY id LIMIT $1
"""
DELETE_PUBLISHED = "DELETE FROM outbox WHERE id = ANY($1::bigint[])"
SWEEP_KEYS = "DELETE FROM idempotency_keys WHERE created_at < now() - make_interval(hours => $1)"

Event = TaskCreated | TaskUpdated | TaskDeleted | TasksReset


def to_event(row: asyncpg.Record | dict[str, Any]) -> Event:
    """Build the published event from an outbox row."""
    common: dict[str, Any] = {
        "id": row["event_id"],
        "occurred_at": row["occurred_at"],
        "owner_id": row["owner_id"],
        "actor": row["actor"],
        "request_id": row["request_id"],
    }
    kind = row["type"]
    if kind == "tasks.reset":
        return TasksReset(**common, deleted=row["deleted"])
    if kind == "task.created":
        return TaskCreated(**common, task=TaskSnapshot.model_validate_json(row["after"]))
    if kind == "task.deleted":
        return TaskDeleted(**common, task=TaskSnapshot.model_validate_json(row["before"]))
    before, after = orjson.loads(row["before"]), orjson.loads(row["after"])
    changed = [name for name in TRACKED_FIELDS if before.get(name) != after.get(name)]
    return TaskUpdated(
        **common,
        before=TaskSnapshot.model_validate(before),
        after=TaskSnapshot.model_validate(after),
        changed=changed,
    )


def _reraise_cancellation(exc: BaseException) -> None:
    """Stop if this task was cancelled, even when a client library replaced the CancelledError.

    asyncpg's rollback on the way out of a cancelled transaction can raise its own error, which
    would otherwise make a cancelled relay carry on forever.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError from exc


class OutboxRelay:
    """Moves outbox rows to the task event stream until stopped."""

    def __init__(
        self,
        *,
        database_url: str,
        redis: Redis,
        batch_size: int = 200,
        poll_interval: float = 0.25,
        stream_max_length: int = 1_000_000,
        idempotency_retention_hours: int = 24,
    ) -> None:
        self.database_url = database_url
        self._conn: asyncpg.Connection | None = None
        self.redis = redis
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.stream_max_length = stream_max_length
        self.idempotency_retention_hours = idempotency_retention_hours
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        """Publish soon: this process just committed a change."""
        self._wake.set()

    def start(self) -> None:
        """Run the relay in the background."""
        self._task = asyncio.create_task(self.run(), name="outbox-relay")

    async def stop(self) -> None:
        """Finish the current batch and stop (cancelled after STOP_TIMEOUT seconds)."""
        self._stopping.set()
        self._wake.set()
        if self._task is not None and not self._task.done():
            try:
                await asyncio.wait_for(self._task, STOP_TIMEOUT)
            except TimeoutError:
                logger.warning("outbox relay did not stop in time; cancelled")
        self._drop_connection()

    async def _connection(self) -> asyncpg.Connection:
        """The relay's own connection (opened on demand), so it never waits for request slots."""
        if self._conn is None or self._conn.is_closed():
            self._conn = await asyncpg.connect(
                self.database_url,
                # Its writes (deleting published rows, sweeping old keys) may be redone after a
                # crash, so they need not wait for the disk (module docstring).
                server_settings={
                    "application_name": "taskmesh-tasks-relay",
                    "synchronous_commit": "off",
                },
            )
        return self._conn

    def _drop_connection(self) -> None:
        if self._conn is not None:
            self._conn.terminate()  # also ends a transaction (and its lock) left by a cancel
            self._conn = None

    async def run(self) -> None:
        """Publish until stopped, backing off while PostgreSQL or Redis fail."""
        try:
            await self._run()
        finally:
            self._drop_connection()

    async def _run(self) -> None:
        backoff = MIN_BACKOFF
        next_sweep = time.monotonic() + SWEEP_INTERVAL
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                published = await self.publish_batch()
                if time.monotonic() >= next_sweep:
                    await self.sweep()
                    next_sweep = time.monotonic() + SWEEP_INTERVAL
            except (RedisError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                _reraise_cancellation(exc)
                kind = "redis" if isinstance(exc, RedisError) else "postgres"
                if kind == "postgres":
                    self._drop_connection()
                OUTBOX_ERRORS.labels(kind).inc()
                logger.warning("outbox relay pass failed; retrying", extra={"error": repr(exc)})
                await self._sleep(self._stopping, backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
                continue
            backoff = MIN_BACKOFF
            if published < self.batch_size:
                # A short pause lets a burst of writes share one pass instead of one pass each.
                await self._sleep(self._stopping, COALESCE_SECONDS)
                await self._sleep(self._wake, self.poll_interval)

    @staticmethod
    async def _sleep(until: asyncio.Event, seconds: float) -> None:
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation that
        # arrives as the event is set, and a cancelled relay would then run on.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await until.wait()

    async def publish_batch(self) -> int:
        """Publish the oldest unpublished events (if no other replica is); return how many."""
        conn = await self._connection()
        async with conn.transaction():
            if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", RELAY_LOCK_ID):
                return 0
            rows = await conn.fetch(PENDING, self.batch_size)
            OUTBOX_LAG.set(rows[0]["age"] if rows else 0.0)
            if not rows:
                return 0
            pipe = self.redis.pipeline(transaction=False)
            for row in rows:
                try:
                    payload = encode_event(to_event(row))
                except (ValidationError, ValueError):
                    # Cannot happen for rows our SQL wrote; never let one row stall the stream.
                    logger.exception("skipping unpublishable outbox row", extra={"id": row["id"]})
                    OUTBOX_ERRORS.labels("invalid").inc()
                    continue
                pipe.xadd(
                    TASK_EVENTS_STREAM,
                    {EVENT_FIELD: payload},
                    maxlen=self.stream_max_length,
                    approximate=True,
                )
            await pipe.execute()
            await conn.execute(DELETE_PUBLISHED, [row["id"] for row in rows])
        OUTBOX_PUBLISHED.inc(len(rows))
        for row in rows:
            OUTBOX_DELIVERY.observe(max(row["age"], 0.0))
        return len(rows)

    async def sweep(self) -> None:
        """Forget idempotency records past their retention."""
        conn = await self._connection()
        await conn.execute(SWEEP_KEYS, self.idempotency_retention_hours)
