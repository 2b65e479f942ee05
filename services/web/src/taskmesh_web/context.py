"""What every request reaches: settings, the backend client and Redis, built by `create_app`."""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import redis
from flask import current_app

from taskmesh_web.clients import Backend
from taskmesh_web.config import WebSettings

EXTENSION = "taskmesh_web"

T = TypeVar("T")


@dataclass(frozen=True)
class WebContext:
    """The app's long-lived resources."""

    settings: WebSettings
    backend: Backend
    redis: redis.Redis
    pool: ThreadPoolExecutor

    def submit(self, call: Callable[..., T], /, **kwargs: Any) -> Future[T]:
        """Run a backend call in the background, keeping the request id (a context variable)."""
        context = contextvars.copy_context()
        return self.pool.submit(lambda: context.run(call, **kwargs))


def web() -> WebContext:
    """The current app's resources."""
    context: WebContext = current_app.extensions[EXTENSION]
    return context
