"""Fixtures of the activity suite: its database (migrated), its Redis DB (3) and event builders."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from redis.asyncio import Redis
from taskmesh.backing import Backing
from taskmesh_activity.config import ActivitySettings
from taskmesh_activity.repository import ActivityRepository
from taskmesh_activity.worker import Worker
from taskmesh_common.events import (
    TaskCreated,
    TaskDeleted,
    TaskSnapshot,
    TasksReset,
    TaskUpdated,
    encode_event,
)

SERVICE_DIR = Path(__file__).resolve().parents[1]
REDIS_DB = 3


@pytest.fixture(scope="session")
def activity_database(create_database: Callable[[str], str]) -> str:
    """The migrated `test_activity` database (migrations run through the real Alembic CLI)."""
    url = create_database("test_activity")
    subprocess.run(
        [sys.executable, "-m", "alembic", "-c", "alembic.ini", "upgrade", "head"],
        cwd=SERVICE_DIR,
        env={**os.environ, "ACTIVITY_DATABASE_URL": url},
        check=True,
        capture_output=True,
    )
    return url


@pytest.fixture(scope="session")
def activity_settings(activity_database: str, backing: Backing) -> ActivitySettings:
    """Settings pointing at the test backing servers, with short reclaim times."""
    return ActivitySettings(
        database_url=activity_database,
        redis_url=backing.redis_url_for(REDIS_DB),
        jwks_url="http://auth.test/.well-known/jwks.json",
        claim_idle_ms=300,
        claim_interval_ms=100,
        block_ms=100,
        max_deliveries=3,
        max_backoff_seconds=0.5,
        metrics_refresh_seconds=0.1,
    )


@pytest.fixture(scope="session")
async def pool(activity_settings: ActivitySettings) -> AsyncIterator[asyncpg.Pool]:
    """A connection pool on the test database."""
    pool = await asyncpg.create_pool(activity_settings.database_url, min_size=1, max_size=4)
    yield pool
    await pool.close()


@pytest.fixture(scope="session")
async def redis(activity_settings: ActivitySettings) -> AsyncIterator[Redis]:
    """A client on this suite's Redis database."""
    client = Redis.from_url(activity_settings.redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def clean(pool: asyncpg.Pool, redis: Redis) -> None:
    """Start a test with an empty feed, inbox and Redis database."""
    await pool.execute("TRUNCATE activity, processed_events, purged_owners")
    await redis.flushdb()


@pytest.fixture
def repo(pool: asyncpg.Pool) -> ActivityRepository:
    """The repository on the test database."""
    return ActivityRepository(pool)


class EventFactory:
    """Builds valid task events with sensible defaults."""

    def __init__(self) -> None:
        self.clock = datetime(2026, 1, 1, 12, tzinfo=UTC)

    def _next_time(self) -> datetime:
        self.clock += timedelta(seconds=1)
        return self.clock

    def task(self, owner: uuid.UUID, number: int = 1, **fields: Any) -> TaskSnapshot:
        """A task snapshot."""
        values: dict[str, Any] = {
            "id": uuid.uuid5(owner, str(number)),
            "number": number,
            "owner_id": owner,
            "title": f"Task {number}",
            "priority": 3,
            "status": "todo",
            "version": 1,
        }
        values.update(fields)
        return TaskSnapshot(**values)

    def _common(self, owner: uuid.UUID, actor: str | None) -> dict[str, Any]:
        return {
            "id": uuid.uuid4(),
            "occurred_at": self._next_time(),
            "owner_id": owner,
            "actor": actor or str(owner),
        }

    def created(
        self, owner: uuid.UUID, number: int = 1, *, actor: str | None = None, **fields: Any
    ) -> TaskCreated:
        """A task.created event."""
        return TaskCreated(**self._common(owner, actor), task=self.task(owner, number, **fields))

    def updated(
        self,
        owner: uuid.UUID,
        number: int = 1,
        *,
        before: dict[str, Any] | None = None,
        after: dict[str, Any],
        actor: str | None = None,
    ) -> TaskUpdated:
        """A task.updated event changing `after`'s fields."""
        old = self.task(owner, number, **(before or {}))
        new = old.model_copy(update={**after, "version": old.version + 1})
        return TaskUpdated(
            **self._common(owner, actor), before=old, after=new, changed=sorted(after)
        )

    def deleted(self, owner: uuid.UUID, number: int = 1, **fields: Any) -> TaskDeleted:
        """A task.deleted event."""
        return TaskDeleted(**self._common(owner, None), task=self.task(owner, number, **fields))

    def reset(self, owner: uuid.UUID, deleted: int = 3, *, actor: str | None = None) -> TasksReset:
        """A tasks.reset event."""
        return TasksReset(**self._common(owner, actor), deleted=deleted)


@pytest.fixture
def events() -> EventFactory:
    """A fresh event builder."""
    return EventFactory()


@pytest.fixture
def publish(redis: Redis, activity_settings: ActivitySettings) -> Callable[..., Any]:
    """Append an event (or raw field values) to the task-events stream; returns the entry id."""

    async def publish(event: Any = None, /, **raw: bytes | str) -> str:
        fields = raw if event is None else {"event": encode_event(event)}
        entry_id = await redis.xadd(activity_settings.stream, fields)  # type: ignore[arg-type]
        return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)

    return publish


@pytest.fixture
def eventually() -> Callable[..., Any]:
    """Poll an async predicate until it holds or `within` seconds pass; returns its last value."""

    async def eventually(predicate: Callable[[], Any], within: float = 10.0) -> Any:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            value = await predicate()
            if value or loop.time() > deadline:
                return value
            await asyncio.sleep(0.05)

    return eventually


@pytest.fixture
async def start_worker(
    activity_settings: ActivitySettings, redis: Redis, pool: asyncpg.Pool
) -> AsyncIterator[Callable[..., Worker]]:
    """Start in-process workers (settings overridable); they are stopped after the test."""
    running: list[tuple[Worker, asyncio.Task[None]]] = []

    def start(**overrides: Any) -> Worker:
        worker = Worker(
            settings=activity_settings.model_copy(update=overrides),
            redis=redis,
            repo=ActivityRepository(pool),
            consumer=f"test-{uuid.uuid4().hex[:8]}",
        )
        running.append((worker, asyncio.create_task(worker.run())))
        return worker

    yield start
    for worker, _ in running:
        worker.stop()
    await asyncio.wait_for(asyncio.gather(*(task for _, task in running)), 10)
