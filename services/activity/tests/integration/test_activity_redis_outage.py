"""End to end through the tasks service's outbox: Redis down for 30 s loses no change."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from taskmesh.backing import backing_source, find_redis, run_redis
from taskmesh.processes import free_port
from taskmesh.testing.tokens import TokenMint
from taskmesh_activity.config import ActivitySettings
from taskmesh_activity.main import create_app as create_activity_app
from taskmesh_tasks.config import TasksSettings
from taskmesh_tasks.main import create_app as create_tasks_app

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("clean")]

TASKS_DIR = Path(__file__).resolve().parents[3] / "tasks"
JWKS_URL = "http://auth.test/.well-known/jwks.json"
AUDIENCE = ["taskmesh-auth", "taskmesh-tasks", "taskmesh-activity"]
SCOPES = ("tasks:read", "tasks:write", "activity:read")
OUTAGE_SECONDS = 30


class RedisServer:
    """A Redis of this test's own (so stopping it disturbs nobody), restartable on its port."""

    def __init__(self, directory: Path) -> None:
        self.server, _ = find_redis(backing_source())
        self.directory = directory
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._running: contextlib.ExitStack | None = None

    def start(self) -> None:
        stack = contextlib.ExitStack()
        # durable: a stop saves the stream and the consumer group, like a production restart.
        stack.enter_context(run_redis(self.server, self.directory, durable=True, port=self.port))
        self._running = stack

    def stop(self) -> None:
        if self._running is not None:
            self._running.close()
            self._running = None


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def tasks_database(create_database: Callable[[str], str]) -> str:
    url = create_database("test_activity_e2e_tasks")
    subprocess.run(
        [sys.executable, "-m", "alembic", "-c", "alembic.ini", "upgrade", "head"],
        cwd=TASKS_DIR,
        env={**os.environ, "TASKS_DATABASE_URL": url},
        check=True,
        capture_output=True,
    )
    return url


@contextlib.asynccontextmanager
async def serve(app: Any, base_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=base_url) as client:
            yield client


class User:
    """A user changing tasks through the tasks API and remembering what the feed must say."""

    def __init__(self, tasks: httpx.AsyncClient, mint: TokenMint) -> None:
        self.id = uuid.uuid4()
        self.tasks = tasks
        token = mint.issue(self.id, audience=AUDIENCE, scopes=SCOPES, ttl=600)
        self.headers = {"Authorization": f"Bearer {token}"}
        self.expected: list[str] = []
        self.open: dict[int, tuple[str, str]] = {}  # number -> (title, etag)
        self.step = 0

    async def change_something(self) -> None:
        """Create, complete, delete or reset, in turn; each is one event."""
        self.step += 1
        if self.step % 7 == 0:
            response = await self.tasks.post("/v1/tasks/reset", headers=self.headers)
            assert response.status_code == 200, response.text
            deleted = response.json()["deleted"]
            noun = "task" if deleted == 1 else "tasks"
            self.expected.append(
                f"You reset your board ({deleted} {noun} removed)"
                if deleted
                else "You reset your board"
            )
            self.open.clear()
        elif self.step % 3 == 1 or not self.open:
            title = f"Errand {self.step}"
            response = await self.tasks.post(
                "/v1/tasks", json={"title": title}, headers=self.headers
            )
            assert response.status_code == 201, response.text
            number = response.json()["number"]
            self.open[number] = (title, response.headers["etag"])
            self.expected.append(f"You created #{number} {title}")
        elif self.step % 3 == 2:
            number, (title, etag) = next(iter(self.open.items()))
            response = await self.tasks.patch(
                f"/v1/tasks/{number}",
                json={"status": "done"},
                headers={**self.headers, "If-Match": etag},
            )
            assert response.status_code == 200, response.text
            self.open.pop(number)
            self.expected.append(f"You completed #{number} {title}")
        else:
            number, (title, etag) = next(iter(self.open.items()))
            response = await self.tasks.delete(
                f"/v1/tasks/{number}", headers={**self.headers, "If-Match": etag}
            )
            assert response.status_code == 204, response.text
            self.open.pop(number)
            self.expected.append(f"You deleted #{number} {title}")

    async def feed(self, activity: httpx.AsyncClient) -> list[str]:
        """The user's whole feed, oldest first."""
        summaries: list[str] = []
        params: dict[str, Any] = {"limit": 100}
        while True:
            response = await activity.get("/v1/activity", params=params, headers=self.headers)
            assert response.status_code == 200, response.text
            body = response.json()
            summaries.extend(item["summary"] for item in body["items"])
            if not body["next_cursor"]:
                return summaries[::-1]
            params["cursor"] = body["next_cursor"]


@pytest.fixture
def worker_log(
    redis_server: RedisServer, activity_settings: ActivitySettings, tmp_path: Path
) -> Iterator[Path]:
    """A worker process on the test's Redis; yields the path of its log."""
    path = tmp_path / "worker.log"
    with path.open("wb") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "taskmesh_activity.worker"],
            env={
                **os.environ,
                "ACTIVITY_DATABASE_URL": activity_settings.database_url,
                "ACTIVITY_REDIS_URL": redis_server.url,
            },
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    yield path
    worker.terminate()
    worker.wait(10)


async def test_every_change_reaches_the_feed_after_redis_was_down_30_seconds(
    redis_server: RedisServer,
    worker_log: Path,
    tasks_database: str,
    activity_settings: ActivitySettings,
    token_mint: TokenMint,
) -> None:
    tasks_app = create_tasks_app(
        TasksSettings(database_url=tasks_database, redis_url=redis_server.url, jwks_url=JWKS_URL),
        jwks_transport=token_mint.transport(),
    )
    activity_app = create_activity_app(
        activity_settings.model_copy(update={"redis_url": redis_server.url}),
        jwks_transport=token_mint.transport(),
    )
    async with (
        serve(tasks_app, "http://tasks") as tasks,
        serve(activity_app, "http://activity") as activity,
    ):
        users = [User(tasks, token_mint) for _ in range(3)]
        for _ in range(3):
            for user in users:
                await user.change_something()

        await asyncio.to_thread(redis_server.stop)
        outage_ends = time.monotonic() + OUTAGE_SECONDS
        during = 0
        while time.monotonic() < outage_ends:
            for user in users:
                await user.change_something()
                during += 1
            await asyncio.sleep(0.5)
        await asyncio.to_thread(redis_server.start)

        for user in users:
            await user.change_something()

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            feeds = [await user.feed(activity) for user in users]
            if all(feed == user.expected for feed, user in zip(feeds, users, strict=True)):
                break
            await asyncio.sleep(0.5)
        log = await asyncio.to_thread(worker_log.read_text)
        # Equal lists: every change arrived once, in order, and nobody else's did.
        for feed, user in zip(feeds, users, strict=True):
            assert feed == user.expected, log[-3000:]
    # The worker did meet the outage and rode it out.
    assert during >= 30
    assert "backing off" in log
    print(
        f"\nredis outage: {OUTAGE_SECONDS} s, {during} changes made during it,"
        f" {sum(len(u.expected) for u in users)} changes in total, all in the feeds"
    )
