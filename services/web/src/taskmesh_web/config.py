"""Settings of the web service, read from `WEB_*` environment variables."""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict
from taskmesh_common.settings import ServiceSettings, dev_secret


class WebSettings(ServiceSettings):
    """Where the backends are, where sessions live, and how the UI is served."""

    model_config = SettingsConfigDict(env_prefix="WEB_", extra="ignore", frozen=True)

    auth_url: str = "http://127.0.0.1:8002"
    tasks_url: str = "http://127.0.0.1:8003"
    activity_url: str = "http://127.0.0.1:8004"
    redis_url: str = "redis://127.0.0.1:6379/0"
    secret_key: SecretStr = dev_secret(
        "dev-only-web-session-secret", "signs CSRF tokens; set a long random value in production"
    )
    public_url: str = "http://127.0.0.1:8001"
    session_ttl_seconds: int = 14 * 24 * 3600
    backend_timeout_seconds: float = 5.0
    backend_retries: int = 2
    page_size: int = 50
    activity_panel_size: int = 10

    @property
    def secure_cookies(self) -> bool:
        """Cookies get `Secure` and the `__Host-` prefix when users reach us over HTTPS."""
        return urlsplit(self.public_url).scheme == "https"

    @property
    def session_cookie_name(self) -> str:
        """`__Host-` binds the cookie to this exact origin; browsers accept it only over HTTPS."""
        return "__Host-taskmesh" if self.secure_cookies else "taskmesh_session"

    @property
    def public_origin(self) -> str:
        """The scheme://host[:port] users see, for the cross-site request check."""
        parts = urlsplit(self.public_url)
        return f"{parts.scheme}://{parts.netloc}"
