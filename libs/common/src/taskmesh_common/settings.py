"""Settings base: environment-only config with a per-service prefix and guarded secrets."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Environment = Literal["development", "test", "production"]

_DEV_DEFAULT = "dev_default"


def env_or_file(name: str) -> str:
    """Read one variable from the environment or from the file named by ``<name>_FILE``."""
    value = os.environ.get(name)
    if value:
        return value
    path = os.environ.get(f"{name}_FILE")
    if path:
        return Path(path).read_text(encoding="utf-8").strip()
    raise KeyError(f"{name} (or {name}_FILE) must be set")


def dev_secret(default: str, description: str = "") -> Any:
    """A secret field whose default is usable only when TASKMESH_ENV is development or test."""
    return Field(
        default=SecretStr(default),
        description=description,
        json_schema_extra={_DEV_DEFAULT: True},
    )


class ServiceSettings(BaseSettings):
    """Base for every service's settings; subclasses set `env_prefix` (e.g. ``TASKS_``).

    Any field can also be read from a file named by ``<PREFIX><FIELD>_FILE`` (Docker/Kubernetes
    secrets). Secrets declared with :func:`dev_secret` refuse their default outside development.
    """

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    environment: Environment = Field(
        default="production",
        validation_alias="TASKMESH_ENV",
        description="development and test allow the built-in dev secrets; production refuses them",
    )
    log_level: str = "INFO"

    @model_validator(mode="before")
    @classmethod
    def _read_file_secrets(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        prefix = str(cls.model_config.get("env_prefix", ""))
        for name in cls.model_fields:
            env_name = f"{prefix}{name}".upper()
            file_var = os.environ.get(f"{env_name}_FILE")
            if file_var and name not in data and env_name not in os.environ:
                data[name] = Path(file_var).read_text(encoding="utf-8").strip()
        return data

    @model_validator(mode="after")
    def _refuse_dev_secrets_outside_development(self) -> ServiceSettings:
        if self.environment in ("development", "test"):
            return self
        prefix = str(self.model_config.get("env_prefix", ""))
        for name, field in type(self).model_fields.items():
            extra = field.json_schema_extra
            if isinstance(extra, dict) and extra.get(_DEV_DEFAULT):
                value = getattr(self, name)
                default = field.default
                if (
                    isinstance(value, SecretStr)
                    and isinstance(default, SecretStr)
                    and value.get_secret_value() == default.get_secret_value()
                ):
                    variable = f"{prefix}{name}".upper()
                    raise ValueError(f"{variable} must be set when TASKMESH_ENV={self.environment}")
        return self
