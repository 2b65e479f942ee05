"""Batches: each read is applied in one transaction, and a bad event in it is isolated."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import pytest
from redis.asyncio import Redis
from taskmesh_activity import streams
from taskmesh_activity.config import ActivitySettings
from taskmesh_activity.feed import entry_for
from taskmesh_activity.repository import ActivityRepository
from taskmesh_activity.worker import connect_pool
from taskmesh_common.events import encode_event

pytestmark = pytest.mark.usefixtures("clean")


async def publish_at_once(redis: Redis, settings: ActivitySettings, events: list[Any]) -> list[str]:
    """Append events in one MULTI/EXEC, so that one XREADGROUP takes them all."""
    async with redis.pipeline(transaction=True) as pipe:
        for event in events:
            pipe.xadd(settings.stream, {"event": encode_event(event)})
        ids = await pipe.execute()
    return [streams.text(entry_id) for entry_id in ids]


async def settled(redis: Redis, settings: ActivitySettings) -> bool:
    state = await streams.group_state(redis, settings.stream, settings.group)
    return state is not None and state.pending == 0 and state.lag == 0


async def commit_times(pool: asyncpg.Pool, event_ids: list[uuid.UUID]) -> set[Any]:
    """The distinct transaction start times (now()) that recorded these events in the inbox."""
    rows = await pool.fetch(
        "SELECT processed_at FROM processed_events WHERE event_id = ANY($1)", event_ids
    )
    assert len(rows) == len(event_ids)
    return {row["processed_at"] for row in rows}


async def test_apply_batch_writes_in_stream_order_and_reports_first_timers(
    events: Any, repo: ActivityRepository, pool: asyncpg.Pool
) -> None:
    owner, purged = uuid.uuid4(), uuid.uuid4()
    await repo.purge_owner(purged)
    before = events.created(owner, 1)
    assert await repo.apply(entry_for(before), stream_id="1-0")
    batch = [
        events.created(owner, 2),
        before,  # applied before
        events.created(purged, 1),
        events.updated(owner, 2, after={"status": "doing"}),
    ]
    pairs = [(entry_for(event), f"2-{i}") for i, event in enumerate(batch)]
    pairs.append(pairs[0])  # delivered twice within the batch
    applied = await repo.apply_batch(pairs)
    assert applied == {batch[0].id, batch[2].id, batch[3].id}
    rows = await pool.fetch("SELECT event_id FROM activity ORDER BY id")
    assert [row["event_id"] for row in rows] == [before.id, batch[0].id, batch[3].id]
    inbox = await pool.fetch("SELECT event_id, stream_id FROM processed_events")
    assert {row["event_id"]: row["stream_id"] for row in inbox} == {
        before.id: "1-0",
        batch[0].id: "2-0",
        batch[2].id: "2-2",
        batch[3].id: "2-3",
    }
    assert await repo.apply_batch(pairs) == set()
    assert await repo.apply_batch([]) == set()
    assert await pool.fetchval("SELECT count(*) FROM activity") == 3


async def test_batch_with_duplicates_is_one_transaction_and_one_effect_each(
    events: Any,
    start_worker: Any,
    repo: ActivityRepository,
    pool: asyncpg.Pool,
    redis: Redis,
    activity_settings: ActivitySettings,
    eventually: Any,
) -> None:
    s = activity_settings
    owner = uuid.uuid4()
    old, new = events.created(owner, 1), [events.created(owner, n) for n in range(2, 12)]
    assert await repo.apply(entry_for(old), stream_id="1-0")
    await streams.ensure_group(redis, s.stream, s.group)
    # An event applied before, then ten new ones with the third published twice.
    await publish_at_once(redis, s, [old, *new[:3], new[2], *new[3:]])
    start_worker()
    assert await eventually(lambda: settled(redis, s))
    rows = await pool.fetch("SELECT event_id FROM activity WHERE owner_id = $1 ORDER BY id", owner)
    assert [row["event_id"] for row in rows] == [old.id, *(event.id for event in new)]
    counters = await streams.counters(redis)
    assert (counters["processed"], counters["duplicates"]) == (10, 2)
    # One transaction: every new event was recorded at the same transaction start time.
    assert len(await commit_times(pool, [event.id for event in new])) == 1


async def test_poison_event_in_a_batch_is_isolated_and_the_others_applied_once(
    events: Any,
    start_worker: Any,
    pool: asyncpg.Pool,
    redis: Redis,
    activity_settings: ActivitySettings,
    eventually: Any,
) -> None:
    s = activity_settings
    owner = uuid.uuid4()
    good = [events.created(owner, n) for n in range(1, 11)]
    # Valid JSON and a valid event, but PostgreSQL text cannot hold NUL: it fails the batch.
    poison = events.created(owner, 99, title="bad\x00title")
    await streams.ensure_group(redis, s.stream, s.group)
    ids = await publish_at_once(redis, s, [*good[:5], poison, *good[5:]])
    start_worker()
    assert await eventually(lambda: settled(redis, s), within=15)
    rows = await pool.fetch("SELECT event_id FROM activity WHERE owner_id = $1 ORDER BY id", owner)
    assert [row["event_id"] for row in rows] == [event.id for event in good]
    [letter] = await streams.list_dead_letters(redis, s.dead_letter_stream)
    assert (letter.meta("source_id"), letter.meta("reason")) == (ids[5], "failed")
    assert "CharacterNotInRepertoireError" in letter.meta("error")
    counters = await streams.counters(redis)
    assert counters["processed"] == 10
    assert counters["failures"] == s.max_deliveries
    assert counters.get("duplicates", 0) == 0
    assert await redis.hlen(streams.ERRORS_KEY) == 0

    # The next batch goes back to one transaction.
    after = [events.created(owner, n) for n in range(11, 21)]
    await publish_at_once(redis, s, after)
    assert await eventually(lambda: settled(redis, s))
    assert len(await commit_times(pool, [event.id for event in after])) == 1


async def test_batch_with_a_purged_owner_drops_only_their_entries(
    events: Any,
    start_worker: Any,
    repo: ActivityRepository,
    pool: asyncpg.Pool,
    redis: Redis,
    activity_settings: ActivitySettings,
    eventually: Any,
) -> None:
    s = activity_settings
    gone, kept = uuid.uuid4(), uuid.uuid4()
    await repo.purge_owner(gone)
    batch = [events.created(owner, n) for n in (1, 2) for owner in (gone, kept)]
    await streams.ensure_group(redis, s.stream, s.group)
    await publish_at_once(redis, s, batch)
    start_worker()
    assert await eventually(lambda: settled(redis, s))
    rows = await pool.fetch("SELECT owner_id FROM activity")
    assert [row["owner_id"] for row in rows] == [kept, kept]
    # Their events are in the inbox all the same (applied, to nothing), in the same transaction.
    assert len(await commit_times(pool, [event.id for event in batch])) == 1
    assert (await streams.counters(redis))["processed"] == 4


async def test_worker_pool_rolls_back_what_a_connection_left_open(
    activity_settings: ActivitySettings,
) -> None:
    pool = await connect_pool(activity_settings)
    try:
        async with pool.acquire() as conn:
            backend = await conn.fetchval("SELECT pg_backend_pid()")
            await conn.execute("BEGIN")
            await conn.execute("CREATE TEMPORARY TABLE left_open (x int) ON COMMIT DROP")
            assert conn.is_in_transaction()
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT pg_backend_pid()") == backend
            assert not conn.is_in_transaction()
            name = await conn.fetchval("SELECT current_setting('application_name')")
            assert name == "taskmesh-activity-worker"
    finally:
        await pool.close()
