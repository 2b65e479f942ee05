"""PostgreSQL unreachable: the API answers 503 problem+json with Retry-After, not a 500."""

from __future__ import annotations

import uuid
from urllib.parse import urlsplit

import httpx
from taskmesh.processes import free_port
from taskmesh.testing.tokens import TokenMint
from taskmesh_activity.config import ActivitySettings
from taskmesh_activity.main import create_app


async def test_unreachable_database_answers_503_problem(
    activity_settings: ActivitySettings, token_mint: TokenMint
) -> None:
    # The API starts without its database (pool min_size 0); nothing listens on this port.
    parts = urlsplit(activity_settings.database_url)
    credentials = parts.netloc.rpartition("@")[0]
    nowhere = parts._replace(netloc=f"{credentials}@127.0.0.1:{free_port()}").geturl()
    app = create_app(
        activity_settings.model_copy(update={"database_url": nowhere}),
        jwks_transport=token_mint.transport(),
    )
    owner = uuid.uuid4()
    user = token_mint.issue(owner, audience="taskmesh-activity", scopes=("activity:read",))
    service = token_mint.issue(
        "taskmesh-auth",
        audience="taskmesh-activity",
        kind="service",
        roles=(),
        scopes=("activity:purge",),
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://activity") as http:
            answers = [
                await http.get("/v1/activity", headers={"Authorization": f"Bearer {user}"}),
                await http.delete(
                    f"/v1/internal/owners/{owner}/activity",
                    headers={"Authorization": f"Bearer {service}"},
                ),
            ]
            ready = await http.get("/readyz")
    for answer in answers:
        assert answer.status_code == 503, answer.text
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.headers["retry-after"] == "1"
        assert answer.json()["detail"] == "The database is unavailable; retry shortly."
        assert "Traceback" not in answer.text
    assert ready.status_code == 503
    assert ready.json()["checks"]["postgres"]["status"] == "fail"
