"""PostgreSQL unreachable is a 503 problem with Retry-After in every app with the handlers.

The database calls are real asyncpg connections: to a port nothing listens on (refused) and to a
server that accepts but never answers (a hung PostgreSQL: asyncpg's connect timeout).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from taskmesh.processes import free_port
from taskmesh_common.api import install_problem_handlers
from taskmesh_common.problems import PROBLEM_CONTENT_TYPE


@pytest.fixture
async def silent_port() -> AsyncIterator[int]:
    """The port of a server that accepts connections and never says a word."""
    writers: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        await reader.read()  # until the client gives up

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()
    for writer in writers:
        writer.close()
    await server.wait_closed()


def database_app(port: int) -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/rows")
    async def rows() -> None:
        await asyncpg.connect(f"postgresql://nobody@127.0.0.1:{port}/nothing", timeout=0.2)

    return app


@pytest.mark.parametrize("server", ["refused", "silent"])
async def test_unreachable_database_is_a_503_problem(
    server: str, silent_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port() if server == "refused" else silent_port
    transport = httpx.ASGITransport(app=database_app(port), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://demo") as http:
        with caplog.at_level(logging.WARNING, logger="taskmesh.errors"):
            response = await http.get("/rows")
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == PROBLEM_CONTENT_TYPE
    assert response.headers["retry-after"] == "1"
    assert response.json() == {
        "type": "about:blank",
        "title": "Service Unavailable",
        "status": 503,
        "detail": "The database is unavailable; retry shortly.",
        "instance": "/rows",
    }
    # Logged as an outage (a warning naming the error), not as a crash with a trace.
    [record] = [r for r in caplog.records if r.name == "taskmesh.errors"]
    assert record.levelno == logging.WARNING
    assert record.exc_info is None
