"""Requests get pooled connections in the order they asked for them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import asyncpg
from taskmesh_tasks.main import _rollback_if_needed
from taskmesh_tasks.repository import Repository


async def test_a_newcomer_does_not_take_the_connection_a_waiter_was_promised(
    migrated_database: Callable[[str], str],
) -> None:
    url = migrated_database("test_tasks_connection_order")
    # The service's own reset: without a round trip, a release hands the connection back within
    # the releasing task's step, as under load.
    async with asyncpg.create_pool(url, min_size=1, max_size=1, reset=_rollback_if_needed) as pool:
        repo = Repository(pool)
        order: list[str] = []
        late: list[asyncio.Task[None]] = []

        async def use(name: str, hold: float = 0.0) -> None:
            async with repo._connection() as conn:
                order.append(name)
                await conn.fetchval("SELECT 1")
                await asyncio.sleep(hold)
                if name == "first":
                    # A request arriving as the connection is released: its first step runs
                    # after the release put the connection back and before the woken waiter's,
                    # so with asyncpg's pool alone it took the connection, and the waiters queued
                    # again behind it.
                    asyncio.get_running_loop().call_soon(
                        lambda: late.append(asyncio.create_task(use("late")))
                    )

        first = asyncio.create_task(use("first", hold=0.1))
        await asyncio.sleep(0.02)
        waiters = []
        for index in range(3):
            waiters.append(asyncio.create_task(use(f"waiter {index}")))
            await asyncio.sleep(0.01)
        await asyncio.gather(first, *waiters)
        await asyncio.gather(*late)
    assert order == ["first", "waiter 0", "waiter 1", "waiter 2", "late"]
