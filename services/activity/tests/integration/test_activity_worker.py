"""The worker on real Redis and PostgreSQL: delivery, dedupe, reclaim, dead letters, outages."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import orjson
import pytest
from redis.asyncio import Redis
from taskmesh_activity import streams
from taskmesh_activity.config import ActivitySettings
from taskmesh_activity.feed import entry_for
from taskmesh_activity.repository import ActivityRepository
from taskmesh_common.events import encode_event

pytestmark = pytest.mark.usefixtures("clean")


async def feed_count(pool: asyncpg.Pool, owner: uuid.UUID | None = None) -> int:
    if owner is None:
        return int(await pool.fetchval("SELECT count(*) FROM activity"))
    return int(await pool.fetchval("SELECT count(*) FROM activity WHERE owner_id = $1", owner))


async def pending(redis: Redis, settings: ActivitySettings) -> int:
    state = await streams.group_state(redis, settings.stream, settings.group)
    return state.pending if state else -1


async def test_events_become_feed_entries_and_are_acked(
    events: Any,
    publish: Any,
    start_worker: Any,
    pool: asyncpg.Pool,
    redis: Redis,
    activity_settings: ActivitySettings,
    eventually: Any,
) -> None:
    owner = uuid.uuid4()
    await publish(events.created(owner, 1, title="Pay rent"))
    await publish(events.updated(owner, 1, before={"title": "Pay rent"}, after={"status": "done"}))
    start_worker()
    await publish(events.reset(owner, 1))

    assert await eventually(lambda: _equals(feed_count(pool, owner), 3))
    rows = await pool.fetch(
        "SELECT summary FROM activity WHERE owner_id = $1 ORDER BY occurred_at", owner
    )
    assert [r["summary"] for r in rows] == [
        "You created #1 Pay rent",
        "You completed #1 Pay rent",
        "You reset your board (1 task removed)",
    ]
    assert await eventually(lambda: _equals(pending(redis, activity_settings), 0))
    assert (await streams.counters(redis))["processed"] == 3


async def test_redelivered_event_has_no_second_effect(
    events: Any,
    publish: Any,
    start_worker: Any,
    pool: asyncpg.Pool,
    redis: Redis,
    activity_settings: ActivitySettings,
    eventually: Any,
) -> None:
    owner = uuid.uuid4()
    event = events.created(owner, 1)
    await publish(event)
    await publish(event)  # the outbox relay may publish twice (crash between XADD and marking)
    start_worker()
    assert await eventually(lambda: _counter(redis, "duplicates", 1))
    assert await feed_count(pool, owner) == 1
    assert await pool.fetchval("SELECT count(*) FROM processed_events") == 1
    assert await pending(redis, activity_settings) == 0


@pytest.mark.parametrize(
    "fields",
    [
        {"event": b"not json"},
        {"event": b"\xff\xfe\x00"},
        {"event": b'{"type": "task.created"}'},
        {"other": b"no event field"},
    ],
    ids=["not-json", "not-utf8", "incomplete", "no-event-field"],
)
async def test_malformed_entries_are_dead_at_once_and_the_rest_flows(
    fields: dict[str, bytes],
    events: Any,
    publish: Any,
    start_worker: Any,
    pool: asyncpg.Pool,
    redis: Redis,
    activity_settings: ActivitySettings,
    eventually: Any,
) -> None:
    owner = uuid.uuid4()
    await publish(events.created(owner, 1))
    bad_id = await publish(**fields)
    await publish(events.created(owner, 2))
    start_worker()
    assert await eventually(lambda: _equals(feed_count(pool, owner), 2))
    [letter] = await streams.list_dead_letters(redis, activity_settings.dead_letter_stream)
    assert letter.meta("reason") == "malformed"
    assert letter.meta("source_id") == bad_id
    assert letter.meta("deliveries") == "1"
    assert letter.meta("error")
    assert letter.original == fields_as_bytes(fields)
    assert await eventually(lambda: _equals(pending(redis, activity_settings), 0))


async def test_other_major_version_goes_to_dead_letters(
    events: Any,
    publish: Any,
    start_worker: Any,
    redis: Redis,
    activity_settings: ActivitySettings,
    eventually: Any,
) -> None:
    body = orjson.loads(encode_event(events.created(uuid.uuid4())))
    body["schema_version"] = "2.0"
    await publish(event=orjson.dumps(body))
    start_worker()
    dead = activity_settings.dead_letter_stream
    assert await eventually(lambda: _equals(redis.xlen(dead), 1))
    [letter] = await streams.list_dead_letters(redis, dead)
    assert "unsupported schema version 2.0" in letter.meta("error")


async def test_poison_event_is_dead_after_n_deliveries_while_the_rest_flows(
    events: Any,
    publish: Any,
    start_worker: Any,
    pool: asyncpg.Pool,
    redis: Redis,
    activity_settings: ActivitySettings,
    eventually: Any,
) -> None:
    owner = uuid.uuid4()
    # Valid JSON and a valid event, but PostgreSQL text cannot hold NUL: every attempt fails.
    poison_id = await publish(events.created(owner, 99, title="bad\x00title"))
    for number in range(1, 21):
        await publish(events.created(owner, number))
    start_worker()
    assert await eventually(lambda: _equals(feed_count(pool, owner), 20))
    dead = activity_settings.dead_letter_stream
    assert await eventually(lambda: _equals(redis.xlen(dead), 1), within=15)
    [letter] = await streams.list_dead_letters(redis, dead)
    assert letter.meta("source_id") == poison_id
    assert letter.meta("reason") == "failed"
    assert letter.meta("deliveries") == str(activity_settings.max_deliveries)
    assert "CharacterNotInRepertoireError" in letter.meta("error")
    counters = await streams.counters(redis)
    assert counters["failures"] == activity_settings.max_deliveries
    assert counters["processed"] == 20
    assert counters["dead_letters"] == 1
    assert await eventually(lambda: _equals(pending(redis, activity_settings), 0))
    assert await redis.hlen(streams.ERRORS_KEY) == 0


async def test_entries_of_a_dead_consumer_are_reclaimed(
    events: Any,
    publish: Any,
    start_worker: Any,
    pool: asyncpg.Pool,
    redis: Redis,
    activity_settings: ActivitySettings,
    eventually: Any,
) -> None:
    s = activity_settings
    owner = uuid.uuid4()
    await streams.ensure_group(redis, s.stream, s.group)
    for number in range(1, 6):
        await publish(events.created(owner, number))
    taken: Any = await redis.xreadgroup(s.group, "crashed-consumer", {s.stream: ">"}, count=5)
    assert len(taken[0][1]) == 5
    start_worker()
    assert await eventually(lambda: _equals(feed_count(pool, owner), 5))
    assert (await streams.counters(redis))["reclaimed"] == 5
    assert await eventually(lambda: _equals(pending(redis, s), 0))


async def test_crash_between_commit_and_ack_has_no_second_effect(
    events: Any,
    publish: Any,
    start_worker: Any,
    repo: ActivityRepository,
    pool: asyncpg.Pool,
    redis: Redis,
    activity_settings: ActivitySettings,
    eventually: Any,
) -> None:
    s = activity_settings
    owner = uuid.uuid4()
    event = events.created(owner, 1)
    await streams.ensure_group(redis, s.stream, s.group)
    entry_id = await publish(event)
    await redis.xreadgroup(s.group, "crashed-consumer", {s.stream: ">"}, count=1)
    # The crashed consumer committed the transaction but died before its XACK.
    assert await repo.apply(entry_for(event), stream_id=entry_id)
    start_worker()
    assert await eventually(lambda: _counter(redis, "duplicates", 1))
    assert (await streams.counters(redis))["reclaimed"] == 1
    assert await eventually(lambda: _equals(pending(redis, s), 0))
    assert await feed_count(pool, owner) == 1


async def test_over_delivered_entry_already_applied_is_only_acked(
    events: Any,
    publish: Any,
    start_worker: Any,
    repo: ActivityRepository,
    pool: asyncpg.Pool,
    redis: Redis,
    activity_settings: ActivitySettings,
    eventually: Any,
) -> None:
    s = activity_settings
    owner = uuid.uuid4()
    event = events.created(owner, 1)
    await streams.ensure_group(redis, s.stream, s.group)
    entry_id = await publish(event)
    await redis.xreadgroup(s.group, "crashed-consumer", {s.stream: ">"}, count=1)
    # Applied, then the consumer died before XACK, many times over.
    await repo.apply(entry_for(event), stream_id=entry_id)
    await redis.xclaim(s.stream, s.group, "crashed-consumer", 0, [entry_id], retrycount=10)
    start_worker()
    assert await eventually(lambda: _equals(pending(redis, s), 0))
    assert await redis.xlen(s.dead_letter_stream) == 0
    assert await feed_count(pool, owner) == 1


async def test_over_delivered_entry_never_applied_is_dead(
    events: Any,
    publish: Any,
    start_worker: Any,
    pool: asyncpg.Pool,
    redis: Redis,
    activity_settings: ActivitySettings,
    eventually: Any,
) -> None:
    s = activity_settings
    await streams.ensure_group(redis, s.stream, s.group)
    entry_id = await publish(events.created(uuid.uuid4(), 1))
    await redis.xreadgroup(s.group, "crashed-consumer", {s.stream: ">"}, count=1)
    # Every consumer that took it died (say it crashes the process): nobody recorded an error.
    await redis.xclaim(s.stream, s.group, "crashed-consumer", 0, [entry_id], retrycount=10)
    start_worker()
    assert await eventually(lambda: _equals(redis.xlen(s.dead_letter_stream), 1))
    [letter] = await streams.list_dead_letters(redis, s.dead_letter_stream)
    assert letter.meta("error") == "no consumer finished it"
    assert await feed_count(pool) == 0


async def test_survives_postgres_dropping_its_connections(
    events: Any,
    publish: Any,
    start_worker: Any,
    pool: asyncpg.Pool,
    redis: Redis,
    activity_settings: ActivitySettings,
    eventually: Any,
) -> None:
    owner = uuid.uuid4()
    start_worker()
    for number in range(1, 301):
        await publish(events.created(owner, number))
        if number % 50 == 0:
            # Like a PostgreSQL restart for every session but this test's own.
            await pool.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
    assert await eventually(lambda: _equals(feed_count(pool, owner), 300), within=20)
    assert await eventually(lambda: _equals(pending(redis, activity_settings), 0))
    assert await redis.xlen(activity_settings.dead_letter_stream) == 0


async def test_group_is_recreated_when_the_stream_is_deleted(
    events: Any,
    publish: Any,
    start_worker: Any,
    pool: asyncpg.Pool,
    redis: Redis,
    activity_settings: ActivitySettings,
    eventually: Any,
) -> None:
    owner = uuid.uuid4()
    start_worker()
    await publish(events.created(owner, 1))
    assert await eventually(lambda: _equals(feed_count(pool, owner), 1))
    await redis.delete(activity_settings.stream)
    await asyncio.sleep(0.3)
    await publish(events.created(owner, 2))
    assert await eventually(lambda: _equals(feed_count(pool, owner), 2))


async def test_events_of_a_purged_owner_are_dropped(
    events: Any,
    publish: Any,
    start_worker: Any,
    repo: ActivityRepository,
    pool: asyncpg.Pool,
    redis: Redis,
    activity_settings: ActivitySettings,
    eventually: Any,
) -> None:
    owner, other = uuid.uuid4(), uuid.uuid4()
    assert await repo.purge_owner(owner) == 0
    await publish(events.created(owner, 1))
    await publish(events.created(other, 1))
    start_worker()
    assert await eventually(lambda: _equals(feed_count(pool, other), 1))
    assert await eventually(lambda: _equals(pending(redis, activity_settings), 0))
    assert await feed_count(pool, owner) == 0


async def test_stop_returns_promptly(start_worker: Any) -> None:
    worker = start_worker(block_ms=1000)
    await asyncio.sleep(0.2)
    worker.stop()
    await asyncio.wait_for(worker.stopping.wait(), 1)


def fields_as_bytes(fields: dict[str, bytes]) -> dict[bytes, bytes]:
    return {k.encode(): v for k, v in fields.items()}


async def _equals(value: Any, expected: Any) -> bool:
    return bool(await value == expected)


async def _counter(redis: Redis, name: str, expected: int) -> bool:
    return (await streams.counters(redis)).get(name) == expected
