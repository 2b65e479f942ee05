"""A tiny app for the serving tests; its lifespan shutdown leaves a mark in $SERVING_TEST_MARK.

uvicorn's log also goes to $SERVING_TEST_LOG through a buffer that writes only when flushed (as
the services' batched JSON handler does).
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from logging.handlers import MemoryHandler
from pathlib import Path

from fastapi import FastAPI


def create_app() -> FastAPI:
    """The app: one route, and a lifespan that records its shutdown."""
    target = logging.FileHandler(os.environ["SERVING_TEST_LOG"], encoding="utf-8")
    buffered = MemoryHandler(capacity=10_000, flushLevel=logging.CRITICAL, target=target)
    logging.getLogger("uvicorn.error").addHandler(buffered)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        Path(os.environ["SERVING_TEST_MARK"]).write_text("shut down", encoding="utf-8")  # noqa: ASYNC240 - a test mark

    app = FastAPI(lifespan=lifespan)

    @app.get("/ping")
    async def ping() -> dict[str, bool]:
        return {"ok": True}

    return app
