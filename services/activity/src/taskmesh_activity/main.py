"""The activity API application factory."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
from fastapi import FastAPI
from redis.asyncio import Redis
from taskmesh_common.api import install_problem_handlers, install_problem_openapi
from taskmesh_common.health import add_operational_routes
from taskmesh_common.logging import configure_logging
from taskmesh_common.middleware import RequestContextMiddleware
from taskmesh_common.tokens import CachedNotBefore, TokenVerifier, VerifierConfig, not_before_key

from taskmesh_activity import streams
from taskmesh_activity.config import ActivitySettings
from taskmesh_activity.metrics import PIPELINE_STATS
from taskmesh_activity.repository import ActivityRepository
from taskmesh_activity.routes import router


def create_app(
    settings: ActivitySettings | None = None,
    *,
    jwks_transport: httpx.AsyncBaseTransport | None = None,
) -> FastAPI:
    """Build the activity API; `jwks_transport` lets tests serve their own signing keys."""
    settings = settings or ActivitySettings()
    configure_logging("activity", settings.log_level)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # min_size=0: the API starts (and reports not-ready) while PostgreSQL is still down.
        pool = await asyncpg.create_pool(
            settings.database_url, min_size=0, max_size=settings.db_pool_size, command_timeout=10
        )
        redis = Redis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=2)
        http = httpx.AsyncClient(transport=jwks_transport, timeout=2.0)

        async def not_before(subject: str) -> int | None:
            value = await redis.get(not_before_key(subject))
            return int(value) if value is not None else None

        app.state.repo = ActivityRepository(pool)
        app.state.token_verifier = TokenVerifier(
            config=VerifierConfig(issuer=settings.issuer, audience=settings.audience),
            jwks_url=settings.jwks_url,
            http=http,
            not_before=CachedNotBefore(not_before),
        )

        async def postgres() -> None:
            await pool.fetchval("SELECT 1")

        async def redis_ping() -> None:
            await redis.ping()

        async def consumer() -> dict[str, Any]:
            state = await streams.group_state(redis, settings.stream, settings.group)
            if state is None:
                return {"lag": None, "pending": None, "note": "no consumer group yet"}
            limit = settings.ready_max_lag
            if limit is not None and state.lag is not None and state.lag > limit:
                raise RuntimeError(f"consumer lag {state.lag} exceeds {limit}")
            return {"lag": state.lag, "pending": state.pending, "consumers": state.consumers}

        app.state.readiness = {"postgres": postgres, "redis": redis_ping, "consumer": consumer}
        stop_refreshing = asyncio.Event()
        refresher = asyncio.create_task(
            PIPELINE_STATS.refresh_until(
                stop_refreshing,
                redis,
                stream=settings.stream,
                group=settings.group,
                dead_stream=settings.dead_letter_stream,
                every=settings.metrics_refresh_seconds,
            )
        )
        try:
            yield
        finally:
            stop_refreshing.set()
            await refresher
            await http.aclose()
            await redis.aclose()
            await pool.close()

    development = settings.environment == "development"
    app = FastAPI(
        title="Taskmesh activity",
        version="1.0.0",
        lifespan=lifespan,
        docs_url="/docs" if development else None,
        redoc_url=None,
    )
    install_problem_handlers(app)
    install_problem_openapi(app)
    app.add_middleware(RequestContextMiddleware)
    add_operational_routes(app)
    app.include_router(router)
    return app
