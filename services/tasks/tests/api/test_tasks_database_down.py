"""PostgreSQL unreachable mid-flight: requests get 503 problem+json with Retry-After, not a 500."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from taskmesh.testing.cable import Cable, cable_to
from taskmesh.testing.tokens import TokenMint
from taskmesh_tasks.config import TasksSettings
from taskmesh_tasks.main import create_app


@pytest.fixture
async def cable(tasks_database_url: str) -> AsyncIterator[Cable]:
    async with cable_to(tasks_database_url) as cable:
        yield cable


async def test_unreachable_database_answers_503_problem(
    cable: Cable,
    tasks_settings: TasksSettings,
    token_mint: TokenMint,
    make_user: Callable[..., Any],
) -> None:
    settings = tasks_settings.model_copy(update={"database_url": cable.url})
    app = create_app(settings, jwks_transport=token_mint.transport())
    user = make_user()
    headers: dict[str, str] = user.headers
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://tasks.test") as http:
            made = await http.post("/v1/tasks", json={"title": "before"}, headers=headers)
            assert made.status_code == 201
            await cable.unplug()
            answers = [
                await http.post("/v1/tasks", json={"title": "during"}, headers=headers),
                await http.get("/v1/tasks", headers=headers),
            ]
    for answer in answers:
        assert answer.status_code == 503, answer.text
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert answer.headers["retry-after"] == "1"
        assert answer.json()["detail"] == "The task store is unavailable; retry shortly."
        assert "Traceback" not in answer.text
