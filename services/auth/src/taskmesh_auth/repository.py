"""SQL for users, refresh tokens and signing keys (asyncpg)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from taskmesh_auth.keys import StoredKey
from taskmesh_auth.models import EmailTakenError, User

# Serialises first-start key creation across workers.
_KEY_LOCK = 0x7A5C_0A17


@dataclass(frozen=True, slots=True)
class Rotation:
    """The outcome of presenting a refresh token."""

    user_id: uuid.UUID | None
    reused: bool = False


def _user(row: asyncpg.Record) -> User:
    return User(
        id=row["id"],
        email=row["email"],
        display_name=row["display_name"],
        password_hash=row["password_hash"],
        roles=tuple(row["roles"]),
        created_at=row["created_at"],
        version=row["version"],
    )


async def _init_connection(connection: asyncpg.Connection) -> None:
    await connection.set_type_codec(
        "jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
    )


async def create_pool(dsn: str, *, size: int) -> asyncpg.Pool:
    """A small connection pool with a jsonb codec."""
    return await asyncpg.create_pool(
        dsn, min_size=1, max_size=size, init=_init_connection, command_timeout=10
    )


class Repository:
    """Every query of the auth service."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def create_user(
        self, *, email: str, display_name: str, password_hash: str, roles: Sequence[str]
    ) -> User:
        try:
            row = await self.pool.fetchrow(
                "INSERT INTO users (email, display_name, password_hash, roles)"
                " VALUES ($1, $2, $3, $4)"
                " RETURNING id, email, display_name, password_hash, roles, created_at, version",
                email,
                display_name,
                password_hash,
                list(roles),
            )
        except asyncpg.UniqueViolationError as exc:
            raise EmailTakenError(email) from exc
        assert row is not None
        return _user(row)

    async def user_by_email(self, email: str) -> User | None:
        row = await self.pool.fetchrow(
            "SELECT id, email, display_name, password_hash, roles, created_at, version"
            " FROM users WHERE email = $1",
            email,
        )
        return _user(row) if row else None

    async def user_by_id(self, user_id: uuid.UUID) -> User | None:
        row = await self.pool.fetchrow(
            "SELECT id, email, display_name, password_hash, roles, created_at, version"
            " FROM users WHERE id = $1",
            user_id,
        )
        return _user(row) if row else None

    async def set_password_hash(self, user_id: uuid.UUID, password_hash: str) -> None:
        """Store a rehashed password (same password, stronger parameters)."""
        await self.pool.execute(
            "UPDATE users SET password_hash = $2 WHERE id = $1", user_id, password_hash
        )

    async def change_password(self, user_id: uuid.UUID, password_hash: str) -> None:
        """Store a new password and revoke every refresh token of the user."""
        async with self.pool.acquire() as connection, connection.transaction():
            await connection.execute(
                "UPDATE users SET password_hash = $2, updated_at = now() WHERE id = $1",
                user_id,
                password_hash,
            )
            await connection.execute(_REVOKE_USER, user_id)

    async def update_display_name(
        self, user_id: uuid.UUID, *, display_name: str, version: int
    ) -> User | None:
        """Update when `version` is current; None when it is not (or the user is gone)."""
        row = await self.pool.fetchrow(
            "UPDATE users SET display_name = $2, version = version + 1, updated_at = now()"
            " WHERE id = $1 AND version = $3"
            " RETURNING id, email, display_name, password_hash, roles, created_at, version",
            user_id,
            display_name,
            version,
        )
        return _user(row) if row else None

    async def grant_admin(self, user_id: uuid.UUID, password_hash: str) -> User:
        """Make an existing user an admin with a new password."""
        async with self.pool.acquire() as connection, connection.transaction():
            row = await connection.fetchrow(
                "UPDATE users SET password_hash = $2, version = version + 1, updated_at = now(),"
                " roles = ARRAY(SELECT DISTINCT unnest(roles || ARRAY['admin']) ORDER BY 1)"
                " WHERE id = $1"
                " RETURNING id, email, display_name, password_hash, roles, created_at, version",
                user_id,
                password_hash,
            )
            await connection.execute(_REVOKE_USER, user_id)
        assert row is not None
        return _user(row)

    async def delete_user(self, user_id: uuid.UUID) -> bool:
        """Delete the account; its refresh tokens go with it (cascade)."""
        result = await self.pool.execute("DELETE FROM users WHERE id = $1", user_id)
        return bool(result.endswith(" 1"))

    async def add_refresh_token(
        self, *, token_hash: bytes, family_id: uuid.UUID, user_id: uuid.UUID, expires_at: datetime
    ) -> None:
        await self.pool.execute(
            "INSERT INTO refresh_tokens (token_hash, family_id, user_id, expires_at)"
            " VALUES ($1, $2, $3, $4)",
            token_hash,
            family_id,
            user_id,
            expires_at,
        )

    async def rotate_refresh_token(
        self, *, old_hash: bytes, new_hash: bytes, expires_at: datetime
    ) -> Rotation:
        """Spend `old_hash` and add its successor; a spent token coming back revokes its family."""
        async with self.pool.acquire() as connection, connection.transaction():
            row = await connection.fetchrow(
                "UPDATE refresh_tokens SET used_at = now()"
                " WHERE token_hash = $1 AND used_at IS NULL AND revoked_at IS NULL"
                " AND expires_at > now() RETURNING family_id, user_id",
                old_hash,
            )
            if row is not None:
                await connection.execute(
                    "INSERT INTO refresh_tokens (token_hash, family_id, user_id, expires_at)"
                    " VALUES ($1, $2, $3, $4)",
                    new_hash,
                    row["family_id"],
                    row["user_id"],
                    expires_at,
                )
                return Rotation(user_id=row["user_id"])
            spent = await connection.fetchrow(
                "SELECT family_id, user_id FROM refresh_tokens"
                " WHERE token_hash = $1 AND used_at IS NOT NULL",
                old_hash,
            )
            if spent is None:
                return Rotation(user_id=None)
            await connection.execute(
                "UPDATE refresh_tokens SET revoked_at = now()"
                " WHERE family_id = $1 AND revoked_at IS NULL",
                spent["family_id"],
            )
            return Rotation(user_id=spent["user_id"], reused=True)

    async def revoke_family(self, token_hash: bytes) -> uuid.UUID | None:
        """Revoke the session (family) the token belongs to; returns its user."""
        row = await self.pool.fetchrow(
            "UPDATE refresh_tokens SET revoked_at = now() WHERE revoked_at IS NULL AND family_id ="
            " (SELECT family_id FROM refresh_tokens WHERE token_hash = $1) RETURNING user_id",
            token_hash,
        )
        return row["user_id"] if row else None

    async def revoke_user_tokens(self, user_id: uuid.UUID) -> None:
        await self.pool.execute(_REVOKE_USER, user_id)

    async def list_keys(self) -> list[StoredKey]:
        rows = await self.pool.fetch(
            "SELECT kid, activates_at, public_jwk, private_key FROM signing_keys"
            " ORDER BY activates_at"
        )
        return [
            StoredKey(r["kid"], r["activates_at"], r["public_jwk"], r["private_key"]) for r in rows
        ]

    async def add_key(self, key: StoredKey, *, only_if_none: bool) -> bool:
        async with self.pool.acquire() as connection, connection.transaction():
            await connection.execute("SELECT pg_advisory_xact_lock($1)", _KEY_LOCK)
            if only_if_none and await connection.fetchval("SELECT count(*) FROM signing_keys"):
                return False
            await connection.execute(
                "INSERT INTO signing_keys (kid, activates_at, public_jwk, private_key)"
                " VALUES ($1, $2, $3, $4)",
                key.kid,
                key.activates_at,
                key.public_jwk,
                key.private_encrypted,
            )
            return True

    async def ping(self) -> dict[str, Any]:
        await self.pool.fetchval("SELECT 1")
        return {}


_REVOKE_USER = (
    "UPDATE refresh_tokens SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL"
)
