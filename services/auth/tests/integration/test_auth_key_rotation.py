"""Key rotation with `python -m taskmesh_auth.admin rotate-keys` under concurrent traffic."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable
from typing import Any

import httpx
import jwt
import pytest
from taskmesh_common.tokens import TokenVerifier, VerifierConfig


async def _admin(database_url: str, *args: str, env: dict[str, str] | None = None) -> str:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "taskmesh_auth.admin",
        *args,
        env={
            **os.environ,
            "TASKMESH_ENV": "test",
            "AUTH_DATABASE_URL": database_url,
            **(env or {}),
        },
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    return out.decode()


@pytest.mark.slow
async def test_rotation_under_traffic_fails_no_request(
    auth_client: Any, auth_database: str, new_email: Callable[..., str], strong_password: str
) -> None:
    async with auth_client(key_activation_delay=2.5, key_reload_interval=0.3) as client:
        # Another service's verifier: JWKS cached for 5 minutes, refetched on unknown kid.
        verifier = TokenVerifier(
            config=VerifierConfig(issuer="taskmesh-auth", audience="taskmesh-tasks"),
            jwks_url="http://auth/.well-known/jwks.json",
            http=client,
        )
        email = new_email()
        await client.post(
            "/v1/users", json={"email": email, "display_name": "A", "password": strong_password}
        )
        login = await client.post(
            "/v1/sessions", json={"email": email, "password": strong_password}
        )
        first = login.json()
        old_kid = jwt.get_unverified_header(first["access_token"])["kid"]
        await verifier.verify(first["access_token"])

        failures: list[str] = []
        kids: set[str] = set()
        stop = asyncio.Event()
        rotated = asyncio.Event()
        new_kids: list[str] = []

        async def traffic(refresh_token: str) -> None:
            while not stop.is_set():
                pair = await client.post(
                    "/v1/sessions/refresh", json={"refresh_token": refresh_token}
                )
                if pair.status_code != 200:
                    failures.append(f"refresh {pair.status_code}")
                    return
                refresh_token = pair.json()["refresh_token"]
                token = pair.json()["access_token"]
                kid = jwt.get_unverified_header(token)["kid"]
                kids.add(kid)
                if kid in new_kids:
                    rotated.set()
                try:
                    await verifier.verify(token)
                    await verifier.verify(first["access_token"])
                except Exception as exc:
                    failures.append(f"verify: {exc}")
                me = await client.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
                if me.status_code != 200:
                    failures.append(f"me {me.status_code}")

        sessions = []
        for _ in range(8):
            response = await client.post(
                "/v1/sessions", json={"email": email, "password": strong_password}
            )
            sessions.append(response.json()["refresh_token"])
        workers = [asyncio.create_task(traffic(token)) for token in sessions]
        await asyncio.sleep(0.5)
        output = await _admin(
            auth_database, "rotate-keys", env={"AUTH_KEY_ACTIVATION_DELAY": "2.5"}
        )
        new_kid = output.split()[-1]
        new_kids.append(new_kid)
        # Traffic goes on until tokens carry the new kid (about the activation delay).
        await asyncio.wait_for(rotated.wait(), timeout=10)
        await asyncio.sleep(0.5)
        stop.set()
        await asyncio.gather(*workers)

        assert failures == []
        assert {old_kid, new_kid} <= kids
        jwks = (await client.get("/.well-known/jwks.json")).json()
        published = [key["kid"] for key in jwks["keys"]]
        assert published[:2] == [new_kid, old_kid]


async def test_create_admin_command(
    client: httpx.AsyncClient, auth_database: str, new_email: Callable[..., str]
) -> None:
    email = new_email("admin")
    password = "an admin passphrase of some length"
    output = await _admin(
        auth_database,
        "create-admin",
        "--email",
        email.upper(),
        env={"AUTH_ADMIN_PASSWORD": password, "AUTH_ARGON2_TIME_COST": "2"},
    )
    assert email in output
    login = await client.post("/v1/sessions", json={"email": email, "password": password})
    assert login.status_code == 200
    me = await client.get(
        "/v1/me", headers={"Authorization": f"Bearer {login.json()['access_token']}"}
    )
    assert set(me.json()["roles"]) == {"user", "admin"}


async def test_create_admin_refuses_a_weak_password(
    auth_database: str, new_email: Callable[..., str]
) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "taskmesh_auth.admin",
        "create-admin",
        "--email",
        new_email(),
        env={**os.environ, "TASKMESH_ENV": "test", "AUTH_DATABASE_URL": auth_database},
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await process.communicate(b"password\n")
    assert process.returncode == 2
    assert b"at least 12" in err


async def test_env_bootstrap_creates_the_first_admin(
    auth_client: Any, new_email: Callable[..., str]
) -> None:
    email = new_email("boot")
    password = "bootstrap admin passphrase"
    async with auth_client(admin_email=email, admin_password=password) as client:
        login = await client.post("/v1/sessions", json={"email": email, "password": password})
        assert login.status_code == 200
        me = await client.get(
            "/v1/me", headers={"Authorization": f"Bearer {login.json()['access_token']}"}
        )
        assert "admin" in me.json()["roles"]
