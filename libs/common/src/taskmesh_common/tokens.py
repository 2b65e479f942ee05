"""Access-token verification (RFC 8725 / RFC 9068) against the auth service's JWKS.

Framework-free: :class:`TokenVerifier` for asyncio services, :class:`SyncTokenVerifier` for Flask.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import httpx
import jwt
from jwt import PyJWK

from taskmesh_common.logging import request_id_var

logger = logging.getLogger("taskmesh.tokens")

ACCESS_TOKEN_TYPE = "at+jwt"
ALLOWED_ALGORITHMS = ("EdDSA",)
FORBIDDEN_HEADERS = frozenset({"jku", "x5u", "jwk", "x5c", "crit"})
REQUIRED_CLAIMS = ("exp", "iat", "nbf", "iss", "aud", "sub", "jti")
MAX_LEEWAY_SECONDS = 60
NOT_BEFORE_PREFIX = "taskmesh:auth:not-before:"


def not_before_key(subject: str) -> str:
    """Redis key holding the per-user "tokens issued before this second are void" mark."""
    return f"{NOT_BEFORE_PREFIX}{subject}"


class TokenError(Exception):
    """The token is not acceptable; the message is safe to show to the client."""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a user (with roles) or a service (with its client id)."""

    subject: str
    kind: Literal["user", "service"]
    roles: frozenset[str]
    scopes: frozenset[str]
    token_id: str
    issued_at: int
    expires_at: int

    @property
    def is_admin(self) -> bool:
        """Whether the caller holds the admin role."""
        return "admin" in self.roles

    def has_scope(self, scope: str) -> bool:
        """Whether the token grants `scope`."""
        return scope in self.scopes


def _check_header(token: str) -> tuple[str, str]:
    try:
        header = jwt.get_unverified_header(token)
    except (jwt.PyJWTError, UnicodeError) as exc:  # a str token may hold unencodable text
        raise TokenError("malformed token") from exc
    alg = header.get("alg")
    if alg not in ALLOWED_ALGORITHMS:
        raise TokenError("algorithm not allowed")
    if str(header.get("typ", "")).lower() != ACCESS_TOKEN_TYPE:
        raise TokenError("not an access token")
    if FORBIDDEN_HEADERS & header.keys():
        raise TokenError("token header not allowed")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise TokenError("token has no key id")
    return kid, alg


def _principal(claims: Mapping[str, Any]) -> Principal:
    kind = claims.get("kind")
    if kind not in ("user", "service"):
        raise TokenError("unknown principal kind")
    roles = claims.get("roles", [])
    scope = claims.get("scope", "")
    if not isinstance(roles, list) or not isinstance(scope, str):
        raise TokenError("malformed claims")
    return Principal(
        subject=str(claims["sub"]),
        kind=kind,
        roles=frozenset(str(r) for r in roles),
        scopes=frozenset(scope.split()),
        token_id=str(claims["jti"]),
        issued_at=int(claims["iat"]),
        expires_at=int(claims["exp"]),
    )


@dataclass(frozen=True, slots=True)
class VerifierConfig:
    """What a token must say to be accepted by this service."""

    issuer: str
    audience: str
    leeway_seconds: int = 30

    def __post_init__(self) -> None:
        if not 0 <= self.leeway_seconds <= MAX_LEEWAY_SECONDS:
            raise ValueError("clock-skew leeway must be between 0 and 60 seconds")


def _decode(token: str, key: PyJWK, alg: str, config: VerifierConfig) -> dict[str, Any]:
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=[alg],
            audience=config.audience,
            issuer=config.issuer,
            leeway=config.leeway_seconds,
            options={"require": list(REQUIRED_CLAIMS)},
        )
    except jwt.ExpiredSignatureError as exc:
        raise TokenError("token expired") from exc
    except jwt.ImmatureSignatureError as exc:
        raise TokenError("token not yet valid") from exc
    except jwt.PyJWTError as exc:
        raise TokenError("invalid token") from exc
    if int(claims["iat"]) > time.time() + config.leeway_seconds:
        raise TokenError("token issued in the future")
    return claims


def _traced() -> dict[str, str]:
    """The current request id as a header: a key fetch made for a request is logged under its id."""
    request_id = request_id_var.get()
    return {"X-Request-ID": request_id} if request_id else {}


def parse_jwks(document: Mapping[str, Any]) -> dict[str, PyJWK]:
    """Index a JWKS document's usable public keys by `kid`."""
    keys: dict[str, PyJWK] = {}
    for entry in document.get("keys", []):
        kid = entry.get("kid")
        if not kid or entry.get("use", "sig") != "sig":
            continue
        try:
            keys[kid] = PyJWK(entry)
        except jwt.PyJWTError:
            logger.warning("skipping unusable key in JWKS", extra={"kid": kid})
    return keys


