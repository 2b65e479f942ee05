"""The Alembic migrations go up, down and up again on a fresh database."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import asyncpg

SERVICE_DIR = Path(__file__).resolve().parents[2]


def alembic(url: str, *args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "alembic", "-c", "alembic.ini", *args],
        cwd=SERVICE_DIR,
        env={**os.environ, "ACTIVITY_DATABASE_URL": url},
        check=True,
        capture_output=True,
    )


async def tables(url: str) -> set[str]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    finally:
        await conn.close()
    return {row["tablename"] for row in rows}


async def test_upgrade_downgrade_upgrade(create_database: Callable[[str], str]) -> None:
    url = create_database("test_activity_migrations")
    alembic(url, "upgrade", "head")
    feed_tables = {"activity", "processed_events", "purged_owners"}
    assert feed_tables <= await tables(url)
    alembic(url, "downgrade", "base")
    assert not feed_tables & await tables(url)
    alembic(url, "upgrade", "head")
    assert feed_tables <= await tables(url)
