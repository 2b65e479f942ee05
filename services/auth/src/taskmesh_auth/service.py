"""What the auth service does: accounts, sessions (token pairs) and service tokens."""

from __future__ import annotations

import hashlib
import logging
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from taskmesh_common.logging import security_event

from taskmesh_auth.downstream import OwnerPurger
from taskmesh_auth.issuer import TokenIssuer
from taskmesh_auth.models import (
    InvalidCredentialsError,
    InvalidRefreshTokenError,
    RefreshTokenReusedError,
    ServiceToken,
    ThrottledError,
    TokenPair,
    User,
    UserNotFoundError,
    VersionMismatchError,
)
from taskmesh_auth.passwords import Hasher, check_policy
from taskmesh_auth.repository import Repository
from taskmesh_auth.revocation import NotBefore
from taskmesh_auth.throttle import LoginThrottle

logger = logging.getLogger("taskmesh.auth.security")


@dataclass(frozen=True, slots=True)
class Sessions:
    """What issuing a session needs, bundled because every session function needs all of it."""

    issuer: TokenIssuer
    not_before: NotBefore
    refresh_ttl: int


def normalise_email(email: str) -> str:
    """The canonical form used for storage and lookup: trimmed and lower-cased."""
    return email.strip().lower()


def _hash_refresh(token: str) -> bytes:
    # Refresh tokens are 256-bit random strings, so a fast hash is enough to store them safely.
    return hashlib.sha256(token.encode()).digest()


async def _issue_pair(
    repo: Repository, sessions: Sessions, user: User, *, family_id: uuid.UUID | None = None
) -> TokenPair:
    refresh = secrets.token_urlsafe(32)
    await repo.add_refresh_token(
        token_hash=_hash_refresh(refresh),
        family_id=family_id or uuid.uuid4(),
        user_id=user.id,
        expires_at=datetime.now(UTC) + timedelta(seconds=sessions.refresh_ttl),
    )
    access = await sessions.issuer.user_token(user_id=user.id, roles=user.roles)
    return TokenPair(access, sessions.issuer.access_ttl, refresh, sessions.refresh_ttl)


async def register(
    repo: Repository, *, hasher: Hasher, email: str, display_name: str, password: str
) -> User:
    """Create a `user` account (raises `WeakPasswordError` or `EmailTakenError`)."""
    email = normalise_email(email)
    check_policy(password, email=email)
    password_hash = await hasher.hash(password)
    user = await repo.create_user(
        email=email, display_name=display_name.strip(), password_hash=password_hash, roles=["user"]
    )
    security_event(logger, "user_registered", user_id=str(user.id))
    return user


async def create_admin(repo: Repository, *, hasher: Hasher, email: str, password: str) -> User:
    """Create an admin, or make an existing account an admin with this password."""
    email = normalise_email(email)
    check_policy(password, email=email)
    password_hash = await hasher.hash(password)
    existing = await repo.user_by_email(email)
    if existing is None:
        user = await repo.create_user(
            email=email,
            display_name=email.split("@")[0],
            password_hash=password_hash,
            roles=["user", "admin"],
        )
    else:
        user = await repo.grant_admin(existing.id, password_hash)
    security_event(logger, "admin_created", user_id=str(user.id))
    return user


async def login(
    repo: Repository,
    *,
    hasher: Hasher,
    throttle: LoginThrottle,
    sessions: Sessions,
    email: str,
    password: str,
    client_ip: str,
) -> TokenPair:
    """Check the credentials (throttled) and open a session."""
    email = normalise_email(email)
    try:
        await throttle.admit(account=email, ip=client_ip)
    except ThrottledError:
        security_event(logger, "login_throttled", client_ip=client_ip)
        raise
    user = await repo.user_by_email(email)
    # Unknown accounts verify against a dummy hash: same work, same answer, same timing.
    valid = await hasher.verify(user.password_hash if user else None, password)
    if user is None or not valid:
        await throttle.failed(ip=client_ip)
        security_event(
            logger,
            "login_failed",
            user_id=str(user.id) if user else None,
            reason="bad_password" if user else "unknown_account",
            client_ip=client_ip,
        )
        raise InvalidCredentialsError
    await throttle.succeeded(account=email)
    if hasher.needs_rehash(user.password_hash):
        await repo.set_password_hash(user.id, await hasher.hash(password))
        security_event(logger, "password_rehashed", user_id=str(user.id))
    security_event(logger, "login_succeeded", user_id=str(user.id), client_ip=client_ip)
    return await _issue_pair(repo, sessions, user)


