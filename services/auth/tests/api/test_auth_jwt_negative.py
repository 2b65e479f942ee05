"""Forged, malformed and misused tokens: every one is a 401 problem from GET /v1/me."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from taskmesh_auth.keys import SigningKey


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _segment(value: dict[str, Any]) -> str:
    return _b64(json.dumps(value, separators=(",", ":")).encode())


def _claims(subject: str, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": "taskmesh-auth",
        "sub": subject,
        "aud": ["taskmesh-auth", "taskmesh-tasks", "taskmesh-activity"],
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "jti": uuid.uuid4().hex,
        "kind": "user",
        "roles": ["user"],
        "scope": "profile",
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _sign(key: SigningKey, claims: dict[str, Any], **headers: Any) -> str:
    header = {"kid": key.kid, "typ": "at+jwt", **headers}
    header = {k: v for k, v in header.items() if v is not None}
    return jwt.encode(claims, key.private_key, algorithm="EdDSA", headers=header)


def _public_x(key: SigningKey) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )


def _forge(case: str, key: SigningKey, subject: str, refresh_token: str) -> str:
    now = int(time.time())
    match case:
        case "alg_none":
            header = {"alg": "none", "typ": "at+jwt", "kid": key.kid}
            return f"{_segment(header)}.{_segment(_claims(subject))}."
        case "hs256_with_public_key":
            header = {"alg": "HS256", "typ": "at+jwt", "kid": key.kid}
            signing_input = f"{_segment(header)}.{_segment(_claims(subject))}"
            secret = _b64(_public_x(key)).encode()
            mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
            return f"{signing_input}.{_b64(mac)}"
        case "wrong_aud":
            return _sign(key, _claims(subject, aud="taskmesh-elsewhere"))
        case "wrong_iss":
            return _sign(key, _claims(subject, iss="https://evil.example"))
        case "wrong_typ":
            return _sign(key, _claims(subject), typ="JWT")
        case "missing_typ":
            return _sign(key, _claims(subject), typ=None)
        case "expired":
            return _sign(key, _claims(subject, iat=now - 900, nbf=now - 900, exp=now - 300))
        case "future_nbf":
            return _sign(key, _claims(subject, nbf=now + 600))
        case "tampered_payload":
            token = _sign(key, _claims(subject))
            head, _, rest = token.partition(".")
            _, _, signature = rest.partition(".")
            evil = _segment(_claims(subject, roles=["user", "admin"]))
            return f"{head}.{evil}.{signature}"
        case "unknown_kid":
            stranger = SigningKey("not-a-known-kid", Ed25519PrivateKey.generate())
            return _sign(stranger, _claims(subject))
        case "known_kid_other_key":
            stranger = SigningKey(key.kid, Ed25519PrivateKey.generate())
            return _sign(stranger, _claims(subject))
        case "jku_header":
            return _sign(key, _claims(subject), jku="https://evil.example/jwks.json")
        case "x5u_header":
            return _sign(key, _claims(subject), x5u="https://evil.example/cert.pem")
        case "missing_exp":
            return _sign(key, _claims(subject, exp=None))
        case "missing_kid":
            return jwt.encode(
                _claims(subject), key.private_key, algorithm="EdDSA", headers={"typ": "at+jwt"}
            )
        case "refresh_token_as_access_token":
            return refresh_token
        case "garbage":
            return "not.a.jwt"
    raise AssertionError(case)


CASES = [
    "alg_none",
    "hs256_with_public_key",
    "wrong_aud",
    "wrong_iss",
    "wrong_typ",
    "missing_typ",
    "expired",
    "future_nbf",
    "tampered_payload",
    "unknown_kid",
    "known_kid_other_key",
    "jku_header",
    "x5u_header",
    "missing_exp",
    "missing_kid",
    "refresh_token_as_access_token",
    "garbage",
]


@pytest.mark.parametrize("case", CASES)
async def test_forged_token_is_rejected(
    client: httpx.AsyncClient, register: Any, case: str
) -> None:
    session = await register()
    key: SigningKey = await client.app.state.keys.signing_key()  # type: ignore[attr-defined]
    subject = session["user"]["id"]
    # The control: the same construction with nothing wrong is accepted.
    control = await client.get(
        "/v1/me", headers={"Authorization": f"Bearer {_sign(key, _claims(subject))}"}
    )
    assert control.status_code == 200

    token = _forge(case, key, subject, session["refresh_token"])
    response = await client.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 401
    assert "Bearer" in response.headers["www-authenticate"]


async def test_missing_or_non_bearer_authorization(client: httpx.AsyncClient) -> None:
    for headers in ({}, {"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": "Bearer "}):
        response = await client.get("/v1/me", headers=headers)
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"


async def test_service_token_cannot_use_user_endpoints(
    auth_client: Any,
) -> None:
    clients = [{"id": "svc", "secret": "s" * 32, "audiences": {"taskmesh-auth": ["profile"]}}]
    async with auth_client(clients=clients) as client:
        grant = await client.post(
            "/v1/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": "svc",
                "client_secret": "s" * 32,
                "audience": "taskmesh-auth",
            },
        )
        assert grant.status_code == 200
        me = await client.get(
            "/v1/me", headers={"Authorization": f"Bearer {grant.json()['access_token']}"}
        )
        assert me.status_code == 403
        assert me.headers["content-type"] == "application/problem+json"
