"""Alembic environment: runs the activity migrations online over SQLAlchemy + asyncpg."""

from __future__ import annotations

import asyncio
from logging.config import fileConfig

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from taskmesh_activity.config import ActivitySettings

config = context.config
if config.config_file_name is not None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def _async_url() -> str:
    url = ActivitySettings().database_url
    scheme, _, rest = url.partition("://")
    if scheme not in ("postgresql", "postgres"):
        raise ValueError("ACTIVITY_DATABASE_URL must be a postgresql:// URL")
    return f"postgresql+asyncpg://{rest}"


def _migrate(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=None)
    with context.begin_transaction():
        context.run_migrations()


async def _run() -> None:
    engine = create_async_engine(_async_url())
    async with engine.connect() as connection:
        await connection.run_sync(_migrate)
    await engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run against a database")
asyncio.run(_run())
