"""Tasks suite fixtures: a migrated `test_tasks` database, Redis DB 2, the app, tokens."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis
import uvicorn
from fastapi import FastAPI
from taskmesh.backing import Backing
from taskmesh.processes import free_port
from taskmesh.testing.tokens import TokenMint
from taskmesh_tasks.config import TasksSettings
from taskmesh_tasks.main import create_app

SERVICE_DIR = Path(__file__).resolve().parents[1]
JWKS_URL = "http://auth.test/.well-known/jwks.json"
AUDIENCE = "taskmesh-tasks"
USER_SCOPES = ("tasks:read", "tasks:write")


def migrate(database_url: str, revision: str = "head", direction: str = "upgrade") -> None:
    """Run the service's Alembic migrations exactly as `taskmesh up` does."""
    env = {**os.environ, "TASKS_DATABASE_URL": database_url}
    subprocess.run(
        [sys.executable, "-m", "alembic", "-c", "alembic.ini", direction, revision],
        cwd=SERVICE_DIR,
        env=env,
        check=True,
        capture_output=True,
    )


@pytest.fixture(scope="session", name="migrate")
def migrate_fixture() -> Callable[..., None]:
    """`migrate(url, revision="head", direction="upgrade")`."""
    return migrate


@pytest.fixture(scope="session")
def migrated_database(create_database: Callable[[str], str]) -> Callable[[str], str]:
    """Create database `name` afresh, migrate it to head and return its URL."""

    def make(name: str) -> str:
        url = create_database(name)
        migrate(url)
        return url

    return make


@pytest.fixture(scope="session")
def tasks_database_url(migrated_database: Callable[[str], str]) -> str:
    return migrated_database("test_tasks")


@pytest.fixture(scope="session")
def tasks_redis_url(backing: Backing) -> str:
    url = backing.redis_url_for(2)
    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()
    return url


@pytest.fixture(scope="session")
def tasks_settings(tasks_database_url: str, tasks_redis_url: str) -> TasksSettings:
    return TasksSettings(
        database_url=tasks_database_url,
        redis_url=tasks_redis_url,
        jwks_url=JWKS_URL,
        relay_poll_interval=0.05,
    )


@pytest.fixture(scope="session")
async def tasks_app(tasks_settings: TasksSettings, token_mint: TokenMint) -> AsyncIterator[FastAPI]:
    app = create_app(tasks_settings, jwks_transport=token_mint.transport())
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def client(tasks_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=tasks_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://tasks.test") as http:
        yield http


@dataclass(frozen=True)
class Account:
    """A test principal: its subject and ready-made Authorization headers."""

    id: uuid.UUID
    headers: dict[str, str]


@pytest.fixture(scope="session")
def make_user(token_mint: TokenMint) -> Callable[..., Account]:
    def make(*, admin: bool = False, scopes: tuple[str, ...] = USER_SCOPES) -> Account:
        subject = uuid.uuid4()
        roles = ("user", "admin") if admin else ("user",)
        token = token_mint.issue(
            subject, audience=["taskmesh-auth", AUDIENCE], roles=roles, scopes=scopes, ttl=1800
        )
        return Account(id=subject, headers={"Authorization": f"Bearer {token}"})

    return make


@pytest.fixture(scope="session")
def make_service(token_mint: TokenMint) -> Callable[..., Account]:
    def make(scopes: tuple[str, ...] = ("tasks:purge",)) -> Account:
        token = token_mint.issue(
            "taskmesh-auth", audience=AUDIENCE, kind="service", roles=(), scopes=scopes, ttl=1800
        )
        return Account(id=uuid.uuid4(), headers={"Authorization": f"Bearer {token}"})

    return make


class LiveServer:
    """The app served by uvicorn on a free port, in a thread with its own event loop."""

    def __init__(self, app: FastAPI) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_config=None)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the tasks server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


@pytest.fixture(scope="session")
def new_server(tasks_settings: TasksSettings, token_mint: TokenMint) -> Callable[[], LiveServer]:
    """A factory of (not yet started) live servers of the app on the test database."""
    return lambda: LiveServer(create_app(tasks_settings, jwks_transport=token_mint.transport()))


@pytest.fixture(scope="session")
def live_server(new_server: Callable[[], LiveServer]) -> Iterator[LiveServer]:
    with new_server() as server:
        yield server
