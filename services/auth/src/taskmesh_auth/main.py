"""The auth service's app factory: settings, lifespan-built clients, routes and error handling."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI, Request, Response
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from redis.asyncio import ConnectionPool, Redis
from taskmesh_common.api import (
    OrjsonResponse,
    install_problem_handlers,
    install_problem_openapi,
    problem_response,
)
from taskmesh_common.health import add_operational_routes
from taskmesh_common.logging import configure_logging
from taskmesh_common.middleware import RequestContextMiddleware
from taskmesh_common.tokens import (
    CachedNotBefore,
    TokenVerifier,
    VerifierConfig,
    not_before_key,
)

from taskmesh_auth import routes, service
from taskmesh_auth.config import USER_AUDIENCES, USER_SCOPES, AuthSettings
from taskmesh_auth.downstream import OwnerPurger, PurgeTarget, own_identity
from taskmesh_auth.issuer import ServiceClient, TokenIssuer
from taskmesh_auth.keys import KeyCipher, KeyStore, LocalJwksTransport
from taskmesh_auth.models import AuthError
from taskmesh_auth.passwords import Hasher
from taskmesh_auth.repository import Repository, create_pool
from taskmesh_auth.revocation import NotBefore
from taskmesh_auth.throttle import LoginThrottle, parse_networks

logger = logging.getLogger("taskmesh.auth")


def hasher_for(settings: AuthSettings) -> Hasher:
    """The password hasher with the configured argon2id parameters."""
    return Hasher(
        time_cost=settings.argon2_time_cost,
        memory_kib=settings.argon2_memory_kib,
        parallelism=settings.argon2_parallelism,
    )


def purge_targets(settings: AuthSettings) -> list[PurgeTarget]:
    """The services whose per-owner data goes with a deleted account (those configured)."""
    targets = []
    if settings.tasks_url:
        targets.append(
            PurgeTarget("tasks", settings.tasks_url, settings.tasks_audience, "tasks:purge")
        )
    if settings.activity_url:
        targets.append(
            PurgeTarget(
                "activity", settings.activity_url, settings.activity_audience, "activity:purge"
            )
        )
    return targets


def key_store(settings: AuthSettings, repo: Repository) -> KeyStore:
    """The signing-key store over the auth database."""
    return KeyStore(
        repo,
        KeyCipher(settings.key_encryption_secret.get_secret_value()),
        max_token_ttl=max(settings.access_token_ttl, settings.service_token_ttl),
        reload_interval=settings.key_reload_interval,
    )


async def _bootstrap_admin(settings: AuthSettings, repo: Repository, hasher: Hasher) -> None:
    if not settings.admin_email or settings.admin_password is None:
        return
    if await repo.user_by_email(service.normalise_email(settings.admin_email)) is None:
        await service.create_admin(
            repo,
            hasher=hasher,
            email=settings.admin_email,
            password=settings.admin_password.get_secret_value(),
        )


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Build the pool, Redis client, key store and everything that uses them; close on exit."""
    settings: AuthSettings = app.state.settings
    pool = await create_pool(settings.database_url, size=settings.pool_size)
    redis = Redis.from_url(
        settings.redis_url, socket_timeout=1.0, socket_connect_timeout=1.0, decode_responses=True
    )
    # The limiter gets its own connections with short timeouts (it fails open; see throttle.py).
    limiter_pool = ConnectionPool.from_url(
        settings.redis_url,
        socket_timeout=settings.throttle_timeout,
        socket_connect_timeout=settings.throttle_timeout,
    )
    storage = RedisStorage(
        "async+" + settings.redis_url,
        implementation="redispy",
        key_prefix="taskmesh:auth:limits",
        connection_pool=limiter_pool,  # type: ignore[arg-type]
    )
    http = httpx.AsyncClient(timeout=settings.downstream_timeout)
    repo = Repository(pool)
    keys = key_store(settings, repo)
    hasher = hasher_for(settings)
    not_before = NotBefore(redis, access_ttl=settings.access_token_ttl)
    own_jwks = httpx.AsyncClient(transport=LocalJwksTransport(keys))
    try:
        await keys.ensure_key()
        await hasher.prepare()
        await _bootstrap_admin(settings, repo, hasher)
        clients = {
            c.id: ServiceClient(
                c.id, c.secret.get_secret_value() if c.secret else None, c.audiences
            )
            for c in settings.clients
        }
        issuer = TokenIssuer(
            keys,
            issuer=settings.issuer,
            user_audiences=USER_AUDIENCES,
            user_scopes=USER_SCOPES,
            access_ttl=settings.access_token_ttl,
            service_ttl=settings.service_token_ttl,
            clients=clients,
            not_before=not_before.get,
        )
        targets = purge_targets(settings)

        async def stored_not_before(subject: str) -> int | None:
            value = await redis.get(not_before_key(subject))
            return int(value) if value is not None else None

        state = app.state
        state.repo = repo
        state.keys = keys
        state.hasher = hasher
        state.not_before = not_before
        state.issuer = issuer
        state.sessions = service.Sessions(issuer, not_before, settings.refresh_token_ttl)
        state.throttle = LoginThrottle(
            MovingWindowRateLimiter(storage),
            account_limits=settings.login_account_limits,
            ip_limits=settings.login_ip_limits,
            timeout=settings.throttle_timeout,
        )
        state.trusted_proxies = parse_networks(settings.trusted_proxies)
        state.purger = OwnerPurger(
            http=http,
            issuer=issuer,
            identity=own_identity(settings.client_id, targets),
            targets=targets,
        )
        state.token_verifier = TokenVerifier(
            config=VerifierConfig(issuer=settings.issuer, audience=settings.audience),
            jwks_url="http://auth.internal/.well-known/jwks.json",
            http=own_jwks,
            not_before=CachedNotBefore(stored_not_before),
        )
        state.readiness = {"postgres": repo.ping, "redis": redis.ping}
        yield
    finally:
        await own_jwks.aclose()
        await http.aclose()
        await redis.aclose()
        await limiter_pool.aclose()
        await pool.close()


def create_app(settings: AuthSettings | None = None) -> FastAPI:
    """Build the auth service app; nothing connects until the lifespan starts."""
    settings = settings or AuthSettings()
    configure_logging("auth", settings.log_level)
    development = settings.environment == "development"
    app = FastAPI(
        title="Taskmesh auth",
        version="1.0.0",
        lifespan=lifespan,
        default_response_class=OrjsonResponse,
        docs_url="/docs" if development else None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.add_middleware(RequestContextMiddleware)
    install_problem_handlers(app)

    async def on_auth_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, AuthError)
        return problem_response(routes.problem_for(exc), request)

    app.add_exception_handler(AuthError, on_auth_error)
    add_operational_routes(app)
    app.include_router(routes.router)
    app.include_router(routes.wellknown)
    install_problem_openapi(app)
    return app
