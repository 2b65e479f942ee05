"""Activity service settings, read from `ACTIVITY_*` environment variables."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict
from taskmesh_common.events import TASK_EVENTS_STREAM
from taskmesh_common.settings import ServiceSettings

DEAD_LETTER_STREAM = f"{TASK_EVENTS_STREAM}:dead"


class ActivitySettings(ServiceSettings):
    """Configuration of the activity API and its worker."""

    model_config = SettingsConfigDict(env_prefix="ACTIVITY_", extra="ignore", frozen=True)

    database_url: str = "postgresql://taskmesh@127.0.0.1:5432/taskmesh_activity"
    redis_url: str = "redis://127.0.0.1:6379/0"
    jwks_url: str = "http://127.0.0.1:8002/.well-known/jwks.json"
    issuer: str = "taskmesh-auth"
    audience: str = "taskmesh-activity"
    db_pool_size: int = Field(default=4, ge=1, le=50)

    stream: str = TASK_EVENTS_STREAM
    dead_letter_stream: str = DEAD_LETTER_STREAM
    dead_letter_maxlen: int = Field(default=100_000, ge=1_000)
    group: str = "taskmesh-activity"
    consumer: str | None = Field(
        default=None, description="consumer name; by default unique per process (host-pid-random)"
    )
    batch_size: int = Field(default=100, ge=1, le=1_000)
    block_ms: int = Field(default=1_000, ge=10, le=10_000, description="XREADGROUP wait")
    claim_idle_ms: int = Field(
        default=30_000, ge=100, description="a message pending this long is reclaimed (XAUTOCLAIM)"
    )
    claim_interval_ms: int = Field(default=5_000, ge=50, description="how often to look for them")
    max_deliveries: int = Field(
        default=5, ge=1, description="an event delivered this many times without success is dead"
    )
    max_backoff_seconds: float = Field(default=5.0, gt=0)
    ready_max_lag: int | None = Field(
        default=None, description="when set, /readyz fails once the consumer lag exceeds it"
    )
    metrics_refresh_seconds: float = Field(default=5.0, gt=0)
