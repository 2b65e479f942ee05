"""Tasks service settings, read from `TASKS_*` environment variables."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict
from taskmesh_common.settings import ServiceSettings


class TasksSettings(ServiceSettings):
    """Everything the tasks service reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="TASKS_", extra="ignore", frozen=True)

    database_url: str = "postgresql://taskmesh@127.0.0.1:5432/taskmesh_tasks"
    redis_url: str = "redis://127.0.0.1:6379/0"
    jwks_url: str = "http://127.0.0.1:8002/.well-known/jwks.json"
    token_issuer: str = "taskmesh-auth"
    token_audience: str = "taskmesh-tasks"
    pool_size: int = Field(default=4, ge=1, le=64, description="PostgreSQL connections per worker")
    redis_timeout: float = Field(default=0.5, gt=0, le=10, description="Redis socket timeout (s)")
    relay_batch_size: int = Field(default=200, ge=1, le=10_000)
    relay_poll_interval: float = Field(
        default=0.25, gt=0, le=10, description="how often the relay looks for other replicas' rows"
    )
    stream_max_length: int = Field(
        default=1_000_000, ge=1000, description="approximate cap on the event stream's length"
    )
    idempotency_retention_hours: int = Field(default=24, ge=1)
