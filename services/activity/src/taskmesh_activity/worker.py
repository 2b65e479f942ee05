"""The event worker: applies task events from the Redis stream to the feed, exactly once in effect.

Delivery is at least once (a consumer group; entries are acked only after their database
transaction commits); effects are exactly once because that same transaction records the event id
in the inbox. Each batch read is applied in one transaction and acked with one XACK; when that
transaction fails for a reason other than the infrastructure, its events are applied one by one,
so the bad one is isolated. Entries left pending by a dead or failing consumer are reclaimed with
XAUTOCLAIM after `claim_idle_ms`; an entry delivered `max_deliveries` times without success, or
one that is not a valid event at all, goes to the dead-letter stream with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import secrets
import signal
import socket
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID

import asyncpg
import redis.exceptions
from redis.asyncio import Redis
from taskmesh_common.events import EventError, parse_event
from taskmesh_common.logging import configure_logging

from taskmesh_activity import streams
from taskmesh_activity.config import ActivitySettings
from taskmesh_activity.feed import AnyTaskEvent, FeedEntry, entry_for
from taskmesh_activity.repository import ActivityRepository
from taskmesh_activity.streams import COUNTERS_KEY, ERRORS_KEY, Message

logger = logging.getLogger("taskmesh.activity.worker")

# Infrastructure trouble: wait and retry the same work; it says nothing about the event.
TRANSIENT: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InsufficientResourcesError,
    asyncpg.exceptions.SerializationError,
    asyncpg.exceptions.DeadlockDetectedError,
)
# A consumer idle this long (alive ones read every `block_ms`) with nothing pending is forgotten.
FORGET_CONSUMER_AFTER_MS = 15 * 60 * 1000


def consumer_name() -> str:
    """A consumer name unique to this process."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class Worker:
    """One consumer of the task-events group."""

    def __init__(
        self,
        *,
        settings: ActivitySettings,
        redis: Redis,
        repo: ActivityRepository,
        consumer: str,
    ) -> None:
        self.settings = settings
        self.redis = redis
        self.repo = repo
        self.consumer = consumer
        self.stopping = asyncio.Event()
        # Delivered to us, not yet handled; survives infrastructure errors so nothing is skipped.
        self.backlog: deque[Message] = deque()
        self._claim_cursor = "0-0"
        self._next_claim = 0.0

    def stop(self) -> None:
        """Finish the entries in hand, then return from :meth:`run`."""
        self.stopping.set()

    async def run(self) -> None:
        """Consume until stopped, riding out Redis and PostgreSQL outages with backoff."""
        logger.info("worker started", extra={"consumer": self.consumer})
        delay, group_ready = 0.0, False
        while not self.stopping.is_set():
            try:
                if not group_ready:
                    await streams.ensure_group(
                        self.redis, self.settings.stream, self.settings.group
                    )
                    group_ready = True
                if not self.backlog:
                    self.backlog.extend(await self._fetch())
                # A stop request still finishes the batch in hand, so nothing waits for a reclaim.
                if self.backlog:
                    await self._settle_backlog()
                delay = 0.0
            except Exception as exc:  # the worker outlives any single failure
                if isinstance(exc, redis.exceptions.ResponseError) and "NOGROUP" in str(exc):
                    # The stream or group was deleted: what we hold belongs to a group that is gone.
                    logger.warning("consumer group missing; creating it again")
                    self.backlog.clear()
                    group_ready = False
                    continue
                if not isinstance(exc, TRANSIENT):
                    logger.exception("unexpected error in the worker loop")
                    if self.backlog:
                        # Not retried in place: it stays pending, so its delivery count grows on
                        # each reclaim until it is dead-lettered, and the entries behind it flow.
                        self.backlog.popleft()
                delay = min(max(delay * 2, 0.1), self.settings.max_backoff_seconds)
                logger.warning(
                    "backing off", extra={"error": repr(exc), "retry_in_s": round(delay, 2)}
                )
                await self._pause(delay)
        logger.info("worker stopped", extra={"consumer": self.consumer})

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), seconds)

    async def _fetch(self) -> list[Message]:
        now = asyncio.get_running_loop().time()
        if now >= self._next_claim:
            claimed = await self._claim()
            if self._claim_cursor == "0-0":
                self._next_claim = now + self.settings.claim_interval_ms / 1000
                await self._forget_dead_consumers()
            if claimed:
                return claimed
        return await self._read()

    async def _read(self) -> list[Message]:
        s = self.settings
        reply: Any = await self.redis.xreadgroup(
            s.group, self.consumer, {s.stream: ">"}, count=s.batch_size, block=s.block_ms
        )
        return [
            Message(id=streams.text(entry_id), fields=fields, deliveries=1)
            for _, entries in reply or []
            for entry_id, fields in entries
        ]

    async def _claim(self) -> list[Message]:
        s = self.settings
        reply: list[Any] = await self.redis.xautoclaim(
            s.stream,
            s.group,
            self.consumer,
            min_idle_time=s.claim_idle_ms,
            start_id=self._claim_cursor,
            count=s.batch_size,
        )
        self._claim_cursor = streams.text(reply[0])
        entries = [(streams.text(i), fields) for i, fields in reply[1] if fields is not None]
        if not entries:
            return []
        pending: list[dict[str, Any]] = await self.redis.xpending_range(
            s.stream,
            s.group,
            min=entries[0][0],
            max=entries[-1][0],
            count=len(entries),
            consumername=self.consumer,
        )
        deliveries = {streams.text(p["message_id"]): int(p["times_delivered"]) for p in pending}
        await self.redis.hincrby(COUNTERS_KEY, "reclaimed", len(entries))
        logger.info("reclaimed stalled entries", extra={"count": len(entries)})
        return [
            Message(id=entry_id, fields=fields, deliveries=deliveries.get(entry_id, 2))
            for entry_id, fields in entries
        ]

    async def _forget_dead_consumers(self) -> None:
        s = self.settings
        consumers: list[dict[str, Any]] = await self.redis.xinfo_consumers(s.stream, s.group)
        for info in consumers:
            name = streams.text(info["name"])
            idle = int(info["idle"])
            if name != self.consumer and info["pending"] == 0 and idle > FORGET_CONSUMER_AFTER_MS:
                await self.redis.xgroup_delconsumer(s.stream, s.group, name)

    async def _settle_backlog(self) -> None:
        """Settle the entries in hand: odd ones one by one, then the valid events as one batch."""
        odd: list[tuple[Message, Callable[[], Awaitable[None]]]] = []
        valid: list[tuple[Message, FeedEntry]] = []
        for message in self.backlog:
            try:
                event = _event_of(message)
            except ValueError as exc:  # EventError, or anything else the parser chokes on
                odd.append((message, functools.partial(self._malformed, message, exc)))
                continue
            try:
                entry = entry_for(event)
            except Exception as exc:  # a bug on this event: retried like a failing apply
                odd.append((message, functools.partial(self._failed, message, exc)))
                continue
            if message.deliveries > self.settings.max_deliveries:
                odd.append((message, functools.partial(self._overdue, message, entry)))
            else:
                valid.append((message, entry))
        # The entry being settled is always the first in hand, so the loop's error handling (which
        # gives up on the first entry after an unexpected error) gives up on the right one.
        self.backlog.clear()
        self.backlog.extend(message for message, _ in odd)
        self.backlog.extend(message for message, _ in valid)
        for _, settle in odd:
            await settle()
            self.backlog.popleft()
        if valid:
            await self._apply_batch(valid)

    async def _malformed(self, message: Message, exc: ValueError) -> None:
        await self._dead_letter(message, "malformed", str(exc))

    async def _overdue(self, message: Message, entry: FeedEntry) -> None:
        # Delivered too often: its consumers died on it, or it failed and nobody moved it.
        if await self.repo.is_applied(entry.event_id):
            await self._ack(message, applied=False)
            return
        error = await self.redis.hget(ERRORS_KEY, message.id)
        reason = streams.text(error) if error else "no consumer finished it"
        await self._dead_letter(message, "failed", reason)

    async def _apply_batch(self, valid: list[tuple[Message, FeedEntry]]) -> None:
        try:
            applied = await self.repo.apply_batch([(entry, m.id) for m, entry in valid])
        except TRANSIENT:
            raise
        except Exception as exc:  # one bad event fails the whole statement: find it
            logger.warning(
                "batch failed; applying its events one by one",
                extra={"count": len(valid), "error": f"{type(exc).__name__}: {exc}"},
            )
            for message, entry in valid:
                await self._apply_one(message, entry)
                self.backlog.popleft()
            return
        await self._ack_batch([m for m, _ in valid], applied=applied)
        self.backlog.clear()

    async def _apply_one(self, message: Message, entry: FeedEntry) -> None:
        try:
            applied = await self.repo.apply(entry, stream_id=message.id)
        except TRANSIENT:
            raise
        except Exception as exc:  # a bad event or a bug: it must not stop the rest
            await self._failed(message, exc)
            return
        await self._ack(message, applied=applied)

    async def _ack_batch(self, messages: list[Message], *, applied: set[UUID]) -> None:
        s = self.settings
        # `applied` holds distinct event ids, each from one of these entries; the rest are
        # redeliveries (of an event applied before, or earlier in this batch).
        duplicates = len(messages) - len(applied)
        retried = [m.id for m in messages if m.deliveries > 1]
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.xack(s.stream, s.group, *(m.id for m in messages))
            if applied:
                pipe.hincrby(COUNTERS_KEY, "processed", len(applied))
            if duplicates:
                pipe.hincrby(COUNTERS_KEY, "duplicates", duplicates)
            if retried:
                pipe.hdel(ERRORS_KEY, *retried)
            await pipe.execute()

    async def _ack(self, message: Message, *, applied: bool) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.xack(self.settings.stream, self.settings.group, message.id)
            pipe.hincrby(COUNTERS_KEY, "processed" if applied else "duplicates", 1)
            if message.deliveries > 1:
                pipe.hdel(ERRORS_KEY, message.id)
            await pipe.execute()

    async def _failed(self, message: Message, exc: Exception) -> None:
        error = f"{type(exc).__name__}: {exc}"
        logger.warning(
            "event failed",
            extra={"stream_id": message.id, "deliveries": message.deliveries, "error": error},
        )
        if message.deliveries >= self.settings.max_deliveries:
            await self.redis.hincrby(COUNTERS_KEY, "failures", 1)
            await self._dead_letter(message, "failed", error)
            return
        # Left pending: XAUTOCLAIM hands it out again after `claim_idle_ms`.
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hset(ERRORS_KEY, message.id, error[:4000])
            pipe.hincrby(COUNTERS_KEY, "failures", 1)
            await pipe.execute()

    async def _dead_letter(self, message: Message, reason: str, error: str) -> None:
        s = self.settings
        logger.error(
            "event moved to dead letters",
            extra={"stream_id": message.id, "reason": reason, "error": error},
        )
        await streams.move_to_dead_letters(
            self.redis,
            stream=s.stream,
            group=s.group,
            dead_stream=s.dead_letter_stream,
            maxlen=s.dead_letter_maxlen,
            message=message,
            reason=reason,
            error=error,
            consumer=self.consumer,
        )


