"""The client-credentials grant: service tokens with the client's own audience and scopes."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from taskmesh_common.tokens import TokenError, TokenVerifier, VerifierConfig

SECRET = "web-client-secret-0123456789"
CLIENTS = [
    {
        "id": "taskmesh-web",
        "secret": SECRET,
        "audiences": {"taskmesh-tasks": ["tasks:read", "tasks:write"]},
    }
]


def grant(**overrides: str) -> dict[str, str]:
    return {
        "grant_type": "client_credentials",
        "client_id": "taskmesh-web",
        "client_secret": SECRET,
        "audience": "taskmesh-tasks",
        **overrides,
    }


async def test_service_token_verifies_for_its_audience(auth_client: Any) -> None:
    async with auth_client(clients=CLIENTS) as client:
        response = await client.post("/v1/oauth/token", data=grant())
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["token_type"] == "Bearer"
        assert body["scope"] == "tasks:read tasks:write"
        assert body["expires_in"] == 600
        assert response.headers["cache-control"] == "no-store"
        verifier = TokenVerifier(
            config=VerifierConfig(issuer="taskmesh-auth", audience="taskmesh-tasks"),
            jwks_url="http://auth/.well-known/jwks.json",
            http=client,
        )
        principal = await verifier.verify(body["access_token"])
        assert principal.kind == "service"
        assert principal.subject == "taskmesh-web"
        assert principal.scopes == {"tasks:read", "tasks:write"}
        assert principal.roles == frozenset()


async def test_client_secret_from_a_file(auth_client: Any, tmp_path: Any) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET + "\n")
    clients = [{**CLIENTS[0], "secret": None, "secret_file": str(secret_file)}]
    async with auth_client(clients=clients) as client:
        assert (await client.post("/v1/oauth/token", data=grant())).status_code == 200


async def test_bad_client_credentials_and_audiences(auth_client: Any) -> None:
    async with auth_client(clients=CLIENTS) as client:
        wrong = await client.post("/v1/oauth/token", data=grant(client_secret="x" * 30))
        assert wrong.status_code == 401
        assert wrong.headers["content-type"] == "application/problem+json"
        assert wrong.json()["error"] == "invalid_client"
        unknown = await client.post("/v1/oauth/token", data=grant(client_id="nobody"))
        assert unknown.status_code == 401
        assert unknown.json() == wrong.json()
        audience = await client.post("/v1/oauth/token", data=grant(audience="taskmesh-activity"))
        assert audience.status_code == 400
        assert audience.json()["error"] == "invalid_target"
        grant_type = await client.post("/v1/oauth/token", data=grant(grant_type="password"))
        assert grant_type.status_code == 422
        empty = await client.post("/v1/oauth/token", data={})
        assert empty.status_code == 422
        assert empty.headers["content-type"] == "application/problem+json"


async def test_service_token_cannot_reach_other_audiences(auth_client: Any) -> None:
    async with auth_client(clients=CLIENTS) as client:
        token = (await client.post("/v1/oauth/token", data=grant())).json()["access_token"]
        verifier = TokenVerifier(
            config=VerifierConfig(issuer="taskmesh-auth", audience="taskmesh-activity"),
            jwks_url="http://auth/.well-known/jwks.json",
            http=client,
        )
        with pytest.raises(TokenError, match="invalid token"):
            await verifier.verify(token)


async def test_user_tokens_follow_the_contract(client: httpx.AsyncClient, register: Any) -> None:
    session = await register()
    verifier = TokenVerifier(
        config=VerifierConfig(issuer="taskmesh-auth", audience="taskmesh-tasks"),
        jwks_url="http://auth/.well-known/jwks.json",
        http=client,
    )
    principal = await verifier.verify(session["access_token"])
    assert principal.kind == "user"
    assert principal.subject == session["user"]["id"]
    assert principal.roles == {"user"}
    assert principal.scopes == {"profile", "tasks:read", "tasks:write", "activity:read"}
    assert principal.expires_at - principal.issued_at <= 600
