"""Login throttling: per-account and per-address budgets, trusted proxies, failing open."""

from __future__ import annotations

import asyncio
import socket
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx

WRONG = {"password": "certainly not the password"}


async def test_a_thousand_guesses_from_many_addresses_hit_the_account_budget(
    auth_client: Any, register: Any
) -> None:
    session = await register()
    # The default budget is 10 attempts a minute per account; addresses vary, each under its own.
    async with auth_client(login_account_limits="10/minute;50/hour") as client:
        gate = asyncio.Semaphore(25)

        async def guess(n: int) -> httpx.Response:
            address = f"198.51.{n // 250}.{n % 250 + 1}"
            async with gate:
                response: httpx.Response = await client.post(
                    "/v1/sessions",
                    json={"email": session["email"], **WRONG},
                    headers={"X-Forwarded-For": address},
                )
            return response

        responses = await asyncio.gather(*(guess(n) for n in range(1000)))
        statuses = Counter(r.status_code for r in responses)
        assert statuses == {401: 10, 429: 990}
        throttled = next(r for r in responses if r.status_code == 429)
        assert throttled.headers["content-type"] == "application/problem+json"
        assert 1 <= int(throttled.headers["retry-after"]) <= 60
        # Even the right password waits now: the budget is per account, not per guess.
        right = await client.post(
            "/v1/sessions", json={"email": session["email"], "password": session["password"]}
        )
        assert right.status_code == 429


async def test_unknown_accounts_are_throttled_the_same_way(
    auth_client: Any, new_email: Callable[..., str]
) -> None:
    email = new_email()
    async with auth_client(login_account_limits="3/minute") as client:
        statuses = [
            (await client.post("/v1/sessions", json={"email": email, **WRONG})).status_code
            for _ in range(5)
        ]
    assert statuses == [401, 401, 401, 429, 429]


async def test_a_success_resets_the_account_budget(auth_client: Any, register: Any) -> None:
    session = await register()
    right = {"email": session["email"], "password": session["password"]}
    async with auth_client(login_account_limits="3/minute") as client:
        for _ in range(2):
            await client.post("/v1/sessions", json={"email": session["email"], **WRONG})
        assert (await client.post("/v1/sessions", json=right)).status_code == 200
        for _ in range(2):
            await client.post("/v1/sessions", json={"email": session["email"], **WRONG})
        assert (await client.post("/v1/sessions", json=right)).status_code == 200


async def test_failures_from_one_address_hit_the_address_budget(
    auth_client: Any, new_email: Callable[..., str]
) -> None:
    async with auth_client(login_ip_limits="5/minute") as client:
        statuses = [
            (
                await client.post(
                    "/v1/sessions",
                    json={"email": new_email(), **WRONG},
                    headers={"X-Forwarded-For": "203.0.113.7"},
                )
            ).status_code
            for _ in range(7)
        ]
        other = await client.post(
            "/v1/sessions",
            json={"email": new_email(), **WRONG},
            headers={"X-Forwarded-For": "203.0.113.8"},
        )
    assert statuses == [401] * 5 + [429] * 2
    assert other.status_code == 401


async def test_forwarded_for_is_ignored_from_untrusted_peers(
    auth_client: Any, new_email: Callable[..., str]
) -> None:
    # The direct peer is not a trusted proxy, so its X-Forwarded-For cannot dodge the budget.
    async with auth_client(peer="192.0.2.50", login_ip_limits="3/minute") as client:
        statuses = [
            (
                await client.post(
                    "/v1/sessions",
                    json={"email": new_email(), **WRONG},
                    headers={"X-Forwarded-For": f"198.51.100.{n}"},
                )
            ).status_code
            for n in range(5)
        ]
    assert statuses == [401, 401, 401, 429, 429]


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_login_fails_open_when_redis_is_down(auth_client: Any, register: Any) -> None:
    session = await register()
    dead_redis = f"redis://127.0.0.1:{_closed_port()}/1"
    async with auth_client(redis_url=dead_redis) as client:
        login = await client.post(
            "/v1/sessions", json={"email": session["email"], "password": session["password"]}
        )
        assert login.status_code == 200
        wrong = await client.post("/v1/sessions", json={"email": session["email"], **WRONG})
        assert wrong.status_code == 401
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["redis"]["status"] == "fail"
        assert ready.json()["checks"]["postgres"]["status"] == "ok"


async def test_password_checks_behind_a_token_are_throttled_too(
    auth_client: Any, register: Any
) -> None:
    session = await register()
    auth = {"Authorization": f"Bearer {session['access_token']}"}
    async with auth_client(login_account_limits="3/minute") as client:
        statuses = [
            (
                await client.request(
                    "DELETE", "/v1/me", headers=auth, json={"password": "guess number one!"}
                )
            ).status_code
            for _ in range(4)
        ]
        changed = await client.post(
            "/v1/me/password",
            headers=auth,
            json={"current_password": session["password"], "new_password": "x" * 5 + "yz" * 8},
        )
    assert statuses == [401, 401, 401, 429]
    assert changed.status_code == 429
