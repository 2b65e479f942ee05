"""Alembic environment: runs migrations over asyncpg against `TASKS_DATABASE_URL`."""

from __future__ import annotations

import asyncio
from logging.config import fileConfig

from alembic import context
from sqlalchemy import pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from taskmesh_common.settings import env_or_file

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def _url() -> str:
    plain = config.attributes.get("database_url") or env_or_file("TASKS_DATABASE_URL")
    scheme, _, rest = str(plain).partition("://")
    if scheme not in ("postgres", "postgresql"):
        raise RuntimeError("TASKS_DATABASE_URL must be a postgresql:// URL")
    return f"postgresql+asyncpg://{rest}"


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=None)
    with context.begin_transaction():
        context.run_migrations()


async def _run_online() -> None:
    engine = create_async_engine(_url(), poolclass=pool.NullPool)
    async with engine.connect() as connection:
        await connection.run_sync(_run)
    await engine.dispose()


if context.is_offline_mode():
    context.configure(url=_url(), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_online())