def _event_of(message: Message) -> AnyTaskEvent:
    """The task event an entry carries; ValueError when it carries none."""
    raw = message.raw_event
    if raw is None:
        raise EventError("the entry has no `event` field")
    return parse_event(raw)


async def _rollback_if_needed(conn: asyncpg.Connection) -> None:
    """Cheaper than asyncpg's default reset, a round trip per statement to undo session state.

    The worker never leaves session state behind (no session locks, LISTEN, SET or cursors), so
    the only thing to undo is a transaction a cancelled statement left open.
    """
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


async def connect_pool(settings: ActivitySettings) -> asyncpg.Pool:
    """The worker's connection pool: a statement at a time, so two connections are plenty."""
    # min_size=0: the worker starts (and backs off) while PostgreSQL is still down.
    return await asyncpg.create_pool(
        settings.database_url,
        min_size=0,
        max_size=2,
        command_timeout=10,
        server_settings={"application_name": "taskmesh-activity-worker"},
        reset=_rollback_if_needed,
    )


async def serve(settings: ActivitySettings) -> None:
    """Run one worker until SIGTERM or SIGINT."""
    # The socket timeout must outlast a blocking XREADGROUP.
    redis = Redis.from_url(
        settings.redis_url,
        socket_timeout=settings.block_ms / 1000 + 5,
        socket_connect_timeout=2,
    )
    pool = await connect_pool(settings)
    worker = Worker(
        settings=settings,
        redis=redis,
        repo=ActivityRepository(pool),
        consumer=settings.consumer or consumer_name(),
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, worker.stop)
    try:
        await worker.run()
    finally:
        await redis.aclose()
        try:
            await asyncio.wait_for(pool.close(), 5)
        except TimeoutError:
            pool.terminate()


def main() -> None:
    """Entry point of `python -m taskmesh_activity.worker`."""
    settings = ActivitySettings()
    configure_logging("activity-worker", settings.log_level)
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
