"""Problem handlers, the request id middleware and the operational routes on a small app."""

from __future__ import annotations

import io
import json
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator
from typing import ClassVar

import httpx
import pytest
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, Field
from taskmesh_common.api import install_problem_handlers
from taskmesh_common.health import add_operational_routes, run_checks
from taskmesh_common.logging import BatchedStreamHandler, JsonFormatter, request_id_var
from taskmesh_common.middleware import RequestContextMiddleware, accept_request_id
from taskmesh_common.problems import PROBLEM_CONTENT_TYPE, Problem


class Widget(BaseModel):
    name: str = Field(min_length=1)
    size: int = Field(ge=1)


def create_demo_app() -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)
    add_operational_routes(app)
    app.add_middleware(RequestContextMiddleware)

    @app.post("/widgets", status_code=201)
    async def create(widget: Widget) -> Widget:
        return widget

    @app.get("/widgets/{number}")
    async def read(number: int) -> dict[str, object]:
        if number == 7:
            raise Problem(404, "No widget #7.", title="Widget not found", number=7)
        if number == 8:
            raise HTTPException(status_code=409, detail="Busy.")
        if number == 9:
            raise RuntimeError("secret internals: password=hunter2")
        return {"number": number, "request_id": request_id_var.get()}

    async def database_ok() -> dict[str, object]:
        return {"pool": 4}

    async def redis_down() -> None:
        raise ConnectionError("refused")

    app.state.readiness = {"postgres": database_ok, "redis": redis_down}
    return app


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_demo_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://demo") as http:
        yield http


async def test_problem_is_rendered_as_problem_json(client: httpx.AsyncClient) -> None:
    response = await client.get("/widgets/7")
    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM_CONTENT_TYPE
    assert response.json() == {
        "type": "about:blank",
        "title": "Widget not found",
        "status": 404,
        "detail": "No widget #7.",
        "instance": "/widgets/7",
        "number": 7,
    }


async def test_http_exception_and_unknown_route_are_problems(client: httpx.AsyncClient) -> None:
    busy = await client.get("/widgets/8")
    assert busy.status_code == 409
    assert busy.json()["detail"] == "Busy."
    missing = await client.get("/nowhere")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == PROBLEM_CONTENT_TYPE
    assert missing.json()["title"] == "Not Found"


async def test_validation_errors_list_each_field(client: httpx.AsyncClient) -> None:
    response = await client.post("/widgets", json={"name": "", "size": 0})
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM_CONTENT_TYPE
    body = response.json()
    assert body["status"] == 422
    assert sorted(tuple(error["loc"]) for error in body["errors"]) == [
        ("body", "name"),
        ("body", "size"),
    ]


async def test_malformed_json_and_bad_path_are_422(client: httpx.AsyncClient) -> None:
    broken = await client.post(
        "/widgets", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert broken.status_code == 422
    assert (await client.get("/widgets/seven")).status_code == 422


async def test_crash_is_a_500_without_internals(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="taskmesh.errors"):
        response = await client.get("/widgets/9")
    assert response.status_code == 500
    assert response.headers["content-type"] == PROBLEM_CONTENT_TYPE
    assert response.json()["detail"] == "An unexpected error occurred."
    assert "hunter2" not in response.text
    assert "Traceback" not in response.text
    assert any(record.exc_info for record in caplog.records)  # the trace goes to the log only


async def test_request_id_is_kept_when_well_formed(client: httpx.AsyncClient) -> None:
    response = await client.get("/widgets/1", headers={"X-Request-ID": "abc-123"})
    assert response.headers["x-request-id"] == "abc-123"
    assert response.json()["request_id"] == "abc-123"


@pytest.mark.parametrize("incoming", [None, "", "bad id with spaces", "x" * 129, "<script>"])
async def test_request_id_is_replaced_when_missing_or_malformed(
    client: httpx.AsyncClient, incoming: str | None
) -> None:
    headers = {"X-Request-ID": incoming} if incoming is not None else {}
    response = await client.get("/widgets/1", headers=headers)
    minted = response.headers["x-request-id"]
    assert minted != incoming
    assert len(minted) == 32
    assert response.json()["request_id"] == minted


async def test_errors_carry_the_request_id_too(client: httpx.AsyncClient) -> None:
    response = await client.get("/widgets/7", headers={"X-Request-ID": "trace-me"})
    assert response.headers["x-request-id"] == "trace-me"


def test_accept_request_id() -> None:
    assert accept_request_id("a.b:c_d-1") == "a.b:c_d-1"
    assert accept_request_id("no/slashes") != "no/slashes"
    minted = accept_request_id(None)
    assert uuid.UUID(hex=minted).version == 4
    assert uuid.UUID(hex=minted).hex == minted
    assert minted != accept_request_id(None)


async def test_readiness_reports_each_dependency(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "fail"
    assert body["checks"]["postgres"]["status"] == "ok"
    assert body["checks"]["postgres"]["pool"] == 4
    assert body["checks"]["redis"] == {"status": "fail", "error": "ConnectionError"}
    assert (await client.get("/healthz")).json() == {"status": "ok"}


async def test_readiness_is_200_when_all_pass() -> None:
    async def ok() -> None:
        return None

    ready, report = await run_checks({"a": ok, "b": ok})
    assert ready
    assert set(report) == {"a", "b"}
    assert await run_checks({}) == (True, {})


async def test_metrics_count_requests_by_route_template(client: httpx.AsyncClient) -> None:
    await client.get("/widgets/1")
    metrics = (await client.get("/metrics")).text
    assert 'route="/widgets/{number}"' in metrics
    assert "http_request_duration_seconds_bucket" in metrics


def test_log_lines_are_json_with_request_id() -> None:
    record = logging.LogRecord("demo", logging.INFO, __file__, 1, "hello %s", ("you",), None)
    record.user = "u1"
    token = request_id_var.set("rid-1")
    try:
        line = JsonFormatter("demo").format(record)
    finally:
        request_id_var.reset(token)
    entry = json.loads(line)
    assert entry["msg"] == "hello you"
    assert entry["service"] == "demo"
    assert entry["request_id"] == "rid-1"
    assert entry["user"] == "u1"
    assert "\n" not in line


def test_log_lines_leave_the_caller_and_arrive_in_order_with_their_request_ids() -> None:
    class Stream(io.StringIO):
        writers: ClassVar[set[int]] = set()

        def write(self, text: str) -> int:
            self.writers.add(threading.get_ident())
            return super().write(text)

    stream = Stream()
    handler = BatchedStreamHandler(stream, interval=0.001)
    handler.setFormatter(JsonFormatter("demo"))
    logger = logging.getLogger("test.batched")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        for n in range(500):
            token = request_id_var.set(f"rid-{n}")
            try:
                logger.warning("line %d", n)
            finally:
                request_id_var.reset(token)
        deadline = time.monotonic() + 5
        while stream.getvalue().count("\n") < 500 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        logger.removeHandler(handler)
    entries = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [e["msg"] for e in entries] == [f"line {n}" for n in range(500)]
    assert [e["request_id"] for e in entries] == [f"rid-{n}" for n in range(500)]
    assert threading.get_ident() not in stream.writers  # the logging thread never wrote
