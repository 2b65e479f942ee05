"""What the relay publishes for each change, what it leaves in the outbox, and the sweep."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import asyncpg
import httpx
import redis.asyncio as aioredis
from fastapi import FastAPI
from taskmesh_common.events import EVENT_FIELD, TASK_EVENTS_STREAM, parse_event
from taskmesh_tasks.outbox import OutboxRelay


async def events_of(redis_url: str, owner: str, count: int) -> list[Any]:
    store = aioredis.Redis.from_url(redis_url)
    deadline = time.monotonic() + 10
    try:
        while True:
            entries = await store.xrange(TASK_EVENTS_STREAM)
            events = [parse_event(f[EVENT_FIELD.encode()]) for _, f in entries]
            mine = [e for e in events if str(e.owner_id) == owner]
            if len(mine) >= count or time.monotonic() > deadline:
                return mine
            await asyncio.sleep(0.05)
    finally:
        await store.aclose()


async def test_every_change_publishes_its_event(
    client: httpx.AsyncClient, make_user: Callable[..., Any], tasks_redis_url: str
) -> None:
    user = make_user()
    headers = {**user.headers, "X-Request-ID": "req-events-1"}
    await client.post("/v1/tasks", json={"title": "a", "tags": ["x"]}, headers=headers)
    await client.post("/v1/tasks", json={"title": "b"}, headers=headers)
    await client.patch("/v1/tasks/1", json={"priority": 5}, headers={**headers, "If-Match": '"1"'})
    await client.post(
        "/v1/tasks/bulk-status", json={"numbers": [2], "status": "done"}, headers=headers
    )
    await client.delete("/v1/tasks/2", headers={**headers, "If-Match": '"2"'})
    await client.post("/v1/tasks/reset", headers=headers)
    events = await events_of(tasks_redis_url, str(user.id), 6)
    assert [e.type for e in events] == [
        "task.created",
        "task.created",
        "task.updated",
        "task.updated",
        "task.deleted",
        "tasks.reset",
    ]
    assert {e.request_id for e in events} == {"req-events-1"}
    assert {e.actor for e in events} == {str(user.id)}
    assert events[0].task.tags == ["x"]
    assert (events[2].changed, events[2].before.priority, events[2].after.priority) == (
        ["priority"],
        3,
        5,
    )
    assert events[3].changed == ["status"]
    assert events[4].task.number == 2
    assert events[5].deleted == 1
    assert len({e.id for e in events}) == 6


async def test_published_events_leave_the_outbox(
    tasks_app: FastAPI, tasks_database_url: str, tasks_redis_url: str, make_user: Callable[..., Any]
) -> None:
    owner = make_user().id
    relay = OutboxRelay(database_url=tasks_database_url, redis=tasks_app.state.relay.redis)
    conn = await asyncpg.connect(tasks_database_url)
    try:
        await conn.execute(
            "INSERT INTO outbox (type, owner_id, actor, deleted)"
            " VALUES ('tasks.reset', $1, 'x', 7)",
            owner,
        )
        # The app's own relay may take the row first; either way it ends on the stream, once.
        await relay.publish_batch()
        deadline = time.monotonic() + 10
        while await conn.fetchval("SELECT count(*) FROM outbox WHERE owner_id = $1", owner):
            assert time.monotonic() < deadline, "the published row is still in the outbox"
            await asyncio.sleep(0.05)
        events = await events_of(tasks_redis_url, str(owner), 1)
        assert [(e.type, e.deleted) for e in events] == [("tasks.reset", 7)]
    finally:
        await relay.stop()
        await conn.close()


async def test_only_the_relay_commits_without_waiting_for_the_disk(
    tasks_app: FastAPI, tasks_database_url: str
) -> None:
    # The relay's deletes may be lost in a crash (the rows are published again); an acknowledged
    # task write may not, so requests keep the server's setting (the test server's is "off").
    setting = "SELECT setting, source FROM pg_settings WHERE name = 'synchronous_commit'"
    relay = OutboxRelay(database_url=tasks_database_url, redis=tasks_app.state.relay.redis)
    try:
        relay_conn = await relay._connection()
        assert tuple(await relay_conn.fetchrow(setting)) == ("off", "client")
    finally:
        await relay.stop()
    async with tasks_app.state.repository.pool.acquire() as request_conn:
        assert (await request_conn.fetchrow(setting))["source"] != "client"


async def test_sweep_forgets_old_idempotency_keys(
    tasks_app: FastAPI, tasks_database_url: str, make_user: Callable[..., Any]
) -> None:
    relay = OutboxRelay(database_url=tasks_database_url, redis=tasks_app.state.relay.redis)
    owner = make_user().id
    conn = await asyncpg.connect(tasks_database_url)
    try:
        await conn.execute(
            "INSERT INTO idempotency_keys (owner_id, key, request_hash, status_code, response_body,"
            " response_headers, created_at) VALUES ($1, 'old', '\\x00', 201, '{}', '{}',"
            " now() - interval '25 hours'), ($1, 'new', '\\x00', 201, '{}', '{}', now())",
            owner,
        )
        await relay.sweep()
        keys = await conn.fetch("SELECT key FROM idempotency_keys WHERE owner_id = $1", owner)
        assert [r["key"] for r in keys] == ["new"]
    finally:
        await relay.stop()
        await conn.close()
