"""Account-deletion calls to tasks and activity, with auth's own service tokens."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
from taskmesh_auth.config import USER_AUDIENCES, USER_SCOPES
from taskmesh_auth.downstream import OwnerPurger, PurgeTarget, own_identity
from taskmesh_auth.issuer import TokenIssuer
from taskmesh_auth.keys import KeyCipher, KeyStore, LocalJwksTransport
from taskmesh_auth.models import DownstreamUnavailableError
from taskmesh_auth.repository import Repository, create_pool
from taskmesh_common.tokens import TokenVerifier, VerifierConfig

TARGETS = [
    PurgeTarget("tasks", "http://tasks:8003/", "taskmesh-tasks", "tasks:purge"),
    PurgeTarget("activity", "http://activity:8004", "taskmesh-activity", "activity:purge"),
]


async def _no_mark(_: str) -> int | None:
    return None


@pytest.fixture
async def keys(auth_database: str) -> AsyncIterator[KeyStore]:
    pool: asyncpg.Pool = await create_pool(auth_database, size=2)
    store = KeyStore(
        Repository(pool),
        KeyCipher("dev-only-taskmesh-auth-key-encryption-secret"),
        max_token_ttl=600,
        reload_interval=1.0,
    )
    await store.ensure_key()
    yield store
    await pool.close()


def _issuer(keys: KeyStore) -> TokenIssuer:
    return TokenIssuer(
        keys,
        issuer="taskmesh-auth",
        user_audiences=USER_AUDIENCES,
        user_scopes=USER_SCOPES,
        access_ttl=600,
        service_ttl=600,
        clients={},
        not_before=_no_mark,
    )


async def test_purge_calls_each_service_with_a_scoped_service_token(keys: KeyStore) -> None:
    seen: list[tuple[str, str, str]] = []
    owner = uuid.uuid4()

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, str(request.url), request.headers["authorization"]))
        return httpx.Response(200, json={"deleted": 2})

    purger = OwnerPurger(
        http=httpx.AsyncClient(transport=httpx.MockTransport(handler)),
        issuer=_issuer(keys),
        identity=own_identity("taskmesh-auth", TARGETS),
        targets=TARGETS,
    )
    await purger.purge(owner)

    assert [(m, u) for m, u, _ in seen] == [
        ("DELETE", f"http://tasks:8003/v1/internal/owners/{owner}/tasks"),
        ("DELETE", f"http://activity:8004/v1/internal/owners/{owner}/activity"),
    ]
    jwks = httpx.AsyncClient(transport=LocalJwksTransport(keys))
    for (_, _, header), (audience, scope) in zip(
        seen,
        [("taskmesh-tasks", "tasks:purge"), ("taskmesh-activity", "activity:purge")],
        strict=True,
    ):
        verifier = TokenVerifier(
            config=VerifierConfig(issuer="taskmesh-auth", audience=audience),
            jwks_url="http://auth/.well-known/jwks.json",
            http=jwks,
        )
        principal = await verifier.verify(header.removeprefix("Bearer "))
        assert principal.kind == "service"
        assert principal.subject == "taskmesh-auth"
        assert principal.scopes == {scope}


@pytest.mark.parametrize("failure", ["status", "network"])
async def test_purge_failure_is_reported(keys: KeyStore, failure: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if failure == "network":
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(500)

    purger = OwnerPurger(
        http=httpx.AsyncClient(transport=httpx.MockTransport(handler)),
        issuer=_issuer(keys),
        identity=own_identity("taskmesh-auth", TARGETS),
        targets=TARGETS,
    )
    with pytest.raises(DownstreamUnavailableError):
        await purger.purge(uuid.uuid4())


async def test_no_targets_means_no_calls(keys: KeyStore) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise AssertionError("no call expected")

    purger = OwnerPurger(
        http=httpx.AsyncClient(transport=httpx.MockTransport(handler)),
        issuer=_issuer(keys),
        identity=own_identity("taskmesh-auth", []),
        targets=[],
    )
    await purger.purge(uuid.uuid4())
