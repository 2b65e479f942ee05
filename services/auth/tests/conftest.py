"""Shared fixtures: a migrated `test_auth` database, Redis DB 1 and app factories."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from taskmesh.backing import Backing
from taskmesh_auth.config import AuthSettings
from taskmesh_auth.main import create_app

SERVICE_DIR = Path(__file__).resolve().parents[1]
STRONG_PASSWORD = "correct horse battery staple"
FAST_ARGON2 = {"argon2_time_cost": 1, "argon2_memory_kib": 64}


@pytest.fixture(scope="session")
def auth_database(create_database: Callable[[str], str]) -> str:
    """The migrated `test_auth` database URL."""
    url = create_database("test_auth")
    subprocess.run(
        [sys.executable, "-m", "alembic", "-c", "alembic.ini", "upgrade", "head"],
        cwd=SERVICE_DIR,
        env={**os.environ, "AUTH_DATABASE_URL": url},
        check=True,
        capture_output=True,
    )
    return url


@pytest.fixture(scope="session")
def auth_redis_url(backing: Backing) -> str:
    """Redis DB 1, the auth suite's own."""
    return backing.redis_url_for(1)


@pytest.fixture
async def redis(auth_redis_url: str) -> AsyncIterator[Redis]:
    """A client of the suite's Redis DB, flushed before each test."""
    client = Redis.from_url(auth_redis_url, decode_responses=True)
    await client.flushdb()
    yield client
    await client.aclose()


@pytest.fixture
def make_settings(auth_database: str, auth_redis_url: str) -> Callable[..., AuthSettings]:
    """Settings for tests: fast argon2 unless a test asks otherwise."""

    def build(**overrides: Any) -> AuthSettings:
        values: dict[str, Any] = {
            "TASKMESH_ENV": "test",
            "database_url": auth_database,
            "redis_url": auth_redis_url,
            **FAST_ARGON2,
            **overrides,
        }
        return AuthSettings(**values)

    return build


@pytest.fixture
def auth_client(make_settings: Callable[..., AuthSettings], redis: Redis) -> Callable[..., Any]:
    """`async with auth_client(**settings) as client:` runs the app (with lifespan) in-process."""

    @asynccontextmanager
    async def run(peer: str = "127.0.0.1", **overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
        app = create_app(make_settings(**overrides))
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, client=(peer, 40000))
            async with httpx.AsyncClient(transport=transport, base_url="http://auth") as client:
                client.app = app  # type: ignore[attr-defined]
                yield client

    return run


@pytest.fixture
async def client(auth_client: Callable[..., Any]) -> AsyncIterator[httpx.AsyncClient]:
    """The app with default test settings."""
    async with auth_client() as running:
        yield running


def unique_email(prefix: str = "user") -> str:
    """An email address no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}@example.com"


@pytest.fixture
def new_email() -> Callable[..., str]:
    """Make an email address no other test uses."""
    return unique_email


@pytest.fixture
def strong_password() -> str:
    """A password that passes the policy."""
    return STRONG_PASSWORD


Register = Callable[..., Awaitable[dict[str, Any]]]


@pytest.fixture
def register(client: httpx.AsyncClient) -> Register:
    """Register a user and log in; returns the user, the credentials and a token pair."""

    async def run(email: str | None = None, password: str = STRONG_PASSWORD) -> dict[str, Any]:
        email = email or unique_email()
        created = await client.post(
            "/v1/users", json={"email": email, "display_name": "Ada", "password": password}
        )
        assert created.status_code == 201, created.text
        login = await client.post("/v1/sessions", json={"email": email, "password": password})
        assert login.status_code == 200, login.text
        return {"user": created.json(), "email": email, "password": password, **login.json()}

    return run
