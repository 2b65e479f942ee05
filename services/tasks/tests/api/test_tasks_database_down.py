"""PostgreSQL unreachable mid-flight: requests get 503 problem+json with Retry-After, not a 500."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from taskmesh.testing.tokens import TokenMint
from taskmesh_tasks.config import TasksSettings
from taskmesh_tasks.main import create_app


class Cable:
    """A TCP forwarder in front of PostgreSQL that the test can unplug."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()

    async def plug(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port: int = self.server.sockets[0].getsockname()[1]
        return port

    async def unplug(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in list(self.writers):
            writer.transport.abort()
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self.writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


@pytest.fixture
async def cable(tasks_database_url: str) -> AsyncIterator[tuple[Cable, str]]:
    parts = urlsplit(tasks_database_url)
    cable = Cable(parts.hostname or "127.0.0.1", parts.port or 5432)
    port = await cable.plug()
    yield cable, parts._replace(netloc=f"{parts.username}@127.0.0.1:{port}").geturl()
    with contextlib.suppress(AssertionError, RuntimeError):
        await cable.unplug()


async def test_unreachable_database_answers_503_problem(
    cable: tuple[Cable, str],
    tasks_settings: TasksSettings,
    token_mint: TokenMint,
    make_user: Callable[..., Any],
) -> None:
    wire, url = cable
    settings = tasks_settings.model_copy(update={"database_url": url})
    app = create_app(settings, jwks_transport=token_mint.transport())
    user = make_user()
    headers: dict[str, str] = user.headers
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://tasks.test") as http:
            made = await http.post("/v1/tasks", json={"title": "before"}, headers=headers)
            assert made.status_code == 201
            await wire.unplug()
            answers = [
                await http.post("/v1/tasks", json={"title": "during"}, headers=headers),
                await http.get("/v1/tasks", headers=headers),
            ]
    for answer in answers:
        assert answer.status_code == 503, answer.text
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert answer.headers["retry-after"] == "1"
        assert "Traceback" not in answer.text
