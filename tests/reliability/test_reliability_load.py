"""The load generator's own behaviour: token renewal (no system needed)."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from reliability.load import TOKEN_REFRESH_SECONDS, Worker, workers


def _auth_server(logins: list[float]) -> httpx.MockTransport:
    """Sign-ups and sign-ins of an auth service that counts the sign-ins."""

    async def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/auth/v1/sessions":
            logins.append(time.monotonic())
            await asyncio.sleep(0.01)  # an argon2 verification takes a while
            return httpx.Response(200, json={"access_token": f"token-{len(logins)}"})
        return httpx.Response(201, json={})

    return httpx.MockTransport(handle)


async def test_requests_in_flight_when_a_token_goes_stale_share_one_login() -> None:
    logins: list[float] = []
    async with httpx.AsyncClient(base_url="http://t", transport=_auth_server(logins)) as client:
        worker = Worker(client, "a@example.com", "127.0.0.1")
        await worker.login()
        worker.issued -= TOKEN_REFRESH_SECONDS + 1  # the token is now due for renewal

        headers = await asyncio.gather(*(worker.headers() for _ in range(20)))

    assert len(logins) == 2  # the first sign-in and one renewal, not one per request
    assert {h["Authorization"] for h in headers} == {"Bearer token-2"}


async def test_workers_renew_their_tokens_at_different_times(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    transport = _auth_server([])
    monkeypatch.setattr(httpx, "AsyncHTTPTransport", lambda **_: transport)
    async with workers("http://t", 16, subnet=60) as made:
        renewals = sorted(w.renew_after for w in made)

    assert len(set(renewals)) == 16
    assert renewals[-1] == TOKEN_REFRESH_SECONDS
    assert renewals[-1] - renewals[0] >= 0.2 * TOKEN_REFRESH_SECONDS
