"""Auth service settings, read from `AUTH_*` environment variables."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict
from taskmesh_common.settings import ServiceSettings, dev_secret

# OWASP's minimum for argon2id: 19 MiB of memory, 2 iterations, 1 lane.
ARGON2_MIN_MEMORY_KIB = 19 * 1024
ARGON2_MIN_TIME_COST = 2

USER_AUDIENCES = ("taskmesh-auth", "taskmesh-tasks", "taskmesh-activity")
USER_SCOPES = ("profile", "tasks:read", "tasks:write", "activity:read")


class ClientConfig(BaseModel):
    """A service client of the client-credentials grant: its secret and, per audience, scopes."""

    model_config = {"frozen": True}

    id: str = Field(min_length=1)
    secret: SecretStr | None = None
    secret_file: Path | None = None
    audiences: dict[str, list[str]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _load_secret(self) -> ClientConfig:
        if self.secret is None and self.secret_file is not None:
            value = self.secret_file.read_text(encoding="utf-8").strip()
            object.__setattr__(self, "secret", SecretStr(value))
        if self.secret is None or len(self.secret.get_secret_value()) < 16:
            raise ValueError(f"client {self.id!r} needs a secret of at least 16 characters")
        return self


class AuthSettings(ServiceSettings):
    """Everything the auth service reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="AUTH_", extra="ignore", frozen=True)

    database_url: str = "postgresql://taskmesh@127.0.0.1:5432/taskmesh_auth"
    redis_url: str = "redis://127.0.0.1:6379/0"
    pool_size: int = Field(default=4, ge=1, le=64)

    issuer: str = "taskmesh-auth"
    audience: str = "taskmesh-auth"
    client_id: str = Field(
        default="taskmesh-auth", description="auth's own client id when it calls other services"
    )
    key_encryption_secret: SecretStr = dev_secret(
        "dev-only-taskmesh-auth-key-encryption-secret",
        "encrypts the private signing keys stored in the auth database",
    )
    access_token_ttl: int = Field(default=600, ge=30, le=3600)
    service_token_ttl: int = Field(default=600, ge=30, le=3600)
    refresh_token_ttl: int = Field(default=30 * 24 * 3600, ge=60)
    key_activation_delay: float = Field(
        default=5.0,
        ge=0,
        # > JWKS cache (1 s) + verifiers' unknown-kid refetch interval (1 s), with a margin.
        description="a new signing key is published this long before it signs (verifiers refetch)",
    )
    key_reload_interval: float = Field(default=2.0, gt=0)

    argon2_time_cost: int = Field(default=ARGON2_MIN_TIME_COST, ge=1)
    argon2_memory_kib: int = Field(default=ARGON2_MIN_MEMORY_KIB, ge=8)
    argon2_parallelism: int = Field(default=1, ge=1)

    login_account_limits: str = "10/minute;50/hour"
    login_ip_limits: str = "30/minute;300/hour"
    throttle_timeout: float = Field(default=1.0, gt=0, le=5)
    trusted_proxies: list[str] = Field(default_factory=lambda: ["127.0.0.1/32", "::1/128"])

    clients: list[ClientConfig] = Field(default_factory=list)
    admin_email: str | None = None
    admin_password: SecretStr | None = None

    tasks_url: str | None = None
    activity_url: str | None = None
    tasks_audience: str = "taskmesh-tasks"
    activity_audience: str = "taskmesh-activity"
    downstream_timeout: float = Field(default=5.0, gt=0)

    @field_validator("tasks_url", "activity_url", "admin_email", "admin_password", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("clients", "trusted_proxies", mode="before")
    @classmethod
    def _json_text(cls, value: object) -> object:
        # `AUTH_CLIENTS_FILE` contents arrive as text; environment values come decoded already.
        return json.loads(value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _argon2_floor(self) -> AuthSettings:
        # Only the test suite may lower the cost, to keep unrelated tests fast.
        weak = (
            self.argon2_memory_kib < ARGON2_MIN_MEMORY_KIB
            or self.argon2_time_cost < ARGON2_MIN_TIME_COST
        )
        if weak and self.environment != "test":
            raise ValueError("argon2 parameters are below the OWASP minimum (m=19 MiB, t=2)")
        return self
