"""Domain records and errors of the auth service (no framework imports)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class User:
    """A registered account."""

    id: uuid.UUID
    email: str
    display_name: str
    password_hash: str
    roles: tuple[str, ...]
    created_at: datetime
    version: int


@dataclass(frozen=True, slots=True)
class TokenPair:
    """What a login or a refresh hands out."""

    access_token: str
    expires_in: int
    refresh_token: str
    refresh_expires_in: int


@dataclass(frozen=True, slots=True)
class ServiceToken:
    """What the client-credentials grant hands out."""

    access_token: str
    expires_in: int
    scope: str


class AuthError(Exception):
    """Base of the auth domain's expected failures."""


class InvalidCredentialsError(AuthError):
    """Wrong email or password (deliberately not saying which)."""


class InvalidRefreshTokenError(AuthError):
    """The refresh token is unknown, expired or revoked."""


class RefreshTokenReusedError(InvalidRefreshTokenError):
    """An already rotated refresh token came back: its whole family is now revoked."""


class EmailTakenError(AuthError):
    """Another account already uses this email."""


class WeakPasswordError(AuthError):
    """The password does not meet the policy; the message says why."""


class UserNotFoundError(AuthError):
    """The account does not exist (any more)."""


class VersionMismatchError(AuthError):
    """The caller's `If-Match` names an outdated version."""


class ThrottledError(AuthError):
    """Too many attempts; retry after `retry_after` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"retry after {retry_after} s")
        self.retry_after = retry_after


class InvalidClientError(AuthError):
    """Unknown client or wrong client secret."""


class AudienceNotAllowedError(AuthError):
    """The client may not ask for this audience."""


class DownstreamUnavailableError(AuthError):
    """Another service did not complete a call we depend on."""


class RevocationUnavailableError(AuthError):
    """The not-before mark could not be written, so access tokens were not revoked."""