async def refresh(repo: Repository, *, sessions: Sessions, refresh_token: str) -> TokenPair:
    """Rotate a refresh token; a reused one revokes its whole family."""
    new_token = secrets.token_urlsafe(32)
    rotation = await repo.rotate_refresh_token(
        old_hash=_hash_refresh(refresh_token),
        new_hash=_hash_refresh(new_token),
        expires_at=datetime.now(UTC) + timedelta(seconds=sessions.refresh_ttl),
    )
    if rotation.reused:
        security_event(logger, "refresh_token_reused", user_id=str(rotation.user_id))
        raise RefreshTokenReusedError
    if rotation.user_id is None:
        raise InvalidRefreshTokenError
    user = await repo.user_by_id(rotation.user_id)
    if user is None:
        raise InvalidRefreshTokenError
    access = await sessions.issuer.user_token(user_id=user.id, roles=user.roles)
    security_event(logger, "session_refreshed", user_id=str(user.id))
    return TokenPair(access, sessions.issuer.access_ttl, new_token, sessions.refresh_ttl)


async def logout(repo: Repository, *, refresh_token: str) -> None:
    """End the session the refresh token belongs to (unknown tokens are ignored)."""
    user_id = await repo.revoke_family(_hash_refresh(refresh_token))
    if user_id is not None:
        security_event(logger, "logout", user_id=str(user_id))


async def logout_all(repo: Repository, *, not_before: NotBefore, user_id: uuid.UUID) -> None:
    """End every session of the user and void their access tokens."""
    await repo.revoke_user_tokens(user_id)
    await not_before.mark(str(user_id))
    security_event(logger, "logout_all", user_id=str(user_id))


async def profile(repo: Repository, *, user_id: uuid.UUID) -> User:
    """The caller's account."""
    user = await repo.user_by_id(user_id)
    if user is None:
        raise UserNotFoundError
    return user


async def rename(
    repo: Repository, *, user_id: uuid.UUID, display_name: str, expected_version: int
) -> User:
    """Change the display name if the caller saw the current version."""
    user = await repo.update_display_name(
        user_id, display_name=display_name.strip(), version=expected_version
    )
    if user is None:
        await profile(repo, user_id=user_id)
        raise VersionMismatchError
    return user


async def _check_password(
    repo: Repository,
    hasher: Hasher,
    throttle: LoginThrottle,
    *,
    user_id: uuid.UUID,
    password: str,
    client_ip: str,
) -> User:
    # Same budgets as login: a stolen access token must not become a password-guessing oracle.
    user = await profile(repo, user_id=user_id)
    await throttle.admit(account=user.email, ip=client_ip)
    if not await hasher.verify(user.password_hash, password):
        await throttle.failed(ip=client_ip)
        security_event(logger, "password_check_failed", user_id=str(user_id), client_ip=client_ip)
        raise InvalidCredentialsError
    await throttle.succeeded(account=user.email)
    return user


async def change_password(
    repo: Repository,
    *,
    hasher: Hasher,
    throttle: LoginThrottle,
    not_before: NotBefore,
    user_id: uuid.UUID,
    current_password: str,
    new_password: str,
    client_ip: str,
) -> None:
    """Replace the password; every session and access token of the user ends."""
    user = await _check_password(
        repo, hasher, throttle, user_id=user_id, password=current_password, client_ip=client_ip
    )
    check_policy(new_password, email=user.email)
    await repo.change_password(user.id, await hasher.hash(new_password))
    await not_before.mark(str(user.id))
    security_event(logger, "password_changed", user_id=str(user.id))


async def delete_account(
    repo: Repository,
    *,
    hasher: Hasher,
    throttle: LoginThrottle,
    not_before: NotBefore,
    purger: OwnerPurger,
    user_id: uuid.UUID,
    password: str,
    client_ip: str,
) -> None:
    """Delete the account and, first, the user's data in other services."""
    user = await _check_password(
        repo, hasher, throttle, user_id=user_id, password=password, client_ip=client_ip
    )
    # Void the tokens first so nothing new is written while the other services purge.
    await repo.revoke_user_tokens(user.id)
    await not_before.mark(str(user.id))
    await purger.purge(user.id)
    await repo.delete_user(user.id)
    security_event(logger, "account_deleted", user_id=str(user.id))


async def client_credentials(
    *, issuer: TokenIssuer, client_id: str, client_secret: str, audience: str
) -> ServiceToken:
    """The client-credentials grant (raises `InvalidClientError` or `AudienceNotAllowedError`)."""
    try:
        client = issuer.authenticate(client_id, client_secret)
    except Exception:
        security_event(logger, "client_auth_failed", client_id=client_id)
        raise
    token = await issuer.service_token(client, audience=audience)
    security_event(logger, "service_token_issued", client_id=client_id, audience=audience)
    return token
