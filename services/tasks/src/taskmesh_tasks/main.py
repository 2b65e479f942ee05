"""The tasks service: app factory and lifespan (PostgreSQL, Redis, JWKS client, outbox relay)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import httpx
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from redis.asyncio import Redis
from taskmesh_common.api import OrjsonResponse, install_problem_handlers
from taskmesh_common.health import add_operational_routes
from taskmesh_common.logging import configure_logging
from taskmesh_common.middleware import RequestContextMiddleware
from taskmesh_common.tokens import CachedNotBefore, TokenVerifier, VerifierConfig, not_before_key

from taskmesh_tasks.config import TasksSettings
from taskmesh_tasks.fast import FastRoutes
from taskmesh_tasks.outbox import OutboxRelay
from taskmesh_tasks.repository import Repository
from taskmesh_tasks.routes import install_error_mapping, router

JWKS_GRACE_SECONDS = 3600.0


class JwksProbe:
    """Readiness of token verification: the JWKS answers, or did so within the last hour.

    Verifiers keep their cached keys when auth is briefly unreachable, so a short auth outage
    must not take this service out of rotation; a service that never loaded keys cannot
    authenticate anyone and is not ready.
    """

    def __init__(self, http: httpx.AsyncClient, url: str) -> None:
        self.http = http
        self.url = url
        self.last_ok = float("-inf")

    async def __call__(self) -> dict[str, Any]:
        try:
            response = await self.http.get(self.url, timeout=1.0)
            response.raise_for_status()
            if not response.json().get("keys"):
                raise ValueError("JWKS has no keys")
        except (httpx.HTTPError, ValueError):
            age = time.monotonic() - self.last_ok
            if age > JWKS_GRACE_SECONDS:
                raise
            return {"degraded": True, "last_ok_seconds_ago": round(age, 1)}
        self.last_ok = time.monotonic()
        return {}


def redis_probe(redis: Redis, relay: OutboxRelay) -> Any:
    """Readiness detail for Redis: reported, but never failing readiness."""

    async def check() -> dict[str, Any]:
        # Redis down means: events wait in the outbox and token revocation is learned late.
        # Reads and writes still work, so taking the service out of rotation would only turn a
        # partial degradation into a full outage.
        try:
            await redis.ping()
        except Exception as exc:
            return {"degraded": True, "error": type(exc).__name__}
        return {}

    return check


async def _rollback_if_needed(conn: asyncpg.Connection) -> None:
    """Cheaper than asyncpg's default reset, a round trip per request to undo session state.

    This service never leaves session state behind (no session locks, LISTEN, SET or cursors),
    so the only thing to undo is a transaction a cancelled request left open.
    """
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


async def _not_before(redis: Redis, subject: str) -> int | None:
    value = await redis.get(not_before_key(subject))
    return int(value) if value is not None else None


def create_app(
    settings: TasksSettings | None = None,
    *,
    jwks_transport: httpx.AsyncBaseTransport | None = None,
) -> FastAPI:
    """Build the tasks API; `jwks_transport` lets tests serve the JWKS without auth."""
    settings = settings or TasksSettings()
    configure_logging("tasks", settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = await asyncpg.create_pool(
            settings.database_url,
            min_size=settings.pool_size,
            max_size=settings.pool_size,
            server_settings={"timezone": "UTC", "application_name": "taskmesh-tasks"},
            reset=_rollback_if_needed,
        )
        redis = Redis.from_url(
            settings.redis_url,
            socket_timeout=settings.redis_timeout,
            socket_connect_timeout=settings.redis_timeout,
        )
        http = httpx.AsyncClient(transport=jwks_transport, timeout=2.0)
        relay = OutboxRelay(
            database_url=settings.database_url,
            redis=redis,
            batch_size=settings.relay_batch_size,
            poll_interval=settings.relay_poll_interval,
            stream_max_length=settings.stream_max_length,
            idempotency_retention_hours=settings.idempotency_retention_hours,
        )
        repository = Repository(pool, on_change=relay.wake)
        app.state.repository = repository
        app.state.relay = relay
        app.state.token_verifier = TokenVerifier(
            config=VerifierConfig(issuer=settings.token_issuer, audience=settings.token_audience),
            jwks_url=settings.jwks_url,
            http=http,
            not_before=CachedNotBefore(lambda subject: _not_before(redis, subject)),
        )
        app.state.readiness = {
            "postgres": repository.ping,
            "redis": redis_probe(redis, relay),
            "jwks": JwksProbe(http, settings.jwks_url),
        }
        relay.start()
        try:
            yield
        finally:
            await relay.stop()
            await http.aclose()
            await redis.aclose()
            await pool.close()

    development = settings.environment == "development"
    app = FastAPI(
        title="Taskmesh tasks",
        version="1.0.0",
        description=(
            "Tasks of each user. Every operation acts on the caller's own tasks; admins pass "
            "`owner` to act on someone else's. Another user's task is always 404. Readiness "
            "fails only when PostgreSQL or token verification is unusable: with Redis down, "
            "events wait in the outbox and `/readyz` reports `redis` as degraded."
        ),
        lifespan=lifespan,
        default_response_class=OrjsonResponse,
        docs_url="/docs" if development else None,
        redoc_url=None,
    )
    # Added first, so it runs inside the request context (request id, metrics, access log).
    app.add_middleware(FastRoutes)
    app.add_middleware(RequestContextMiddleware)
    install_problem_handlers(
        app, unavailable_detail="The task store is unavailable; retry shortly."
    )
    install_error_mapping(app)
    add_operational_routes(app)
    app.include_router(router)
    _complete_openapi(app)
    return app


def _complete_openapi(app: FastAPI) -> None:
    """Document what dependencies enforce: the bearer token, and that If-Match is required."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            schema.setdefault("components", {})["securitySchemes"] = {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            }
            schema["security"] = [{"bearer": []}]
            for path in schema["paths"].values():
                for operation in path.values():
                    for parameter in operation.get("parameters", []):
                        if parameter["name"] == "If-Match":
                            parameter["required"] = True
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
