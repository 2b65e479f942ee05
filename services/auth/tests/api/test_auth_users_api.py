"""Accounts and sessions through the HTTP API, against real PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import httpx

PROBLEM = "application/problem+json"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def wait_rejected(client: httpx.AsyncClient, token: str, bound: float = 2.0) -> float:
    """Seconds until `token` stops working on GET /v1/me (fails the test after `bound`)."""
    started = time.monotonic()
    while time.monotonic() - started < bound:
        response = await client.get("/v1/me", headers=bearer(token))
        if response.status_code == 401:
            assert response.headers["content-type"] == PROBLEM
            return time.monotonic() - started
        assert response.status_code == 200
        await asyncio.sleep(0.1)
    raise AssertionError(f"token still accepted after {bound} s")


async def test_register_normalises_email_and_hides_the_hash(
    client: httpx.AsyncClient, new_email: Callable[..., str], strong_password: str
) -> None:
    email = new_email()
    response = await client.post(
        "/v1/users",
        json={"email": email.upper(), "display_name": "  Ada  ", "password": strong_password},
    )
    assert response.status_code == 201
    body = response.json()
    assert body["email"] == email
    assert body["display_name"] == "Ada"
    assert body["roles"] == ["user"]
    assert body["version"] == 1
    assert set(body) == {"id", "email", "display_name", "roles", "created_at", "version"}


async def test_emails_are_unique_case_insensitively(
    client: httpx.AsyncClient, new_email: Callable[..., str], strong_password: str
) -> None:
    email = new_email()
    first = await client.post(
        "/v1/users", json={"email": email, "display_name": "A", "password": strong_password}
    )
    assert first.status_code == 201
    again = await client.post(
        "/v1/users",
        json={"email": email.title(), "display_name": "B", "password": strong_password},
    )
    assert again.status_code == 409
    assert again.headers["content-type"] == PROBLEM


async def test_password_policy(client: httpx.AsyncClient, new_email: Callable[..., str]) -> None:
    short = await client.post(
        "/v1/users", json={"email": new_email(), "display_name": "A", "password": "short"}
    )
    assert short.status_code == 422
    assert short.json()["errors"][0]["loc"] == ["body", "password"]
    for weak in ("password1234", "Password2024!", "QAZWSXEDCRFV", "aaaaaaaaaaaaaaa"):
        response = await client.post(
            "/v1/users", json={"email": new_email(), "display_name": "A", "password": weak}
        )
        assert response.status_code == 422, weak
        assert response.headers["content-type"] == PROBLEM
        assert response.json()["title"] == "Weak password"


async def test_bad_input_is_a_422_problem(client: httpx.AsyncClient) -> None:
    for body in (
        {"email": "not-an-email", "display_name": "A", "password": "x" * 20},
        {"email": "a@example.com"},
        {"email": "a@example.com", "display_name": " ", "password": "x" * 20, "extra": 1},
        {"email": "a@example.com", "display_name": "nul\u0000byte", "password": "x" * 20},
    ):
        response = await client.post("/v1/users", json=body)
        assert response.status_code == 422
        assert response.headers["content-type"] == PROBLEM
        assert response.json()["errors"]
    lone_surrogate = await client.post(
        "/v1/users",
        content=b'{"email": "a@example.com", "display_name": "lone\\ud800", "password": "%s"}'
        % (b"x" * 20),
        headers={"content-type": "application/json"},
    )
    assert lone_surrogate.status_code == 422
    broken = await client.post(
        "/v1/users", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert broken.status_code == 422


async def test_login_returns_a_token_pair(
    client: httpx.AsyncClient, register: Any, strong_password: str
) -> None:
    session = await register()
    assert session["token_type"] == "Bearer"
    assert session["expires_in"] == 600
    assert session["refresh_expires_in"] > 0
    login = await client.post(
        "/v1/sessions", json={"email": session["email"].upper(), "password": strong_password}
    )
    assert login.status_code == 200
    assert login.headers["cache-control"] == "no-store"


async def test_unknown_user_and_wrong_password_look_the_same(
    client: httpx.AsyncClient, register: Any, new_email: Callable[..., str]
) -> None:
    session = await register()
    wrong = await client.post(
        "/v1/sessions", json={"email": session["email"], "password": "not the password!"}
    )
    unknown = await client.post(
        "/v1/sessions", json={"email": new_email(), "password": "not the password!"}
    )
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.headers["content-type"] == unknown.headers["content-type"] == PROBLEM
    assert wrong.json() == unknown.json()


async def test_refresh_rotates_and_reuse_revokes_the_family(
    client: httpx.AsyncClient, register: Any
) -> None:
    session = await register()
    first = session["refresh_token"]
    rotated = await client.post("/v1/sessions/refresh", json={"refresh_token": first})
    assert rotated.status_code == 200
    second = rotated.json()["refresh_token"]
    assert second != first
    me = await client.get("/v1/me", headers=bearer(rotated.json()["access_token"]))
    assert me.status_code == 200

    reused = await client.post("/v1/sessions/refresh", json={"refresh_token": first})
    assert reused.status_code == 401
    assert reused.headers["content-type"] == PROBLEM
    # The thief's replay also killed the legitimate successor: the whole family is revoked.
    after = await client.post("/v1/sessions/refresh", json={"refresh_token": second})
    assert after.status_code == 401


async def test_unknown_refresh_token_is_rejected(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/sessions/refresh", json={"refresh_token": "nope" * 10})
    assert response.status_code == 401
    assert response.headers["content-type"] == PROBLEM


async def test_logout_revokes_the_session_only(client: httpx.AsyncClient, register: Any) -> None:
    session = await register()
    other = await client.post(
        "/v1/sessions", json={"email": session["email"], "password": session["password"]}
    )
    logout = await client.post(
        "/v1/sessions/logout", json={"refresh_token": session["refresh_token"]}
    )
    assert logout.status_code == 204
    dead = await client.post(
        "/v1/sessions/refresh", json={"refresh_token": session["refresh_token"]}
    )
    assert dead.status_code == 401
    alive = await client.post(
        "/v1/sessions/refresh", json={"refresh_token": other.json()["refresh_token"]}
    )
    assert alive.status_code == 200
    again = await client.post("/v1/sessions/logout", json={"refresh_token": "unknown" * 5})
    assert again.status_code == 204


async def test_logout_all_voids_old_access_tokens_within_the_bound(
    client: httpx.AsyncClient, register: Any
) -> None:
    session = await register()
    old = session["access_token"]
    assert (await client.get("/v1/me", headers=bearer(old))).status_code == 200
    response = await client.post("/v1/sessions/logout-all", headers=bearer(old))
    assert response.status_code == 204
    # Documented bound: verifiers learn the not-before mark within 1 s (CachedNotBefore ttl).
    assert await wait_rejected(client, old, bound=1.5) <= 1.5
    refresh = await client.post(
        "/v1/sessions/refresh", json={"refresh_token": session["refresh_token"]}
    )
    assert refresh.status_code == 401
    # Logging in again right away (same second) yields a token that works.
    login = await client.post(
        "/v1/sessions", json={"email": session["email"], "password": session["password"]}
    )
    assert login.status_code == 200
    fresh = await client.get("/v1/me", headers=bearer(login.json()["access_token"]))
    assert fresh.status_code == 200


async def test_logout_all_needs_a_token(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/sessions/logout-all")
    assert response.status_code == 401
    assert response.headers["content-type"] == PROBLEM


async def test_me_etag_and_conditional_update(client: httpx.AsyncClient, register: Any) -> None:
    session = await register()
    auth = bearer(session["access_token"])
    me = await client.get("/v1/me", headers=auth)
    assert me.status_code == 200
    etag = me.headers["etag"]
    assert etag == '"1"'
    cached = await client.get("/v1/me", headers={**auth, "If-None-Match": etag})
    assert cached.status_code == 304

    missing = await client.patch("/v1/me", headers=auth, json={"display_name": "Grace"})
    assert missing.status_code == 428
    assert missing.headers["content-type"] == PROBLEM
    updated = await client.patch(
        "/v1/me", headers={**auth, "If-Match": etag}, json={"display_name": "Grace"}
    )
    assert updated.status_code == 200
    assert updated.json()["display_name"] == "Grace"
    assert updated.headers["etag"] == '"2"'
    stale = await client.patch(
        "/v1/me", headers={**auth, "If-Match": etag}, json={"display_name": "Again"}
    )
    assert stale.status_code == 412
    assert stale.headers["content-type"] == PROBLEM
    garbage = await client.patch(
        "/v1/me", headers={**auth, "If-Match": "zzz"}, json={"display_name": "Again"}
    )
    assert garbage.status_code == 412
    invalid = await client.patch(
        "/v1/me", headers={**auth, "If-Match": '"2"'}, json={"display_name": ""}
    )
    assert invalid.status_code == 422


async def test_change_password(client: httpx.AsyncClient, register: Any) -> None:
    session = await register()
    auth = bearer(session["access_token"])
    new_password = "a different long passphrase"
    wrong = await client.post(
        "/v1/me/password",
        headers=auth,
        json={"current_password": "wrong password!!", "new_password": new_password},
    )
    assert wrong.status_code == 401
    weak = await client.post(
        "/v1/me/password",
        headers=auth,
        json={"current_password": session["password"], "new_password": "password123!"},
    )
    assert weak.status_code == 422
    changed = await client.post(
        "/v1/me/password",
        headers=auth,
        json={"current_password": session["password"], "new_password": new_password},
    )
    assert changed.status_code == 204
    await wait_rejected(client, session["access_token"], bound=1.5)
    old = await client.post(
        "/v1/sessions", json={"email": session["email"], "password": session["password"]}
    )
    assert old.status_code == 401
    new = await client.post(
        "/v1/sessions", json={"email": session["email"], "password": new_password}
    )
    assert new.status_code == 200
    refresh = await client.post(
        "/v1/sessions/refresh", json={"refresh_token": session["refresh_token"]}
    )
    assert refresh.status_code == 401


async def test_delete_account(client: httpx.AsyncClient, register: Any) -> None:
    session = await register()
    auth = bearer(session["access_token"])
    wrong = await client.request(
        "DELETE", "/v1/me", headers=auth, json={"password": "not my password"}
    )
    assert wrong.status_code == 401
    deleted = await client.request(
        "DELETE", "/v1/me", headers=auth, json={"password": session["password"]}
    )
    assert deleted.status_code == 204
    login = await client.post(
        "/v1/sessions", json={"email": session["email"], "password": session["password"]}
    )
    assert login.status_code == 401
    gone = await client.get("/v1/me", headers=auth)
    assert gone.status_code == 401


async def test_delete_account_purges_tasks_and_activity(
    auth_client: Any, new_email: Callable[..., str], strong_password: str
) -> None:
    calls: list[httpx.Request] = []

    def downstream(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(200, json={"deleted": 3})

    async with auth_client(
        tasks_url="http://tasks.internal", activity_url="http://activity.internal"
    ) as client:
        client.app.state.purger.http = httpx.AsyncClient(transport=httpx.MockTransport(downstream))
        email = new_email()
        await client.post(
            "/v1/users", json={"email": email, "display_name": "A", "password": strong_password}
        )
        login = await client.post(
            "/v1/sessions", json={"email": email, "password": strong_password}
        )
        user_id = (await client.get("/v1/me", headers=bearer(login.json()["access_token"]))).json()[
            "id"
        ]
        deleted = await client.request(
            "DELETE",
            "/v1/me",
            headers=bearer(login.json()["access_token"]),
            json={"password": strong_password},
        )
        assert deleted.status_code == 204
    assert [(c.method, str(c.url)) for c in calls] == [
        ("DELETE", f"http://tasks.internal/v1/internal/owners/{user_id}/tasks"),
        ("DELETE", f"http://activity.internal/v1/internal/owners/{user_id}/activity"),
    ]


async def test_delete_account_keeps_the_user_when_a_purge_fails(
    auth_client: Any, new_email: Callable[..., str], strong_password: str
) -> None:
    async with auth_client(tasks_url="http://tasks.internal") as client:
        client.app.state.purger.http = httpx.AsyncClient(
            transport=httpx.MockTransport(lambda _: httpx.Response(503))
        )
        email = new_email()
        await client.post(
            "/v1/users", json={"email": email, "display_name": "A", "password": strong_password}
        )
        login = await client.post(
            "/v1/sessions", json={"email": email, "password": strong_password}
        )
        deleted = await client.request(
            "DELETE",
            "/v1/me",
            headers=bearer(login.json()["access_token"]),
            json={"password": strong_password},
        )
        assert deleted.status_code == 503
        assert deleted.headers["content-type"] == PROBLEM
        again = await client.post(
            "/v1/sessions", json={"email": email, "password": strong_password}
        )
        assert again.status_code == 200


async def test_jwks_and_operational_routes(client: httpx.AsyncClient) -> None:
    jwks = await client.get("/.well-known/jwks.json")
    assert jwks.status_code == 200
    keys = jwks.json()["keys"]
    assert keys
    assert all(k["kty"] == "OKP" and k["crv"] == "Ed25519" and "d" not in k for k in keys)
    assert (await client.get("/healthz")).status_code == 200
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert set(ready.json()["checks"]) == {"postgres", "redis"}
    metrics = await client.get("/metrics")
    assert metrics.status_code == 200
    assert "http_requests_total" in metrics.text
    openapi = await client.get("/openapi.json")
    assert openapi.status_code == 200
    assert "/v1/oauth/token" in openapi.json()["paths"]


async def test_security_events_are_logged_without_secrets(
    client: httpx.AsyncClient, register: Any, caplog: Any
) -> None:
    caplog.set_level(logging.INFO, logger="taskmesh.auth.security")
    session = await register()
    await client.post(
        "/v1/sessions", json={"email": session["email"], "password": "a wrong password!"}
    )
    rotated = await client.post(
        "/v1/sessions/refresh", json={"refresh_token": session["refresh_token"]}
    )
    await client.post("/v1/sessions/refresh", json={"refresh_token": session["refresh_token"]})
    await client.post("/v1/sessions/logout-all", headers=bearer(session["access_token"]))

    records = [r for r in caplog.records if hasattr(r, "security_event")]
    events = [r.security_event for r in records]
    for expected in (
        "user_registered",
        "login_succeeded",
        "login_failed",
        "session_refreshed",
        "refresh_token_reused",
        "logout_all",
    ):
        assert expected in events
    secrets = (
        session["password"],
        "a wrong password!",
        session["refresh_token"],
        rotated.json()["refresh_token"],
        session["access_token"],
    )
    for record in records:
        flattened = repr(record.__dict__)
        assert not any(secret in flattened for secret in secrets)
