"""The list statements keep good plans when PostgreSQL plans them without their parameters."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import asyncpg
from taskmesh_tasks.repository import PageRequest, Repository, TaskFilter

OWNERS = 40
PER_OWNER = 500
SEED = """
INSERT INTO tasks (owner_id, number, title, priority, status)
SELECT CASE WHEN o = 1 THEN $1 ELSE md5('plan-owner-' || o)::uuid END, g,
       'task ' || g || ' ' || (ARRAY['alpha', 'bravo', 'charlie', 'delta', 'echo'])[1 + g % 5],
       1 + g % 5, (ARRAY['todo', 'doing', 'done'])[1 + g % 3]
FROM generate_series(1, $2::int) AS o, generate_series(1, $3::int) AS g
"""


def _literal(value: Any) -> str:
    if isinstance(value, uuid.UUID):
        return f"'{value}'::uuid"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return str(int(value))


async def test_search_generic_plan_reads_only_the_owners_matches(
    migrated_database: Callable[[str], str],
) -> None:
    url = migrated_database("test_tasks_plans")
    owner = uuid.uuid4()
    seen: list[tuple[str, tuple[Any, ...]]] = []

    async def log_queries(conn: asyncpg.Connection) -> None:
        conn.add_query_logger(lambda record: seen.append((record.query, record.args)))

    async with asyncpg.create_pool(url, min_size=1, max_size=1, init=log_queries) as pool:
        async with pool.acquire() as seeding:
            await seeding.execute(SEED, owner, OWNERS, PER_OWNER)
            await seeding.execute("ANALYZE tasks")
        seen.clear()
        page = PageRequest(field="created", descending=True, limit=50)
        rows = await Repository(pool).list(owner=owner, where=TaskFilter(q="bravo"), page=page)
    assert len(rows) == 51
    # The pool's own reset statements are logged too.
    ((sql, args),) = [(query, args) for query, args in seen if "FROM tasks t" in query]

    conn = await asyncpg.connect(url)
    try:
        # At a million rows the generic plan intersected a search-only GIN index with the
        # owner index, reading every owner's matches (docs/benchmarks/analysis.md): the search
        # index is keyed by owner, so one scan answers both conditions. It has no pending list
        # (migration 0004), which every search would scan whole, whoever wrote to it.
        definitions = await conn.fetch("SELECT indexdef FROM pg_indexes WHERE tablename = 'tasks'")
        gin = [row[0] for row in definitions if "USING gin" in row[0]]
        assert gin == [
            "CREATE INDEX tasks_owner_search_idx ON public.tasks USING gin (owner_id, search)"
            " WITH (fastupdate=off)"
        ]
        # asyncpg prepares the statement; after five runs PostgreSQL may keep a generic plan.
        await conn.execute(f"PREPARE search AS {sql}")
        await conn.execute("SET plan_cache_mode = force_generic_plan")
        values = ", ".join(_literal(value) for value in args)
        plan = "\n".join(
            row[0] for row in await conn.fetch(f"EXPLAIN (ANALYZE) EXECUTE search({values})")
        )
    finally:
        await conn.close()
    # Every index condition names the owner: no pass over every owner's matches.
    conditions = [line for line in plan.splitlines() if "Index Cond" in line]
    assert conditions, plan
    assert all("owner_id = $1" in line for line in conditions), plan
    assert "BitmapAnd" not in plan, plan
