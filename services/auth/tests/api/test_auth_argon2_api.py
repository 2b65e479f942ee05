"""Stored password hashes use argon2id at or above OWASP's minimum, and get upgraded on login."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import asyncpg
import httpx

_PARAMS = re.compile(r"^\$argon2id\$v=19\$m=(\d+),t=(\d+),p=(\d+)\$")


async def _stored_hash(database_url: str, email: str) -> str:
    connection = await asyncpg.connect(database_url)
    try:
        value = await connection.fetchval("SELECT password_hash FROM users WHERE email = $1", email)
    finally:
        await connection.close()
    assert isinstance(value, str)
    return value


def _params(stored: str) -> tuple[int, int, int]:
    match = _PARAMS.match(stored)
    assert match, stored
    m, t, p = (int(g) for g in match.groups())
    return m, t, p


async def test_stored_hash_meets_the_production_parameters(
    auth_client: Any, auth_database: str, new_email: Callable[..., str], strong_password: str
) -> None:
    email = new_email()
    # Production settings: no lowered cost here.
    async with auth_client(argon2_time_cost=2, argon2_memory_kib=19 * 1024) as client:
        created = await client.post(
            "/v1/users", json={"email": email, "display_name": "A", "password": strong_password}
        )
        assert created.status_code == 201
    m, t, p = _params(await _stored_hash(auth_database, email))
    assert m >= 19 * 1024
    assert t >= 2
    assert p >= 1


async def test_login_rehashes_when_parameters_rise(
    client: httpx.AsyncClient,
    auth_client: Any,
    auth_database: str,
    new_email: Callable[..., str],
    strong_password: str,
) -> None:
    email = new_email()
    await client.post(
        "/v1/users", json={"email": email, "display_name": "A", "password": strong_password}
    )
    assert _params(await _stored_hash(auth_database, email))[0] < 19 * 1024
    async with auth_client(argon2_time_cost=2, argon2_memory_kib=19 * 1024) as stronger:
        login = await stronger.post(
            "/v1/sessions", json={"email": email, "password": strong_password}
        )
        assert login.status_code == 200
    assert _params(await _stored_hash(auth_database, email))[:2] == (19 * 1024, 2)
    # A worker still on the old, cheaper parameters never downgrades the hash.
    again = await client.post("/v1/sessions", json={"email": email, "password": strong_password})
    assert again.status_code == 200
    assert _params(await _stored_hash(auth_database, email))[:2] == (19 * 1024, 2)


async def test_unknown_users_cost_the_same_time_as_wrong_passwords(
    auth_client: Any, new_email: Callable[..., str], strong_password: str
) -> None:
    email = new_email()
    production = {"argon2_time_cost": 2, "argon2_memory_kib": 19 * 1024}
    async with auth_client(login_account_limits="100/minute", **production) as client:
        await client.post(
            "/v1/users", json={"email": email, "display_name": "A", "password": strong_password}
        )

        async def timed(address: str) -> float:
            started = time.perf_counter()
            response = await client.post(
                "/v1/sessions", json={"email": address, "password": "wrong password here"}
            )
            assert response.status_code == 401
            return time.perf_counter() - started

        # Interleaved, so a burst of load on this shared machine hits both sides alike.
        known_times, unknown_times = [], []
        for _ in range(9):
            known_times.append(await timed(email))
            unknown_times.append(await timed(new_email()))
        known = sorted(known_times)[4]
        unknown = sorted(unknown_times)[4]
    # Both paths run one argon2id verification with the same parameters.
    assert 0.5 < unknown / known < 2.0, (known, unknown)
