"""Settings: env prefix, dev secrets refused in production, `_FILE` secrets."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError
from pydantic_settings import SettingsConfigDict
from taskmesh_common.settings import ServiceSettings, dev_secret


class DemoSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="DEMO_", extra="ignore", frozen=True)

    database_url: str = "postgresql://localhost/demo"
    signing_key: SecretStr = dev_secret("dev-only-signing-key")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TASKMESH_ENV", "DEMO_DATABASE_URL", "DEMO_SIGNING_KEY", "DEMO_SIGNING_KEY_FILE"):
        monkeypatch.delenv(name, raising=False)


def test_values_come_from_prefixed_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKMESH_ENV", "development")
    monkeypatch.setenv("DEMO_DATABASE_URL", "postgresql://db/other")
    settings = DemoSettings()
    assert settings.database_url == "postgresql://db/other"
    assert settings.environment == "development"


@pytest.mark.parametrize("environment", ["development", "test"])
def test_dev_secret_default_is_fine_in_development(
    monkeypatch: pytest.MonkeyPatch, environment: str
) -> None:
    monkeypatch.setenv("TASKMESH_ENV", environment)
    assert DemoSettings().signing_key.get_secret_value() == "dev-only-signing-key"


def test_dev_secret_default_is_refused_in_production() -> None:
    with pytest.raises(ValidationError, match="DEMO_SIGNING_KEY must be set"):
        DemoSettings()  # TASKMESH_ENV defaults to production


def test_production_accepts_a_real_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKMESH_ENV", "production")
    monkeypatch.setenv("DEMO_SIGNING_KEY", "a-real-secret")
    assert DemoSettings().signing_key.get_secret_value() == "a-real-secret"


def test_secret_can_come_from_a_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    secret = tmp_path / "signing_key"
    secret.write_text("from-a-file\n")
    monkeypatch.setenv("TASKMESH_ENV", "production")
    monkeypatch.setenv("DEMO_SIGNING_KEY_FILE", str(secret))
    assert DemoSettings().signing_key.get_secret_value() == "from-a-file"


def test_explicit_env_wins_over_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    secret = tmp_path / "signing_key"
    secret.write_text("from-a-file")
    monkeypatch.setenv("TASKMESH_ENV", "production")
    monkeypatch.setenv("DEMO_SIGNING_KEY_FILE", str(secret))
    monkeypatch.setenv("DEMO_SIGNING_KEY", "from-env")
    assert DemoSettings().signing_key.get_secret_value() == "from-env"


def test_unknown_environment_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKMESH_ENV", "staging")
    with pytest.raises(ValidationError):
        DemoSettings()
