"""A stand-in token dealer for tests of services that verify tokens but must not need `auth`."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm

TEST_ISSUER = "taskmesh-auth"


class TokenMint:
    """Signs access tokens the way the auth service does, with a throwaway Ed25519 key."""

    def __init__(self, issuer: str = TEST_ISSUER, kid: str = "test-key-1") -> None:
        self.issuer = issuer
        self.kid = kid
        self.private_key = Ed25519PrivateKey.generate()
        public = json.loads(OKPAlgorithm.to_jwk(self.private_key.public_key()))
        public.update({"kid": kid, "use": "sig", "alg": "EdDSA"})
        self.jwks: dict[str, Any] = {"keys": [public]}

    def issue(
        self,
        subject: str | uuid.UUID,
        *,
        audience: str | list[str],
        kind: str = "user",
        roles: Iterable[str] = ("user",),
        scopes: Iterable[str] = (),
        ttl: int = 300,
        headers: dict[str, Any] | None = None,
        **claims: Any,
    ) -> str:
        """A signed access token; `claims` override or add to the standard ones."""
        now = int(time.time())
        payload: dict[str, Any] = {
            "iss": self.issuer,
            "sub": str(subject),
            "aud": audience,
            "iat": now,
            "nbf": now,
            "exp": now + ttl,
            "jti": uuid.uuid4().hex,
            "kind": kind,
            "roles": list(roles),
            "scope": " ".join(scopes),
        }
        payload.update(claims)
        payload = {k: v for k, v in payload.items() if v is not None}
        header = {"kid": self.kid, "typ": "at+jwt"}
        header.update(headers or {})
        return jwt.encode(payload, self.private_key, algorithm="EdDSA", headers=header)

    def transport(self) -> httpx.MockTransport:
        """An httpx transport that serves this mint's JWKS at any `/.well-known/jwks.json`."""

        def handler(request: httpx.Request) -> httpx.Response:
            if request.url.path.endswith("/.well-known/jwks.json"):
                return httpx.Response(200, json=self.jwks)
            return httpx.Response(404)

        return httpx.MockTransport(handler)
