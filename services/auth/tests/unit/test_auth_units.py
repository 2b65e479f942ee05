"""Pure pieces: password policy, client address resolution, key encryption and publication."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag
from taskmesh_auth.config import AuthSettings
from taskmesh_auth.keys import KeyCipher, new_key, published
from taskmesh_auth.models import WeakPasswordError
from taskmesh_auth.passwords import Hasher, check_policy, common_passwords
from taskmesh_auth.throttle import client_address, parse_networks


def test_common_password_list_is_shipped() -> None:
    listed = common_passwords()
    assert len(listed) >= 9000
    assert "password" in listed
    assert "qazwsxedcrfv" in listed


@pytest.mark.parametrize(
    "password",
    ["short", "password1234", "PASSWORD1234", "Password2024!!", "1qaz2wsx3edc", "aaaabbbbaaaabbbb"],
)
def test_policy_rejects(password: str) -> None:
    with pytest.raises(WeakPasswordError):
        check_policy(password)


def test_policy_rejects_the_email_name() -> None:
    with pytest.raises(WeakPasswordError):
        check_policy("margaret-hamilton-1969", email="margaret-hamilton@example.com")


@pytest.mark.parametrize("password", ["correct horse battery staple", "T4sk-mesh/Auth~2026"])
def test_policy_accepts(password: str) -> None:
    check_policy(password, email="someone@example.com")


async def test_hasher_verifies_and_spots_weaker_hashes() -> None:
    cheap = Hasher(time_cost=1, memory_kib=64, parallelism=1)
    strong = Hasher(time_cost=2, memory_kib=19 * 1024, parallelism=1)
    stored = await cheap.hash("correct horse battery staple")
    assert stored.startswith("$argon2id$")
    assert await cheap.verify(stored, "correct horse battery staple")
    assert not await cheap.verify(stored, "wrong horse battery staple")
    assert not await cheap.verify("not a hash", "anything")
    assert not await cheap.verify(None, "anything")
    assert strong.needs_rehash(stored)
    assert not cheap.needs_rehash(stored)
    assert not cheap.needs_rehash(await strong.hash("x" * 12))


TRUSTED = parse_networks(["127.0.0.1/32", "10.0.0.0/8"])


@pytest.mark.parametrize(
    ("peer", "header", "expected"),
    [
        ("127.0.0.1", None, "127.0.0.1"),
        ("127.0.0.1", "198.51.100.4", "198.51.100.4"),
        ("127.0.0.1", "1.2.3.4, 198.51.100.4", "198.51.100.4"),
        ("127.0.0.1", "198.51.100.4, 10.1.2.3", "198.51.100.4"),
        ("127.0.0.1", "garbage, 198.51.100.4", "198.51.100.4"),
        ("127.0.0.1", "198.51.100.4, garbage", "127.0.0.1"),
        ("203.0.113.9", "198.51.100.4", "203.0.113.9"),
        ("127.0.0.1", "10.0.0.1, 10.0.0.2", "10.0.0.1"),
        (None, "198.51.100.4", "unknown"),
    ],
)
def test_client_address(peer: str | None, header: str | None, expected: str) -> None:
    assert client_address(peer, header, TRUSTED) == expected


def test_private_keys_are_encrypted_and_bound_to_their_kid() -> None:
    cipher = KeyCipher("a secret of reasonable length")
    key = new_key(cipher, activates_at=datetime.now(UTC))
    raw = cipher.decrypt(key.kid, key.private_encrypted)
    assert len(raw) == 32
    assert raw not in key.private_encrypted
    with pytest.raises(InvalidTag):
        KeyCipher("another secret").decrypt(key.kid, key.private_encrypted)
    with pytest.raises(InvalidTag):
        cipher.decrypt("other-kid", key.private_encrypted)
    assert "d" not in key.public_jwk
    assert key.public_jwk["kid"] == key.kid


def test_published_keeps_keys_until_their_tokens_expire() -> None:
    cipher = KeyCipher("a secret of reasonable length")
    now = datetime.now(UTC)
    ancient = new_key(cipher, activates_at=now - timedelta(hours=2))
    previous = new_key(cipher, activates_at=now - timedelta(hours=1))
    current = new_key(cipher, activates_at=now - timedelta(seconds=100))
    pending = new_key(cipher, activates_at=now + timedelta(seconds=5))
    keys = [current, ancient, pending, previous]
    kept = {k.kid for k in published(keys, now=now, max_token_age=720)}
    # `previous` was superseded 100 s ago: tokens it signed may still be alive.
    assert kept == {previous.kid, current.kid, pending.kid}
    soon = now + timedelta(seconds=700)
    assert {k.kid for k in published(keys, now=soon, max_token_age=720)} == {
        current.kid,
        pending.kid,
    }
    later = now + timedelta(seconds=1000)
    assert {k.kid for k in published(keys, now=later, max_token_age=720)} == {pending.kid}


def test_clients_can_come_from_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "web-secret"
    secret.write_text("a-client-secret-from-a-file\n")
    clients = tmp_path / "clients.json"
    clients.write_text(
        json.dumps(
            [{"id": "web", "secret_file": str(secret), "audiences": {"taskmesh-tasks": ["x"]}}]
        )
    )
    monkeypatch.setenv("AUTH_CLIENTS_FILE", str(clients))
    monkeypatch.setenv("TASKMESH_ENV", "test")
    settings = AuthSettings()
    assert settings.clients[0].id == "web"
    assert settings.clients[0].secret is not None
    assert settings.clients[0].secret.get_secret_value() == "a-client-secret-from-a-file"


def test_weak_argon2_parameters_are_refused_outside_tests(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKMESH_ENV", "development")
    monkeypatch.setenv("AUTH_ARGON2_MEMORY_KIB", "1024")
    with pytest.raises(ValueError, match="OWASP"):
        AuthSettings()


def test_the_dev_key_secret_is_refused_in_production(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKMESH_ENV", "production")
    with pytest.raises(ValueError, match="AUTH_KEY_ENCRYPTION_SECRET"):
        AuthSettings()
