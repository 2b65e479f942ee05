"""Login throttling per account and per client address, on Redis through the `limits` library.

Decision: when Redis is down or slow the limiter fails open (login keeps working, a warning is
logged) after at most `timeout` seconds. The argon2 cost still bounds guessing speed per worker,
and an outage of a cache must not lock every user out.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import logging
import math
import time
from collections.abc import Iterable, Sequence

from limits import RateLimitItem, parse_many
from limits.aio.strategies import MovingWindowRateLimiter

from taskmesh_auth.models import ThrottledError

logger = logging.getLogger("taskmesh.auth.throttle")

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class LoginThrottle:
    """Two budgets: attempts per account (reset by a success) and failures per client address."""

    def __init__(
        self,
        limiter: MovingWindowRateLimiter,
        *,
        account_limits: str,
        ip_limits: str,
        timeout: float,
    ) -> None:
        self.limiter = limiter
        self.account_limits: list[RateLimitItem] = parse_many(account_limits)
        self.ip_limits: list[RateLimitItem] = parse_many(ip_limits)
        self.timeout = timeout

    async def admit(self, *, account: str, ip: str) -> None:
        """Reserve one attempt, or raise :class:`ThrottledError` with the wait in seconds."""
        account_id = _account_id(account)
        try:
            async with asyncio.timeout(self.timeout):
                for item in self.ip_limits:
                    if not await self.limiter.test(item, "login-ip", ip):
                        raise ThrottledError(await self._retry_after(item, "login-ip", ip))
                # Hit before checking the password: concurrent guesses cannot overshoot the budget.
                for item in self.account_limits:
                    if not await self.limiter.hit(item, "login-account", account_id):
                        raise ThrottledError(
                            await self._retry_after(item, "login-account", account_id)
                        )
        except ThrottledError:
            raise
        except Exception as exc:
            _warn_down(exc)

    async def failed(self, *, ip: str) -> None:
        """Count a failed attempt against the client address."""
        await self._quietly(self.limiter.hit(item, "login-ip", ip) for item in self.ip_limits)

    async def succeeded(self, *, account: str) -> None:
        """A correct password resets the account's budget."""
        account_id = _account_id(account)
        await self._quietly(
            self.limiter.clear(item, "login-account", account_id) for item in self.account_limits
        )

    async def _retry_after(self, item: RateLimitItem, *identifiers: str) -> int:
        stats = await self.limiter.get_window_stats(item, *identifiers)
        return max(1, math.ceil(stats.reset_time - time.time()))

    async def _quietly(self, calls: Iterable[object]) -> None:
        try:
            async with asyncio.timeout(self.timeout):
                for call in calls:
                    await call  # type: ignore[misc]
        except Exception as exc:
            _warn_down(exc)


def _warn_down(exc: Exception) -> None:
    logger.warning(
        "login throttling unavailable; failing open", extra={"error": type(exc).__name__}
    )


def _account_id(email: str) -> str:
    # Keys in Redis carry no email addresses.
    return hashlib.sha256(email.encode()).hexdigest()[:32]


def parse_networks(values: Sequence[str]) -> list[IPNetwork]:
    """Parse the trusted-proxy list (addresses or CIDR blocks)."""
    return [ipaddress.ip_network(value, strict=False) for value in values]


def client_address(
    peer: str | None, forwarded_for: str | None, trusted: Sequence[IPNetwork]
) -> str:
    """The client's address: `X-Forwarded-For` is believed only from trusted proxies.

    Walks the header right to left past trusted hops; the first untrusted hop is the client.
    """
    if peer is None:
        return "unknown"
    if not forwarded_for or not _is_trusted(peer, trusted):
        return peer
    client = peer
    for hop in reversed([part.strip() for part in forwarded_for.split(",")]):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            break
        client = hop
        if not _is_trusted(hop, trusted):
            break
    return client


def _is_trusted(address: str, trusted: Sequence[IPNetwork]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)
