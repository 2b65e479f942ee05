"""Access-token issuing: user tokens and client-credentials service tokens, one signing path."""

from __future__ import annotations

import hmac
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jwt
from taskmesh_common.tokens import ACCESS_TOKEN_TYPE

from taskmesh_auth.keys import KeyStore
from taskmesh_auth.models import AudienceNotAllowedError, InvalidClientError, ServiceToken

NotBeforeLookup = Callable[[str], Awaitable[int | None]]


@dataclass(frozen=True, slots=True)
class ServiceClient:
    """A caller of the client-credentials grant: per audience, the scopes it may have."""

    client_id: str
    secret: str | None
    audiences: Mapping[str, Sequence[str]]

    def secret_matches(self, presented: str) -> bool:
        """Constant-time comparison of the presented secret."""
        if self.secret is None:
            return False
        return hmac.compare_digest(self.secret.encode(), presented.encode())


class TokenIssuer:
    """Signs access tokens exactly as docs/architecture.md describes them."""

    def __init__(
        self,
        keys: KeyStore,
        *,
        issuer: str,
        user_audiences: Sequence[str],
        user_scopes: Sequence[str],
        access_ttl: int,
        service_ttl: int,
        clients: Mapping[str, ServiceClient],
        not_before: NotBeforeLookup,
    ) -> None:
        self.keys = keys
        self.issuer = issuer
        self.user_audiences = list(user_audiences)
        self.user_scope = " ".join(user_scopes)
        self.access_ttl = access_ttl
        self.service_ttl = service_ttl
        self.clients = clients
        self.not_before = not_before

    async def user_token(self, *, user_id: uuid.UUID, roles: Sequence[str]) -> str:
        """A user's access token; `iat` is never below the user's not-before mark."""
        subject = str(user_id)
        now = int(time.time())
        cutoff = await self.not_before(subject)
        issued_at = max(now, cutoff or 0)
        return await self._sign(
            subject=subject,
            audience=self.user_audiences,
            kind="user",
            roles=list(roles),
            scope=self.user_scope,
            issued_at=issued_at,
            ttl=self.access_ttl,
        )

    def authenticate(self, client_id: str, secret: str) -> ServiceClient:
        """The client with these credentials, or :class:`InvalidClientError`."""
        client = self.clients.get(client_id)
        if client is None or not client.secret_matches(secret):
            raise InvalidClientError(client_id)
        return client

    async def service_token(self, client: ServiceClient, *, audience: str) -> ServiceToken:
        """A token for `client` to call `audience`, with the scopes configured for that pair."""
        scopes = client.audiences.get(audience)
        if scopes is None:
            raise AudienceNotAllowedError(audience)
        scope = " ".join(scopes)
        token = await self._sign(
            subject=client.client_id,
            audience=audience,
            kind="service",
            roles=[],
            scope=scope,
            issued_at=int(time.time()),
            ttl=self.service_ttl,
        )
        return ServiceToken(access_token=token, expires_in=self.service_ttl, scope=scope)

    async def _sign(
        self,
        *,
        subject: str,
        audience: str | list[str],
        kind: str,
        roles: list[str],
        scope: str,
        issued_at: int,
        ttl: int,
    ) -> str:
        key = await self.keys.signing_key()
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": subject,
            "aud": audience,
            "iat": issued_at,
            "nbf": now,
            "exp": now + ttl,
            "jti": uuid.uuid4().hex,
            "kind": kind,
            "roles": roles,
            "scope": scope,
        }
        headers = {"kid": key.kid, "typ": ACCESS_TOKEN_TYPE}
        return jwt.encode(claims, key.private_key, algorithm="EdDSA", headers=headers)
