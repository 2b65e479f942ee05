"""Password hashing (argon2id, off the event loop) and the password policy."""

from __future__ import annotations

import asyncio
import secrets
import unicodedata
from functools import cache
from importlib import resources

from argon2 import PasswordHasher, Type, extract_parameters
from argon2.exceptions import InvalidHashError, VerificationError

from taskmesh_auth.models import WeakPasswordError

MIN_LENGTH = 12
MAX_LENGTH = 256
_TRAILING_NOISE = "0123456789!@#$%^&*()-_=+.,?~ "


@cache
def common_passwords() -> frozenset[str]:
    """The shipped list of the most common passwords, lower-cased."""
    text = resources.files("taskmesh_auth").joinpath("data/common-passwords.txt").read_text("utf-8")
    return frozenset(
        line.strip().lower() for line in text.splitlines() if line and not line.startswith("#")
    )


def check_policy(password: str, *, email: str = "") -> None:
    """Raise :class:`WeakPasswordError` unless the password is long and not a common one."""
    if len(password) < MIN_LENGTH:
        raise WeakPasswordError(f"The password must have at least {MIN_LENGTH} characters.")
    if len(password) > MAX_LENGTH:
        raise WeakPasswordError(f"The password must have at most {MAX_LENGTH} characters.")
    folded = unicodedata.normalize("NFKC", password).lower()
    stem = folded.rstrip(_TRAILING_NOISE)
    listed = common_passwords()
    # "password2024!" is as guessable as "password": check the stem without trailing noise too.
    if folded in listed or (len(stem) >= 4 and stem in listed) or len(set(folded)) < 4:
        raise WeakPasswordError("This password is too common; choose a less guessable one.")
    if email and email.split("@")[0].lower() in folded and len(email.split("@")[0]) >= 4:
        raise WeakPasswordError("The password must not contain your email address.")


class Hasher:
    """argon2id hashing that runs in worker threads and knows when a stored hash is outdated."""

    def __init__(self, *, time_cost: int, memory_kib: int, parallelism: int) -> None:
        self._hasher = PasswordHasher(
            time_cost=time_cost,
            memory_cost=memory_kib,
            parallelism=parallelism,
            type=Type.ID,
        )
        self._dummy: str | None = None

    async def prepare(self) -> None:
        """Compute the dummy hash up front so the first unknown-user login is not slower."""
        await self._dummy_hash()

    async def hash(self, password: str) -> str:
        """Hash a new password."""
        return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, stored: str | None, password: str) -> bool:
        """Check a password; with no stored hash, burn the same time on a dummy one."""
        if stored is None:
            stored = await self._dummy_hash()
        return await asyncio.to_thread(self._verify, stored, password)

    def needs_rehash(self, stored: str) -> bool:
        """Whether the stored hash is weaker than the current parameters (never downgrades)."""
        try:
            old = extract_parameters(stored)
        except InvalidHashError:
            return True
        new = self._hasher
        return (
            old.type is not Type.ID
            or old.memory_cost < new.memory_cost
            or old.time_cost < new.time_cost
            or old.hash_len < new.hash_len
            or old.salt_len < new.salt_len
        )

    def _verify(self, stored: str, password: str) -> bool:
        try:
            return self._hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return False

    async def _dummy_hash(self) -> str:
        if self._dummy is None:
            self._dummy = await self.hash(secrets.token_urlsafe(24))
        return self._dummy