class _KeySet:
    """Cached JWKS keys: refreshed after `ttl`, at most once per `min_refetch` for unknown kids."""

    def __init__(self, ttl: float, min_refetch: float) -> None:
        self.keys: dict[str, PyJWK] = {}
        self.fetched_at = float("-inf")
        self.ttl = ttl
        self.min_refetch = min_refetch

    def lookup(self, kid: str) -> tuple[PyJWK | None, bool]:
        """Return the key if known, and whether a fetch is due."""
        now = time.monotonic()
        key = self.keys.get(kid)
        stale = now - self.fetched_at > self.ttl
        may_refetch = now - self.fetched_at > self.min_refetch
        return key, stale or (key is None and may_refetch)

    def store(self, document: Mapping[str, Any]) -> None:
        self.keys = parse_jwks(document)
        self.fetched_at = time.monotonic()


NotBeforeLookup = Callable[[str], Awaitable[int | None]]


class TokenVerifier:
    """Verifies access tokens for an asyncio service, caching JWKS and verified signatures."""

    def __init__(
        self,
        *,
        config: VerifierConfig,
        jwks_url: str,
        http: httpx.AsyncClient,
        not_before: NotBeforeLookup | None = None,
        jwks_ttl: float = 300.0,
        min_refetch: float = 1.0,
        cache_size: int = 10_000,
    ) -> None:
        self.config = config
        self.jwks_url = jwks_url
        self.http = http
        self.not_before = not_before
        self._keys = _KeySet(jwks_ttl, min_refetch)
        self._fetch_lock = asyncio.Lock()
        self._verified: OrderedDict[str, Principal] = OrderedDict()
        self._cache_size = cache_size

    async def _key(self, kid: str) -> PyJWK:
        key, due = self._keys.lookup(kid)
        if due:
            async with self._fetch_lock:
                key, due = self._keys.lookup(kid)
                if due:
                    try:
                        response = await self.http.get(
                            self.jwks_url, timeout=2.0, headers=_traced()
                        )
                        response.raise_for_status()
                        self._keys.store(response.json())
                    except (httpx.HTTPError, ValueError):
                        logger.warning("could not fetch JWKS", extra={"url": self.jwks_url})
                    key, _ = self._keys.lookup(kid)
        if key is None:
            raise TokenError("unknown signing key")
        return key

    async def verify(self, token: str) -> Principal:
        """Return the token's principal, or raise :class:`TokenError`."""
        principal = self._verified.get(token)
        if principal is None:
            kid, alg = _check_header(token)
            key = await self._key(kid)
            principal = _principal(_decode(token, key, alg, self.config))
            self._verified[token] = principal
            if len(self._verified) > self._cache_size:
                self._verified.popitem(last=False)
        elif principal.expires_at + self.config.leeway_seconds < time.time():
            self._verified.pop(token, None)
            raise TokenError("token expired")
        if self.not_before is not None:
            cutoff = await self.not_before(principal.subject)
            if cutoff is not None and principal.issued_at < cutoff:
                raise TokenError("token revoked")
        return principal


class SyncTokenVerifier:
    """The same checks as :class:`TokenVerifier` for synchronous (WSGI) code."""

    def __init__(
        self,
        *,
        config: VerifierConfig,
        jwks_url: str,
        http: httpx.Client,
        jwks_ttl: float = 300.0,
        min_refetch: float = 1.0,
    ) -> None:
        self.config = config
        self.jwks_url = jwks_url
        self.http = http
        self._keys = _KeySet(jwks_ttl, min_refetch)
        self._lock = threading.Lock()

    def verify(self, token: str) -> Principal:
        """Return the token's principal, or raise :class:`TokenError`."""
        kid, alg = _check_header(token)
        with self._lock:
            key, due = self._keys.lookup(kid)
            if due:
                try:
                    response = self.http.get(self.jwks_url, timeout=2.0, headers=_traced())
                    response.raise_for_status()
                    self._keys.store(response.json())
                except (httpx.HTTPError, ValueError):
                    logger.warning("could not fetch JWKS", extra={"url": self.jwks_url})
                key, _ = self._keys.lookup(kid)
        if key is None:
            raise TokenError("unknown signing key")
        return _principal(_decode(token, key, alg, self.config))


class CachedNotBefore:
    """Per-user not-before lookups with a short local cache that fails open when the store is down.

    Revocation is therefore learned within `ttl` seconds while the store answers; when it does not
    (Redis down or blackholed) the last known value is used, because access tokens are short-lived
    and an outage must not fail every request.
    """

    def __init__(
        self,
        fetch: NotBeforeLookup,
        *,
        ttl: float = 1.0,
        timeout: float = 0.1,
        backoff: float = 5.0,
    ) -> None:
        self.fetch = fetch
        self.ttl = ttl
        self.timeout = timeout
        self.backoff = backoff
        self._cache: dict[str, tuple[float, int | None]] = {}
        self._down_until = float("-inf")

    async def __call__(self, subject: str) -> int | None:
        now = time.monotonic()
        cached = self._cache.get(subject)
        if cached is not None and (now - cached[0] < self.ttl or now < self._down_until):
            return cached[1]
        if now < self._down_until:
            return None
        try:
            value = await asyncio.wait_for(self.fetch(subject), self.timeout)
        except Exception:
            self._down_until = now + self.backoff
            logger.warning("not-before store unavailable; using cached values")
            return cached[1] if cached else None
        if len(self._cache) > 100_000:
            self._cache.clear()
        self._cache[subject] = (now, value)
        return value
