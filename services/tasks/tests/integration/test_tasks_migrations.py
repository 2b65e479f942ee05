"""The Alembic migration upgrades, downgrades and upgrades again, and its rules hold in SQL."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import asyncpg
import pytest


async def test_migrations_round_trip(
    migrated_database: Callable[[str], str], migrate: Callable[..., None]
) -> None:
    url = migrated_database("test_tasks_migrations")
    migrate(url, "base", "downgrade")
    conn = await asyncpg.connect(url)
    try:
        tables = await conn.fetchval(
            "SELECT count(*) FROM pg_tables "
            "WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
        )
        assert tables == 0
    finally:
        await conn.close()
    migrate(url)


async def test_upgrade_keeps_only_unpublished_outbox_rows(
    migrated_database: Callable[[str], str], migrate: Callable[..., None]
) -> None:
    url = migrated_database("test_tasks_migrations_outbox")
    migrate(url, "0002", "downgrade")
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "INSERT INTO outbox (type, owner_id, actor, deleted, published_at) VALUES"
            " ('tasks.reset', $1, 'sent', 0, now()), ('tasks.reset', $1, 'waiting', 0, NULL)",
            uuid.uuid4(),
        )
        migrate(url)
        assert [r["actor"] for r in await conn.fetch("SELECT actor FROM outbox")] == ["waiting"]
    finally:
        await conn.close()


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("title", ""),
        ("title", "   "),
        ("title", "x" * 201),
        ("description", "x" * 2001),
        ("priority", 0),
        ("priority", 6),
        ("status", "blocked"),
        ("tags", [f"t{i}" for i in range(11)]),
        ("tags", ["Upper"]),
        ("tags", ["two words"]),
        ("number", 0),
        ("version", 0),
    ],
)
async def test_database_constraints_back_every_rule(
    tasks_database_url: str, column: str, value: object
) -> None:
    row: dict[str, object] = {"owner_id": uuid.uuid4(), "number": 1, "title": "ok", column: value}
    names = ", ".join(row)
    params = ", ".join(f"${i}" for i in range(1, len(row) + 1))
    conn = await asyncpg.connect(tasks_database_url)
    try:
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute(f"INSERT INTO tasks ({names}) VALUES ({params})", *row.values())
    finally:
        await conn.close()


async def test_numbers_are_unique_per_owner(tasks_database_url: str) -> None:
    owner = uuid.uuid4()
    conn = await asyncpg.connect(tasks_database_url)
    try:
        insert = "INSERT INTO tasks (owner_id, number, title) VALUES ($1, 1, 'a')"
        await conn.execute(insert, owner)
        with pytest.raises(asyncpg.UniqueViolationError):
            await conn.execute(insert, owner)
        await conn.execute(insert, uuid.uuid4())
    finally:
        await conn.close()
