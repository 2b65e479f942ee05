"""PostgreSQL unreachable mid-flight: requests get 503 problem+json with Retry-After, not a 500."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from taskmesh.testing.cable import cable_to
from taskmesh_auth.config import AuthSettings
from taskmesh_auth.main import create_app

PASSWORD = "correct horse battery staple"


async def test_unreachable_database_answers_503_problem(
    auth_database: str, make_settings: Callable[..., AuthSettings], new_email: Callable[[], str]
) -> None:
    email = new_email()
    async with cable_to(auth_database) as cable:
        app = create_app(make_settings(database_url=cable.url))
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://auth") as http:
                account = {"email": email, "display_name": "Ada", "password": PASSWORD}
                assert (await http.post("/v1/users", json=account)).status_code == 201
                login = {"email": email, "password": PASSWORD}
                session = await http.post("/v1/sessions", json=login)
                assert session.status_code == 200, session.text
                bearer = {"Authorization": f"Bearer {session.json()['access_token']}"}
                await cable.unplug()
                answers = [
                    await http.post("/v1/users", json={**account, "email": new_email()}),
                    await http.post("/v1/sessions", json=login),
                    await http.get("/v1/me", headers=bearer),
                ]
    for answer in answers:
        assert answer.status_code == 503, answer.text
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.headers["retry-after"] == "1"
        assert answer.json()["detail"] == "The database is unavailable; retry shortly."
        assert "Traceback" not in answer.text
