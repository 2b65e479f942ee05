"""Fuzz the access-token verifier: any string is a principal or a `TokenError`, nothing else."""

from __future__ import annotations

import base64
import contextlib
import json
import time
import uuid
from typing import Any

import atheris

# Libraries the verifier only calls through (HTTP, crypto) are imported uninstrumented: faster.
import cryptography.hazmat.primitives.asymmetric.ed25519  # noqa: F401
import httpx

with atheris.instrument_imports():
    from taskmesh.testing.tokens import TokenMint  # imports PyJWT: the parser under test
    from taskmesh_common.tokens import SyncTokenVerifier, TokenError, VerifierConfig

MINT = TokenMint()
VERIFIER = SyncTokenVerifier(
    config=VerifierConfig(issuer=MINT.issuer, audience="taskmesh-tasks"),
    jwks_url="http://auth.invalid/.well-known/jwks.json",
    http=httpx.Client(transport=MINT.transport()),
    jwks_ttl=1e9,
)
CLAIMS = ("iss", "sub", "aud", "iat", "nbf", "exp", "jti", "kind", "roles", "scope")
HEADERS = ("alg", "typ", "kid", "jku", "crit", "x5u")


def _value(fdp: atheris.FuzzedDataProvider) -> Any:
    """A JSON value of any type, biased towards the ones claims really hold."""
    now = int(time.time())
    choice = fdp.ConsumeIntInRange(0, 11)
    if choice == 0:
        return fdp.ConsumeUnicodeNoSurrogates(20)
    if choice == 1:
        return fdp.ConsumeInt(8)
    if choice == 2:
        return fdp.ConsumeFloat()
    if choice == 3:
        return now + fdp.ConsumeIntInRange(-1000, 1000)
    if choice == 4:
        return [fdp.ConsumeUnicodeNoSurrogates(8) for _ in range(fdp.ConsumeIntInRange(0, 3))]
    if choice == 5:
        return None
    if choice == 6:
        return fdp.ConsumeBool()
    if choice == 7:
        return {"nested": fdp.ConsumeUnicodeNoSurrogates(5)}
    if choice == 8:
        return fdp.PickValueInList(["user", "service", "admin", "taskmesh-tasks", "at+jwt"])
    if choice == 9:
        return fdp.PickValueInList(["EdDSA", "none", "HS256", "RS256", "ES256"])
    if choice == 10:
        return str(uuid.uuid4())
    return fdp.PickValueInList([float("inf"), float("nan"), 10**30, -(10**30), 1e300])


def _structured(fdp: atheris.FuzzedDataProvider) -> str:
    """A token signed by the trusted key whose header and claims the fuzzer chose."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": MINT.issuer,
        "sub": str(uuid.uuid4()),
        "aud": ["taskmesh-tasks"],
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "jti": "j",
        "kind": "user",
        "roles": ["user"],
        "scope": "",
    }
    header: dict[str, Any] = {"alg": "EdDSA", "typ": "at+jwt", "kid": MINT.kid}
    for _ in range(fdp.ConsumeIntInRange(0, 4)):
        if fdp.ConsumeBool():
            claims[fdp.PickValueInList(list(CLAIMS))] = _value(fdp)
        else:
            header[fdp.PickValueInList(list(HEADERS))] = _value(fdp)
    if fdp.ConsumeBool():
        claims.pop(fdp.PickValueInList(list(CLAIMS)), None)

    def part(document: dict[str, Any]) -> str:
        raw = json.dumps(document, allow_nan=True).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    signing_input = f"{part(header)}.{part(claims)}"
    signature = MINT.private_key.sign(signing_input.encode())
    return f"{signing_input}.{base64.urlsafe_b64encode(signature).decode().rstrip('=')}"


def check(data: bytes) -> None:
    """Verify one token built from `data`; only `TokenError` may come out."""
    fdp = atheris.FuzzedDataProvider(data)
    mode = fdp.ConsumeIntInRange(0, 2)
    if mode == 0:
        token = fdp.ConsumeUnicode(fdp.remaining_bytes())
    elif mode == 1:
        token = _structured(fdp)
    else:  # a real token with some bytes changed
        token = MINT.issue(uuid.uuid4(), audience="taskmesh-tasks")
        raw = bytearray(token.encode())
        for _ in range(fdp.ConsumeIntInRange(1, 4)):
            raw[fdp.ConsumeIntInRange(0, len(raw) - 1)] = fdp.ConsumeIntInRange(32, 126)
        token = raw.decode()
    with contextlib.suppress(TokenError):
        VERIFIER.verify(token)
