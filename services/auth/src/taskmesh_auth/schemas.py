"""Request and response bodies of the auth API."""

from __future__ import annotations

import unicodedata
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from taskmesh_auth.models import TokenPair, User


def _no_control_characters(value: str) -> str:
    # PostgreSQL text cannot hold NUL, and lone surrogates cannot be encoded: refuse them as input.
    if any(unicodedata.category(char) in ("Cc", "Cs") for char in value):
        raise ValueError("must not contain control characters")
    return value


def _valid_email(value: str) -> str:
    _no_control_characters(value)
    try:
        result = validate_email(value, check_deliverability=False, globally_deliverable=False)
    except EmailNotValidError as exc:
        raise ValueError(str(exc)) from exc
    return result.normalized


Email = Annotated[
    str,
    StringConstraints(min_length=3, max_length=254),
    AfterValidator(_valid_email),
    Field(json_schema_extra={"format": "email"}),
]
# Printable text with at least one non-space character (no C0/C1 control characters).
_VISIBLE = (
    r"^[^\u0000-\u001f\u007f-\u009f]*"
    r"[^\s\u0000-\u001f\u007f-\u009f]"
    r"[^\u0000-\u001f\u007f-\u009f]*$"
)
DisplayName = Annotated[
    str,
    StringConstraints(min_length=1, max_length=100, pattern=_VISIBLE),
    AfterValidator(_no_control_characters),
]
Password = Annotated[str, StringConstraints(min_length=1, max_length=256)]
NewPassword = Annotated[str, StringConstraints(min_length=12, max_length=256)]
Secret = Annotated[str, StringConstraints(min_length=1, max_length=512)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RegisterIn(_Body):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "email": "ada@example.com",
                    "display_name": "Ada",
                    "password": "correct horse battery staple",
                }
            ]
        }
    )

    email: Email
    display_name: DisplayName
    password: NewPassword


class LoginIn(_Body):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"email": "ada@example.com", "password": "correct horse battery staple"}]
        }
    )

    email: Email
    password: Password


class RefreshIn(_Body):
    refresh_token: Secret


class ProfileUpdateIn(_Body):
    model_config = ConfigDict(json_schema_extra={"examples": [{"display_name": "Ada Lovelace"}]})

    display_name: DisplayName


class PasswordChangeIn(_Body):
    current_password: Password
    new_password: NewPassword


class PasswordIn(_Body):
    password: Password


class UserOut(BaseModel):
    id: uuid.UUID
    email: str
    display_name: str
    roles: list[Literal["user", "admin"]]
    created_at: datetime
    version: int

    @classmethod
    def of(cls, user: User) -> UserOut:
        """The public view of an account (no password hash)."""
        return cls(
            id=user.id,
            email=user.email,
            display_name=user.display_name,
            roles=[r for r in user.roles if r in ("user", "admin")],
            created_at=user.created_at,
            version=user.version,
        )


class TokenPairOut(BaseModel):
    access_token: str
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int
    refresh_token: str
    refresh_expires_in: int

    @classmethod
    def of(cls, pair: TokenPair) -> TokenPairOut:
        """The response of a login or refresh."""
        return cls(
            access_token=pair.access_token,
            expires_in=pair.expires_in,
            refresh_token=pair.refresh_token,
            refresh_expires_in=pair.refresh_expires_in,
        )


class ServiceTokenOut(BaseModel):
    access_token: str
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int
    scope: str


class JwkOut(BaseModel):
    kty: str
    crv: str
    x: str
    kid: str
    use: str
    alg: str


class JwksOut(BaseModel):
    keys: list[JwkOut]


class ProblemOut(BaseModel):
    """RFC 9457 problem details."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[dict[str, Any]] | None = None
