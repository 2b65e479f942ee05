"""Concurrency: optimistic locking and idempotency keys under 50 simultaneous requests."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from typing import Any

import asyncpg
import httpx
from taskmesh_tasks.schemas import TaskCreate
from taskmesh_tasks.service import idempotency_of


async def test_50_concurrent_patches_with_one_etag_give_one_winner(
    client: httpx.AsyncClient, make_user: Callable[..., Any]
) -> None:
    user = make_user()
    created = await client.post("/v1/tasks", json={"title": "contended"}, headers=user.headers)
    assert created.status_code == 201
    headers = {**user.headers, "If-Match": created.headers["etag"]}
    responses = await asyncio.gather(
        *(
            client.patch("/v1/tasks/1", json={"title": f"writer {i}"}, headers=headers)
            for i in range(50)
        )
    )
    assert Counter(r.status_code for r in responses) == {200: 1, 412: 49}
    winner = next(r for r in responses if r.status_code == 200).json()
    assert all(r.headers["etag"] == '"2"' for r in responses)
    final = (await client.get("/v1/tasks/1", headers=user.headers)).json()
    assert final == winner
    assert final["version"] == 2


async def test_50_concurrent_posts_with_one_idempotency_key_create_one_task(
    client: httpx.AsyncClient, make_user: Callable[..., Any]
) -> None:
    user = make_user()
    headers = {**user.headers, "Idempotency-Key": "burst"}
    responses = await asyncio.gather(
        *(client.post("/v1/tasks", json={"title": "only once"}, headers=headers) for _ in range(50))
    )
    statuses = Counter(r.status_code for r in responses)
    assert set(statuses) <= {201, 409}, statuses
    originals = [
        r for r in responses if r.status_code == 201 and "idempotent-replayed" not in r.headers
    ]
    assert len(originals) == 1
    replays = [r for r in responses if r.headers.get("idempotent-replayed") == "true"]
    assert all(r.content == originals[0].content for r in replays)
    for conflict in (r for r in responses if r.status_code == 409):
        assert conflict.headers["content-type"] == "application/problem+json"
    listing = (await client.get("/v1/tasks", headers=user.headers)).json()
    assert [t["number"] for t in listing["items"]] == [1]


async def test_a_duplicate_in_flight_is_409(
    client: httpx.AsyncClient, make_user: Callable[..., Any], tasks_database_url: str
) -> None:
    user = make_user()
    body = {"title": "slow"}
    key = idempotency_of(user.id, "in-flight", TaskCreate.model_validate(body))
    holder = await asyncpg.connect(tasks_database_url)
    try:
        # Hold the key's lock the way a first request does while it is being processed.
        await holder.execute("SELECT pg_advisory_lock($1)", key.lock_id)
        headers = {**user.headers, "Idempotency-Key": "in-flight"}
        busy = await client.post("/v1/tasks", json=body, headers=headers)
        assert busy.status_code == 409
        assert busy.headers["content-type"] == "application/problem+json"
        await holder.execute("SELECT pg_advisory_unlock($1)", key.lock_id)
        assert (await client.post("/v1/tasks", json=body, headers=headers)).status_code == 201
    finally:
        await holder.close()


async def test_concurrent_creates_get_distinct_consecutive_numbers(
    client: httpx.AsyncClient, make_user: Callable[..., Any]
) -> None:
    user = make_user()
    responses = await asyncio.gather(
        *(
            client.post("/v1/tasks", json={"title": f"t{i}"}, headers=user.headers)
            for i in range(40)
        )
    )
    assert {r.status_code for r in responses} == {201}
    assert sorted(r.json()["number"] for r in responses) == list(range(1, 41))


async def test_reset_racing_creates_never_duplicates_numbers(
    client: httpx.AsyncClient, make_user: Callable[..., Any]
) -> None:
    user = make_user()

    async def create(i: int) -> httpx.Response:
        return await client.post("/v1/tasks", json={"title": f"t{i}"}, headers=user.headers)

    for _ in range(5):
        results = await asyncio.gather(
            *(create(i) for i in range(8)), client.post("/v1/tasks/reset", headers=user.headers)
        )
        refused = [r.text for r in results if r.status_code not in {200, 201}]
        assert not refused
    listing = (await client.get("/v1/tasks", params={"limit": 100}, headers=user.headers)).json()
    numbers = [t["number"] for t in listing["items"]]
    assert len(numbers) == len(set(numbers))
    assert sorted(numbers) == list(range(1, len(numbers) + 1))
