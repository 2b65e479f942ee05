"""The dead-letter CLI: list, show, replay one, replay all."""

from __future__ import annotations

import asyncio
import io
import os
import sys
import uuid
from typing import Any

import asyncpg
import orjson
import pytest
from redis.asyncio import Redis
from taskmesh_activity import streams
from taskmesh_activity.config import ActivitySettings
from taskmesh_activity.deadletters import run
from taskmesh_common.events import encode_event

pytestmark = pytest.mark.usefixtures("clean")


async def kill(redis: Redis, settings: ActivitySettings, fields: dict[bytes, bytes]) -> str:
    """Publish an entry and move it to the dead letters as a worker that gave up would."""
    s = settings
    await streams.ensure_group(redis, s.stream, s.group)
    source_id = streams.text(await redis.xadd(s.stream, fields))  # type: ignore[arg-type]
    await redis.xreadgroup(s.group, "gave-up", {s.stream: ">"}, count=1)
    await streams.move_to_dead_letters(
        redis,
        stream=s.stream,
        group=s.group,
        dead_stream=s.dead_letter_stream,
        maxlen=s.dead_letter_maxlen,
        message=streams.Message(id=source_id, fields=fields, deliveries=3),
        reason="failed",
        error="RuntimeError: boom",
        consumer="gave-up",
    )
    newest: Any = await redis.xrevrange(s.dead_letter_stream, count=1)
    return streams.text(newest[0][0])


async def cli(settings: ActivitySettings, *argv: str) -> tuple[int, str]:
    out = io.StringIO()
    status = await run(list(argv), settings, out)
    return status, out.getvalue()


async def test_list_show_and_replay_one(
    events: Any,
    redis: Redis,
    pool: asyncpg.Pool,
    activity_settings: ActivitySettings,
    start_worker: Any,
    eventually: Any,
) -> None:
    event = events.created(uuid.uuid4(), 7, title="Water plants")
    dead_id = await kill(redis, activity_settings, {b"event": encode_event(event)})

    status, listing = await cli(activity_settings, "list")
    assert status == 0
    line, summary = listing.splitlines()
    assert line.split("\t")[0] == dead_id
    assert ["failed", "task.created", str(event.id), "RuntimeError: boom"] == line.split("\t")[2:]
    assert summary.startswith("1 shown, 1 dead letters")

    status, shown = await cli(activity_settings, "show", dead_id)
    assert status == 0
    detail = orjson.loads(shown)
    assert (detail["reason"], detail["error"], detail["deliveries"]) == (
        "failed",
        "RuntimeError: boom",
        "3",
    )
    assert detail["event"]["id"] == str(event.id)
    assert (await cli(activity_settings, "show", "1-1"))[0] == 2

    status, replayed = await cli(activity_settings, "replay", dead_id)
    assert status == 0
    assert replayed.startswith(f"replayed {dead_id} as ")
    assert await redis.xlen(activity_settings.dead_letter_stream) == 0
    start_worker()

    async def applied() -> bool:
        return bool(await pool.fetchval("SELECT count(*) FROM activity") == 1)

    assert await eventually(applied)
    summary_text = await pool.fetchval("SELECT summary FROM activity")
    assert summary_text == "You created #7 Water plants"


async def test_replay_all_replays_each_current_dead_letter_once(
    events: Any,
    redis: Redis,
    pool: asyncpg.Pool,
    activity_settings: ActivitySettings,
    start_worker: Any,
    eventually: Any,
) -> None:
    owner = uuid.uuid4()
    for number in (1, 2):
        await kill(
            redis, activity_settings, {b"event": encode_event(events.created(owner, number))}
        )
    await kill(redis, activity_settings, {b"event": b"junk"})
    start_worker()

    status, output = await cli(activity_settings, "replay", "--all")
    assert status == 0
    assert len(output.splitlines()) == 3

    async def settled() -> bool:
        rows = await pool.fetchval("SELECT count(*) FROM activity")
        return bool(rows == 2 and await redis.xlen(activity_settings.dead_letter_stream) == 1)

    assert await eventually(settled)
    [again] = await streams.list_dead_letters(redis, activity_settings.dead_letter_stream)
    assert again.meta("reason") == "malformed"
    assert (await cli(activity_settings, "replay", "--all"))[1].count("replayed") == 1


async def test_module_entry_point(activity_settings: ActivitySettings) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "taskmesh_activity.deadletters",
        "list",
        env={**os.environ, "ACTIVITY_REDIS_URL": activity_settings.redis_url},
        stdout=asyncio.subprocess.PIPE,
    )
    stdout, _ = await process.communicate()
    assert process.returncode == 0
    assert stdout.decode().startswith("0 shown, 0 dead letters")
    usage = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "taskmesh_activity.deadletters",
        "replay",
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await usage.communicate()
    assert usage.returncode == 2
    assert b"one of the arguments id --all is required" in stderr
