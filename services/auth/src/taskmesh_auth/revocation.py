"""The per-user "not before" mark in Redis that voids older access tokens everywhere."""

from __future__ import annotations

import asyncio
import logging
import math
import time

from redis.asyncio import Redis
from taskmesh_common.tokens import MAX_LEEWAY_SECONDS, not_before_key

from taskmesh_auth.models import RevocationUnavailableError

logger = logging.getLogger("taskmesh.auth.revocation")


class NotBefore:
    """Reads and writes `taskmesh:auth:not-before:{sub}`.

    The mark is the current time rounded up to the next second: every token issued so far has a
    smaller `iat`, and the issuer never issues one below the mark (see `TokenIssuer.user_token`),
    so a fresh login in the same second still works. Verifiers learn it within 1 s
    (`CachedNotBefore`); the key expires once every older token has expired anyway.
    """

    def __init__(self, redis: Redis, *, access_ttl: int, timeout: float = 0.5) -> None:
        self.redis = redis
        self.expiry = access_ttl + MAX_LEEWAY_SECONDS + 60
        self.timeout = timeout

    async def get(self, subject: str) -> int | None:
        """The mark, or None when there is none (or Redis cannot tell us quickly)."""
        try:
            value = await asyncio.wait_for(self.redis.get(not_before_key(subject)), self.timeout)
        except Exception:
            logger.warning("not-before store unavailable while issuing")
            return None
        return int(value) if value is not None else None

    async def mark(self, subject: str) -> int:
        """Void every access token of `subject` issued until now."""
        cutoff = math.floor(time.time()) + 1
        try:
            await asyncio.wait_for(
                self.redis.set(not_before_key(subject), cutoff, ex=self.expiry), self.timeout
            )
        except Exception as exc:
            raise RevocationUnavailableError(subject) from exc
        return cutoff
