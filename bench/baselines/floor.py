"""The Python floor: bare Starlette + uvicorn + asyncpg (pool of 4 per worker)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bench.baselines.schema import OWNER

COLUMNS = "id, title, description, priority, status, tags, created_at, updated_at, version"
GET = f"SELECT {COLUMNS} FROM floor_items WHERE id = $1 AND owner_id = $2"
INSERT = (
    "INSERT INTO floor_items (owner_id, title, description, priority) "
    f"VALUES ($1, $2, $3, $4) RETURNING {COLUMNS}"
)


def _json(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")


async def get_item(request: Request) -> Response:
    """One row by primary key, scoped to its owner."""
    pool: asyncpg.Pool = request.app.state.pool
    row = await pool.fetchrow(GET, int(request.path_params["item_id"]), OWNER)
    if row is None:
        return _json({"detail": "not found"}, 404)
    return _json(dict(row))


async def create_item(request: Request) -> Response:
    """Insert one row and return it."""
    body = orjson.loads(await request.body())
    pool: asyncpg.Pool = request.app.state.pool
    row = await pool.fetchrow(
        INSERT, OWNER, body["title"], body.get("description", ""), body.get("priority", 3)
    )
    assert row is not None  # INSERT ... RETURNING always returns the row
    return _json(dict(row), 201)


async def healthz(request: Request) -> Response:
    """Liveness."""
    return _json({"status": "ok"})


def create_app() -> Starlette:
    """The floor app; the pool is opened in the lifespan."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        app.state.pool = await asyncpg.create_pool(
            os.environ["BENCH_DATABASE_URL"], min_size=4, max_size=4
        )
        yield
        await app.state.pool.close()

    routes = [
        Route("/items/{item_id:int}", get_item),
        Route("/items", create_item, methods=["POST"]),
        Route("/healthz", healthz),
    ]
    return Starlette(routes=routes, lifespan=lifespan)
