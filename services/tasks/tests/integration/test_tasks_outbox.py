"""The outbox relay: every event reaches the stream, in order per task, across outages."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI
from taskmesh.backing import find_redis, run_redis
from taskmesh.processes import free_port
from taskmesh.testing.tokens import TokenMint
from taskmesh_common.events import EVENT_FIELD, TASK_EVENTS_STREAM, parse_event
from taskmesh_tasks.config import TasksSettings
from taskmesh_tasks.main import create_app
from taskmesh_tasks.outbox import OutboxRelay


@pytest.fixture(scope="module")
def outbox_database_url(migrated_database: Callable[[str], str]) -> str:
    return migrated_database("test_tasks_outbox")


class PrivateRedis:
    """A redis-server of our own that can be stopped and restarted with its data."""

    def __init__(self, directory: Path) -> None:
        self.server, _ = find_redis("path")
        self.directory = directory
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._running: contextlib.ExitStack | None = None

    def start(self) -> None:
        self._running = contextlib.ExitStack()
        self._running.enter_context(run_redis(self.server, self.directory, port=self.port))

    def stop(self) -> None:
        assert self._running is not None
        self._running.close()  # SIGTERM: redis saves its data set and exits
        self._running = None


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        if server._running is not None:
            server.stop()


@contextlib.asynccontextmanager
async def running_app(
    database_url: str, redis_url: str, token_mint: TokenMint
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    settings = TasksSettings(
        database_url=database_url,
        redis_url=redis_url,
        jwks_url="http://auth.test/.well-known/jwks.json",
        relay_poll_interval=0.05,
    )
    app = create_app(settings, jwks_transport=token_mint.transport())
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://tasks.test") as client:
            yield app, client


async def bounded(awaitable: Any, seconds: float = 60) -> Any:
    """Await with a deadline; on timeout, show what every task is waiting for."""
    try:
        return await asyncio.wait_for(awaitable, seconds)
    except TimeoutError:
        for task in asyncio.all_tasks():
            task.print_stack(limit=12)
        raise


async def unpublished(database_url: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        count: int = await conn.fetchval("SELECT count(*) FROM outbox")
        return count
    finally:
        await conn.close()


async def wait_drained(database_url: str) -> None:
    deadline = time.monotonic() + 20
    while await unpublished(database_url):
        assert time.monotonic() < deadline, "the relay did not drain the outbox"
        await asyncio.sleep(0.05)


async def stream_events(redis_url: str, owner: str) -> list[Any]:
    store = aioredis.Redis.from_url(redis_url)
    try:
        entries = await store.xrange(TASK_EVENTS_STREAM)
    finally:
        await store.aclose()
    events = [parse_event(fields[EVENT_FIELD.encode()]) for _, fields in entries]
    return [e for e in events if str(e.owner_id) == owner]


def assert_complete_history(events: list[Any], expected_ids: set[str]) -> None:
    """Every outbox event arrived; per task, versions run 1, 2, 3... with no gap or reordering."""
    assert {str(e.id) for e in events} >= expected_ids
    first_seen: dict[str, Any] = {}
    for event in events:  # duplicates are allowed (at least once); keep first deliveries
        first_seen.setdefault(str(event.id), event)
    per_task: dict[str, list[int]] = {}
    for event in first_seen.values():
        if event.type == "task.created":
            per_task.setdefault(str(event.task.id), []).append(event.task.version)
        elif event.type == "task.updated":
            assert event.before.version + 1 == event.after.version
            per_task.setdefault(str(event.after.id), []).append(event.after.version)
        elif event.type == "task.deleted":
            per_task.setdefault(str(event.task.id), []).append(event.task.version + 1)
    for versions in per_task.values():
        assert versions == list(range(1, len(versions) + 1)), versions


async def expected_event_ids(database_url: str, owner: str) -> set[str]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT event_id FROM outbox WHERE owner_id = $1", owner)
    finally:
        await conn.close()
    return {str(r["event_id"]) for r in rows}


async def churn(
    client: httpx.AsyncClient, headers: dict[str, str], tasks: int, rounds: int
) -> None:
    """Create tasks, update each several times, delete some: a steady stream of events."""
    for _ in range(tasks):
        assert (
            await client.post("/v1/tasks", json={"title": "t"}, headers=headers)
        ).status_code == 201
    for version in range(1, rounds + 1):
        for number in range(1, tasks + 1):
            response = await client.patch(
                f"/v1/tasks/{number}",
                json={"priority": version % 5 + 1},
                headers={**headers, "If-Match": f'"{version}"'},
            )
            assert response.status_code == 200, response.text
            await asyncio.sleep(0.005)
    response = await client.delete(
        "/v1/tasks/1", headers={**headers, "If-Match": f'"{rounds + 1}"'}
    )
    assert response.status_code == 204


async def test_events_survive_a_redis_outage_in_order(
    outbox_database_url: str,
    private_redis: PrivateRedis,
    token_mint: TokenMint,
    make_user: Callable[..., Any],
) -> None:
    user = make_user()
    owner = str(user.id)
    async with running_app(outbox_database_url, private_redis.url, token_mint) as (_, client):
        writer = asyncio.create_task(churn(client, user.headers, tasks=5, rounds=30))
        await asyncio.sleep(0.3)
        assert len(await stream_events(private_redis.url, owner)) > 0
        assert not writer.done()
        private_redis.stop()
        # Writes go on while Redis is down; events wait in the outbox.
        await asyncio.sleep(1.0)
        assert await unpublished(outbox_database_url) > 0
        ready = await client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["checks"]["redis"]["degraded"] is True
        private_redis.start()
        await bounded(writer)
        await bounded(wait_drained(outbox_database_url))
    events = await stream_events(private_redis.url, owner)
    assert_complete_history(events, await expected_event_ids(outbox_database_url, owner))
    assert len({str(e.id) for e in events}) == 5 + 5 * 30 + 1


async def test_events_survive_a_relay_killed_mid_stream(
    outbox_database_url: str,
    private_redis: PrivateRedis,
    token_mint: TokenMint,
    make_user: Callable[..., Any],
) -> None:
    user = make_user()
    owner = str(user.id)
    async with running_app(outbox_database_url, private_redis.url, token_mint) as (app, client):
        relay: OutboxRelay = app.state.relay
        writer = asyncio.create_task(churn(client, user.headers, tasks=4, rounds=20))
        await asyncio.sleep(0.3)
        assert relay._task is not None
        assert not writer.done()
        relay._task.cancel()  # as if the process died mid-batch: its transaction rolls back
        with contextlib.suppress(asyncio.CancelledError):
            await bounded(relay._task)
        await bounded(writer)  # the writes after the kill stay in the outbox
        assert await unpublished(outbox_database_url) > 0
        replacement = OutboxRelay(
            database_url=relay.database_url, redis=relay.redis, poll_interval=0.05
        )
        replacement.start()
        await bounded(wait_drained(outbox_database_url))
        await bounded(replacement.stop())
    events = await stream_events(private_redis.url, owner)
    assert_complete_history(events, await expected_event_ids(outbox_database_url, owner))


async def test_two_replicas_publish_in_order(
    outbox_database_url: str,
    private_redis: PrivateRedis,
    token_mint: TokenMint,
    make_user: Callable[..., Any],
) -> None:
    user = make_user()
    owner = str(user.id)
    async with (
        running_app(outbox_database_url, private_redis.url, token_mint) as (_, first),
        running_app(outbox_database_url, private_redis.url, token_mint) as (_, second),
    ):
        for number in range(1, 4):
            response = await first.post(
                "/v1/tasks", json={"title": f"t{number}"}, headers=user.headers
            )
            assert response.status_code == 201
        for version in range(1, 16):
            replica = first if version % 2 else second
            updates = [
                replica.patch(
                    f"/v1/tasks/{number}",
                    json={"status": ("todo", "doing", "done")[version % 3]},
                    headers={**user.headers, "If-Match": f'"{version}"'},
                )
                for number in range(1, 4)
            ]
            assert {r.status_code for r in await bounded(asyncio.gather(*updates))} == {200}
        await bounded(wait_drained(outbox_database_url))
    events = await stream_events(private_redis.url, owner)
    assert_complete_history(events, await expected_event_ids(outbox_database_url, owner))
    assert len(events) >= 3 + 3 * 15
