"""The event worker: applies task events from the Redis stream to the feed, exactly once in effect.

Delivery is at least once (a consumer group; entries are acked only after their database
transaction commits); effects are exactly once because that same transaction records the event id
in the inbox. Entries left pending by a dead or failing consumer are reclaimed with XAUTOCLAIM
after `claim_idle_ms`; an entry delivered `max_deliveries` times without success, or one that is
not a valid event at all, goes to the dead-letter stream with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import socket
from collections import deque
from typing import Any

import asyncpg
import redis.exceptions
from redis.asyncio import Redis
from taskmesh_common.events import EventError, parse_event
from taskmesh_common.logging import configure_logging

from taskmesh_activity import streams
from taskmesh_activity.config import ActivitySettings
from taskmesh_activity.feed import entry_for
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
                while self.backlog:
                    await self._handle(self.backlog[0])
                    self.backlog.popleft()
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

    async def _handle(self, message: Message) -> None:
        raw = message.raw_event
        try:
            if raw is None:
                raise EventError("the entry has no `event` field")
            event = parse_event(raw)
        except ValueError as exc:  # EventError, or anything else the parser chokes on
            await self._dead_letter(message, "malformed", str(exc))
            return
        if message.deliveries > self.settings.max_deliveries:
            # Delivered too often: its consumers died on it, or it failed and nobody moved it.
            if await self.repo.is_applied(event.id):
                await self._ack(message, applied=False)
                return
            error = await self.redis.hget(ERRORS_KEY, message.id)
            reason = streams.text(error) if error else "no consumer finished it"
            await self._dead_letter(message, "failed", reason)
            return
        try:
            applied = await self.repo.apply(entry_for(event), stream_id=message.id)
        except TRANSIENT:
            raise
        except Exception as exc:  # a bad event or a bug: it must not stop the rest
            await self._failed(message, exc)
            return
        await self._ack(message, applied=applied)

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


async def serve(settings: ActivitySettings) -> None:
    """Run one worker until SIGTERM or SIGINT."""
    # The socket timeout must outlast a blocking XREADGROUP.
    redis = Redis.from_url(
        settings.redis_url,
        socket_timeout=settings.block_ms / 1000 + 5,
        socket_connect_timeout=2,
    )
    pool = await asyncpg.create_pool(
        settings.database_url, min_size=0, max_size=2, command_timeout=10
    )
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
