"""Token verification: the happy path and every way a token must be refused."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable

import httpx
import jwt
import pytest
from taskmesh.testing.tokens import TokenMint
from taskmesh_common.tokens import (
    CachedNotBefore,
    SyncTokenVerifier,
    TokenError,
    TokenVerifier,
    VerifierConfig,
)

AUDIENCE = "taskmesh-tasks"
CONFIG = VerifierConfig(issuer="taskmesh-auth", audience=AUDIENCE)
JWKS_URL = "http://auth/.well-known/jwks.json"


@pytest.fixture
def mint() -> TokenMint:
    return TokenMint()


@pytest.fixture
async def verifier(mint: TokenMint) -> AsyncIterator[TokenVerifier]:
    async with httpx.AsyncClient(transport=mint.transport()) as http:
        yield TokenVerifier(config=CONFIG, jwks_url=JWKS_URL, http=http)


async def test_valid_token_gives_a_principal(mint: TokenMint, verifier: TokenVerifier) -> None:
    user = uuid.uuid4()
    token = mint.issue(
        user, audience=[AUDIENCE, "other"], roles=["user", "admin"], scopes=["tasks:read"]
    )
    principal = await verifier.verify(token)
    assert principal.subject == str(user)
    assert principal.kind == "user"
    assert principal.is_admin
    assert principal.has_scope("tasks:read")
    assert not principal.has_scope("tasks:write")


def _other_key_token() -> str:
    return TokenMint(kid="test-key-1").issue("u", audience=AUDIENCE)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda m: m.issue("u", audience="taskmesh-activity"), "invalid token"),
        (lambda m: m.issue("u", audience=AUDIENCE, iss="someone-else"), "invalid token"),
        (lambda m: m.issue("u", audience=AUDIENCE, ttl=-120), "token expired"),
        (lambda m: m.issue("u", audience=AUDIENCE, nbf=int(time.time()) + 600), "not yet valid"),
        (lambda m: m.issue("u", audience=AUDIENCE, iat=int(time.time()) + 600), "not yet valid"),
        (lambda m: m.issue("u", audience=AUDIENCE, jti=None), "invalid token"),
        (lambda m: m.issue("u", audience=AUDIENCE, kind="robot"), "unknown principal kind"),
        (lambda m: m.issue("u", audience=AUDIENCE, scope=["tasks:read"]), "malformed claims"),
        (lambda m: m.issue("u", audience=AUDIENCE, headers={"typ": "JWT"}), "not an access token"),
        (lambda m: m.issue("u", audience=AUDIENCE, headers={"kid": "nope"}), "unknown signing key"),
        (
            lambda m: m.issue("u", audience=AUDIENCE, headers={"jku": "http://evil"}),
            "header not allowed",
        ),
        (lambda m: _other_key_token(), "invalid token"),
        (lambda m: "not.a.token", "malformed token"),
        (lambda m: m.issue("u", audience=AUDIENCE)[:-4] + "AAAA", "invalid token"),
    ],
    ids=[
        "wrong-audience",
        "wrong-issuer",
        "expired",
        "not-yet-valid",
        "issued-in-future",
        "missing-jti",
        "unknown-kind",
        "scope-not-a-string",
        "wrong-typ",
        "unknown-kid",
        "jku-header",
        "signed-by-another-key",
        "garbage",
        "tampered-signature",
    ],
)
async def test_bad_tokens_are_refused(
    mint: TokenMint, verifier: TokenVerifier, make: Callable[[TokenMint], str], message: str
) -> None:
    with pytest.raises(TokenError, match=message):
        await verifier.verify(make(mint))


async def test_other_algorithms_are_refused(verifier: TokenVerifier) -> None:
    hs256 = jwt.encode(
        {"sub": "u", "aud": AUDIENCE},
        "secret" * 6,
        algorithm="HS256",
        headers={"kid": "test-key-1"},
    )
    unsigned = jwt.encode({"sub": "u"}, None, algorithm="none", headers={"kid": "test-key-1"})
    for token in (hs256, unsigned):
        with pytest.raises(TokenError, match="algorithm not allowed"):
            await verifier.verify(token)


async def test_revoked_tokens_are_refused(mint: TokenMint) -> None:
    token = mint.issue("user-1", audience=AUDIENCE, iat=int(time.time()) - 10)

    async def not_before(subject: str) -> int | None:
        return int(time.time()) if subject == "user-1" else None

    async with httpx.AsyncClient(transport=mint.transport()) as http:
        verifier = TokenVerifier(config=CONFIG, jwks_url=JWKS_URL, http=http, not_before=not_before)
        with pytest.raises(TokenError, match="revoked"):
            await verifier.verify(token)
        assert (await verifier.verify(mint.issue("user-2", audience=AUDIENCE))).subject == "user-2"


async def test_unreachable_jwks_means_unknown_key(mint: TokenMint) -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(down)) as http:
        verifier = TokenVerifier(config=CONFIG, jwks_url=JWKS_URL, http=http)
        with pytest.raises(TokenError, match="unknown signing key"):
            await verifier.verify(mint.issue("u", audience=AUDIENCE))


def test_sync_verifier_applies_the_same_rules(mint: TokenMint) -> None:
    with httpx.Client(transport=mint.transport()) as http:
        verifier = SyncTokenVerifier(config=CONFIG, jwks_url=JWKS_URL, http=http)
        assert verifier.verify(mint.issue("u", audience=AUDIENCE)).subject == "u"
        with pytest.raises(TokenError, match="token expired"):
            verifier.verify(mint.issue("u", audience=AUDIENCE, ttl=-120))


def test_leeway_is_bounded() -> None:
    with pytest.raises(ValueError, match="leeway"):
        VerifierConfig(issuer="i", audience="a", leeway_seconds=3600)


async def test_not_before_cache_fails_open_with_last_value() -> None:
    calls = {"n": 0}

    async def fetch(subject: str) -> int | None:
        calls["n"] += 1
        if calls["n"] > 1:
            raise ConnectionError("redis down")
        return 42

    lookup = CachedNotBefore(fetch, ttl=0.0, backoff=60)
    assert await lookup("u") == 42
    assert await lookup("u") == 42  # store down: the last known value is used
    assert await lookup("someone-else") is None
