"""Smoke: register, log in, read the profile."""

from __future__ import annotations

from typing import Any

import httpx


async def test_register_login_me(client: httpx.AsyncClient, register: Any) -> None:
    session = await register()
    me = await client.get("/v1/me", headers={"Authorization": f"Bearer {session['access_token']}"})
    assert me.status_code == 200, me.text
    assert me.json()["email"] == session["email"]
