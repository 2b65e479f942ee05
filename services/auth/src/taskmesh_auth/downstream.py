"""Calls to other services on account deletion, authenticated with auth's own service tokens."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

import httpx

from taskmesh_auth.issuer import ServiceClient, TokenIssuer
from taskmesh_auth.models import DownstreamUnavailableError

logger = logging.getLogger("taskmesh.auth.downstream")


@dataclass(frozen=True, slots=True)
class PurgeTarget:
    """A service holding per-owner data: where to call and which audience/scope to ask for."""

    name: str
    base_url: str
    audience: str
    scope: str

    def url(self, owner_id: uuid.UUID) -> str:
        """The internal purge endpoint for one owner."""
        return f"{self.base_url.rstrip('/')}/v1/internal/owners/{owner_id}/{self.name}"


class OwnerPurger:
    """Deletes a departing user's data in every configured service (tasks, activity)."""

    def __init__(
        self,
        *,
        http: httpx.AsyncClient,
        issuer: TokenIssuer,
        identity: ServiceClient,
        targets: list[PurgeTarget],
    ) -> None:
        self.http = http
        self.issuer = issuer
        self.identity = identity
        self.targets = targets

    async def purge(self, owner_id: uuid.UUID) -> None:
        """Call each target's purge endpoint; raise `DownstreamUnavailableError` on failure."""
        for target in self.targets:
            token = await self.issuer.service_token(self.identity, audience=target.audience)
            try:
                response = await self.http.delete(
                    target.url(owner_id),
                    headers={"Authorization": f"Bearer {token.access_token}"},
                )
            except httpx.HTTPError as exc:
                logger.warning(
                    "purge call failed", extra={"target": target.name, "error": str(exc)}
                )
                raise DownstreamUnavailableError(target.name) from exc
            if not response.is_success:
                logger.warning(
                    "purge refused", extra={"target": target.name, "status": response.status_code}
                )
                raise DownstreamUnavailableError(target.name)


def own_identity(client_id: str, targets: list[PurgeTarget]) -> ServiceClient:
    """auth's own client: allowed exactly the purge scopes of the configured targets."""
    return ServiceClient(
        client_id=client_id,
        secret=None,
        audiences={target.audience: [target.scope] for target in targets},
    )
