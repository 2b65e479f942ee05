"""Ed25519 signing keys: generated here, encrypted at rest, published as a JWKS, rotated safely.

Rotation protocol: a new key is stored with `activates_at` in the future, so it is in the JWKS
before anything is signed with it; a verifier that sees an unknown `kid` therefore finds it on its
next (rate-limited) refetch. The activation delay must exceed the JWKS cache here (1 s) plus the
verifiers' refetch interval (1 s). Superseded keys stay published until their tokens expired.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import httpx
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from taskmesh_common.tokens import MAX_LEEWAY_SECONDS

JWKS_CACHE_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class StoredKey:
    """A signing key as the database holds it (private part encrypted)."""

    kid: str
    activates_at: datetime
    public_jwk: dict[str, Any]
    private_encrypted: bytes


@dataclass(frozen=True, slots=True)
class SigningKey:
    """A usable private key and its id."""

    kid: str
    private_key: Ed25519PrivateKey


class KeyRepository(Protocol):
    """The storage the key store needs."""

    async def list_keys(self) -> list[StoredKey]: ...

    async def add_key(self, key: StoredKey, *, only_if_none: bool) -> bool: ...


class KeyCipher:
    """AES-256-GCM under a key derived from the operator's secret; the kid is authenticated too."""

    def __init__(self, secret: str) -> None:
        derived = HKDF(
            algorithm=hashes.SHA256(),
            length=32,
            salt=None,
            info=b"taskmesh-auth signing-key encryption v1",
        ).derive(secret.encode())
        self._aead = AESGCM(derived)

    def encrypt(self, kid: str, plaintext: bytes) -> bytes:
        """Encrypt a private key; the nonce is prepended."""
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, plaintext, kid.encode())

    def decrypt(self, kid: str, blob: bytes) -> bytes:
        """Decrypt what :meth:`encrypt` produced (raises on tampering or a wrong secret)."""
        return self._aead.decrypt(blob[:12], blob[12:], kid.encode())


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def new_key(cipher: KeyCipher, *, activates_at: datetime) -> StoredKey:
    """Generate an Ed25519 key; its kid is the RFC 7638 thumbprint of the public key."""
    private = Ed25519PrivateKey.generate()
    x = _b64url(
        private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
    )
    canonical = json.dumps({"crv": "Ed25519", "kty": "OKP", "x": x}, separators=(",", ":"))
    kid = _b64url(hashlib.sha256(canonical.encode()).digest())
    raw = private.private_bytes(
        serialization.Encoding.Raw,
        serialization.PrivateFormat.Raw,
        serialization.NoEncryption(),
    )
    public_jwk = {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid, "use": "sig", "alg": "EdDSA"}
    return StoredKey(kid, activates_at, public_jwk, cipher.encrypt(kid, raw))


def published(keys: Sequence[StoredKey], *, now: datetime, max_token_age: float) -> list[StoredKey]:
    """Keys verifiers need: pending and current ones, and those superseded too recently to drop."""
    ordered = sorted(keys, key=lambda k: k.activates_at)
    result = []
    for index, key in enumerate(ordered):
        successor = ordered[index + 1] if index + 1 < len(ordered) else None
        superseded_at = successor.activates_at if successor else None
        if superseded_at is None or superseded_at > now - timedelta(seconds=max_token_age):
            result.append(key)
    return result


class KeyStore:
    """Loads keys from the database, signs with the newest active one, serves the JWKS."""

    def __init__(
        self,
        repo: KeyRepository,
        cipher: KeyCipher,
        *,
        max_token_ttl: int,
        reload_interval: float,
    ) -> None:
        self.repo = repo
        self.cipher = cipher
        self.max_token_age = max_token_ttl + MAX_LEEWAY_SECONDS + 60
        self.reload_interval = reload_interval
        self._keys: list[StoredKey] = []
        self._signing: SigningKey | None = None
        self._loaded_at = float("-inf")
        self._jwks: dict[str, Any] = {"keys": []}
        self._jwks_at = float("-inf")

    async def ensure_key(self) -> None:
        """Create the first signing key when the database has none (first start)."""
        key = new_key(self.cipher, activates_at=datetime.now(UTC))
        await self.repo.add_key(key, only_if_none=True)
        await self._reload()

    async def rotate(self, *, activation_delay: float) -> StoredKey:
        """Add a key that starts signing after `activation_delay` seconds."""
        activates_at = datetime.now(UTC) + timedelta(seconds=activation_delay)
        key = new_key(self.cipher, activates_at=activates_at)
        await self.repo.add_key(key, only_if_none=False)
        await self._reload()
        return key

    async def signing_key(self) -> SigningKey:
        """The newest key whose activation time has come (reloading the list now and then)."""
        if time.monotonic() - self._loaded_at > self.reload_interval:
            await self._reload()
        now = datetime.now(UTC)
        active = [k for k in self._keys if k.activates_at <= now]
        if not active:
            raise RuntimeError("no active signing key; run the service once to create one")
        newest = max(active, key=lambda k: k.activates_at)
        if self._signing is None or self._signing.kid != newest.kid:
            raw = self.cipher.decrypt(newest.kid, newest.private_encrypted)
            self._signing = SigningKey(newest.kid, Ed25519PrivateKey.from_private_bytes(raw))
        return self._signing

    async def jwks(self) -> dict[str, Any]:
        """The public JWKS, at most `JWKS_CACHE_SECONDS` old (a rotation shows up that fast)."""
        if time.monotonic() - self._jwks_at > JWKS_CACHE_SECONDS:
            self._jwks = await self._build_jwks()
            self._jwks_at = time.monotonic()
        return self._jwks

    async def _build_jwks(self) -> dict[str, Any]:
        keys = await self.repo.list_keys()
        now = datetime.now(UTC)
        newest_first = sorted(
            published(keys, now=now, max_token_age=self.max_token_age),
            key=lambda k: k.activates_at,
            reverse=True,
        )
        return {"keys": [k.public_jwk for k in newest_first]}

    async def _reload(self) -> None:
        self._keys = await self.repo.list_keys()
        self._loaded_at = time.monotonic()
        self._jwks_at = float("-inf")


class LocalJwksTransport(httpx.AsyncBaseTransport):
    """Lets this service's own token verifier read the JWKS in-process instead of over HTTP."""

    def __init__(self, store: KeyStore) -> None:
        self.store = store

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=await self.store.jwks())
