"""Liveness (`/healthz`) and readiness (`/readyz`) endpoints with per-dependency status."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from fastapi import APIRouter, FastAPI, Request

from taskmesh_common.api import OrjsonResponse
from taskmesh_common.metrics import metrics_endpoint

ReadinessCheck = Callable[[], Awaitable[Any]]
"""A readiness check: raises when the dependency is unusable; may return details."""

CHECK_TIMEOUT_SECONDS = 2.0


async def run_checks(checks: Mapping[str, ReadinessCheck]) -> tuple[bool, dict[str, Any]]:
    """Run every check concurrently with a timeout; report each one's status."""

    async def one(check: ReadinessCheck) -> dict[str, Any]:
        started = time.perf_counter()
        try:
            details = await asyncio.wait_for(check(), CHECK_TIMEOUT_SECONDS)
        except Exception as exc:
            return {"status": "fail", "error": type(exc).__name__ or "error"}
        result: dict[str, Any] = {
            "status": "ok",
            "duration_ms": round((time.perf_counter() - started) * 1000, 2),
        }
        if isinstance(details, dict):
            result.update(details)
        return result

    names = list(checks)
    results = await asyncio.gather(*(one(checks[name]) for name in names))
    report = dict(zip(names, results, strict=True))
    return all(r["status"] == "ok" for r in results), report


def add_operational_routes(app: FastAPI) -> None:
    """Mount /healthz, /readyz and /metrics; readiness checks come from `app.state.readiness`."""
    router = APIRouter(include_in_schema=False)

    @router.get("/healthz")
    async def healthz() -> OrjsonResponse:
        return OrjsonResponse({"status": "ok"})

    @router.get("/readyz")
    async def readyz(request: Request) -> OrjsonResponse:
        checks: Mapping[str, ReadinessCheck] = getattr(request.app.state, "readiness", {})
        ready, report = await run_checks(checks)
        return OrjsonResponse(
            {"status": "ok" if ready else "fail", "checks": report},
            status_code=200 if ready else 503,
        )

    router.add_api_route("/metrics", metrics_endpoint, methods=["GET"])
    app.include_router(router)
