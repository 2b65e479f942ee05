"""Schemathesis hooks: every generated request gets a fresh access token for the fuzz account.

Fresh tokens matter because fuzzing `POST /v1/sessions/logout-all` voids earlier ones.
"""

from __future__ import annotations

import os
from typing import Any

import httpx
import schemathesis


@schemathesis.auth(refresh_interval=None)
class FreshLogin:
    """Logs the fuzz account in before each request."""

    def get(self, case: Any, ctx: Any) -> str:
        response = httpx.post(
            f"{os.environ['AUTH_FUZZ_URL']}/v1/sessions",
            json={
                "email": os.environ["AUTH_FUZZ_EMAIL"],
                "password": os.environ["AUTH_FUZZ_PASSWORD"],
            },
            timeout=10,
        )
        response.raise_for_status()
        return str(response.json()["access_token"])

    def set(self, case: Any, data: str, ctx: Any) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}
