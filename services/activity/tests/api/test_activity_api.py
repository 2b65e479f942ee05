"""The activity API over HTTP: authentication, the feed, pagination, purge, operations."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from taskmesh.testing.tokens import TokenMint
from taskmesh_activity import streams
from taskmesh_activity.config import ActivitySettings
from taskmesh_activity.feed import entry_for
from taskmesh_activity.main import create_app
from taskmesh_activity.repository import ActivityRepository
from taskmesh_common.tokens import not_before_key

pytestmark = pytest.mark.usefixtures("clean")

AUDIENCE = ["taskmesh-auth", "taskmesh-tasks", "taskmesh-activity"]
USER_SCOPES = ("profile", "tasks:read", "tasks:write", "activity:read")


@pytest.fixture
async def client(
    activity_settings: ActivitySettings, token_mint: TokenMint
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(activity_settings, jwks_transport=token_mint.transport())
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://activity") as http:
            yield http


def user_headers(mint: TokenMint, owner: uuid.UUID, **kwargs: Any) -> dict[str, str]:
    kwargs.setdefault("scopes", USER_SCOPES)
    token = mint.issue(owner, audience=AUDIENCE, **kwargs)
    return {"Authorization": f"Bearer {token}"}


def service_headers(mint: TokenMint, scopes: tuple[str, ...]) -> dict[str, str]:
    token = mint.issue(
        "auth-service", audience="taskmesh-activity", kind="service", roles=(), scopes=scopes
    )
    return {"Authorization": f"Bearer {token}"}


async def seed(repo: ActivityRepository, events: Any, owner: uuid.UUID, count: int) -> None:
    for number in range(1, count + 1):
        event = events.created(owner, number, title=f"Task {number}")
        await repo.apply(entry_for(event), stream_id=f"1-{number}")


async def test_feed_is_the_callers_own_newest_first(
    client: httpx.AsyncClient, repo: ActivityRepository, events: Any, token_mint: TokenMint
) -> None:
    me, other = uuid.uuid4(), uuid.uuid4()
    await seed(repo, events, me, 3)
    await seed(repo, events, other, 2)
    reset = events.reset(me, 3)
    await repo.apply(entry_for(reset), stream_id="2-0")

    response = await client.get("/v1/activity", headers=user_headers(token_mint, me))
    assert response.status_code == 200
    body = response.json()
    assert [item["summary"] for item in body["items"]] == [
        "You reset your board (3 tasks removed)",
        "You created #3 Task 3",
        "You created #2 Task 2",
        "You created #1 Task 1",
    ]
    assert body["next_cursor"] is None
    first = body["items"][0]
    assert set(first) == {
        "id",
        "event_id",
        "type",
        "task_number",
        "title",
        "summary",
        "occurred_at",
    }
    assert first["event_id"] == str(reset.id)
    assert (first["type"], first["task_number"], first["title"]) == ("tasks.reset", None, None)


async def test_cursor_pagination_walks_every_entry_once(
    client: httpx.AsyncClient, repo: ActivityRepository, events: Any, token_mint: TokenMint
) -> None:
    me = uuid.uuid4()
    await seed(repo, events, me, 25)
    headers = user_headers(token_mint, me)
    seen: list[int] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 10}
        if cursor:
            params["cursor"] = cursor
        body = (await client.get("/v1/activity", params=params, headers=headers)).json()
        seen.extend(item["task_number"] for item in body["items"])
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert seen == list(range(25, 0, -1))


async def test_task_filter(
    client: httpx.AsyncClient, repo: ActivityRepository, events: Any, token_mint: TokenMint
) -> None:
    me = uuid.uuid4()
    await seed(repo, events, me, 3)
    done = events.updated(me, 2, before={"title": "Task 2"}, after={"status": "done"})
    await repo.apply(entry_for(done), stream_id="3-0")
    response = await client.get(
        "/v1/activity", params={"task": 2}, headers=user_headers(token_mint, me)
    )
    assert [i["summary"] for i in response.json()["items"]] == [
        "You completed #2 Task 2",
        "You created #2 Task 2",
    ]


@pytest.mark.parametrize(
    "params",
    [{"limit": 0}, {"limit": 101}, {"limit": "x"}, {"task": 0}, {"task": "abc"}],
)
async def test_bad_parameters_are_422_problems(
    client: httpx.AsyncClient, token_mint: TokenMint, params: dict[str, Any]
) -> None:
    response = await client.get(
        "/v1/activity", params=params, headers=user_headers(token_mint, uuid.uuid4())
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"]


@pytest.mark.parametrize("cursor", ["garbage", "MjAyNi0wMS0wMVQxMjowMDowMHwx", "x" * 200])
async def test_malformed_cursor_is_a_400_problem(
    client: httpx.AsyncClient, token_mint: TokenMint, cursor: str
) -> None:
    response = await client.get(
        "/v1/activity", params={"cursor": cursor}, headers=user_headers(token_mint, uuid.uuid4())
    )
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"


async def test_etag_and_not_modified(
    client: httpx.AsyncClient, repo: ActivityRepository, events: Any, token_mint: TokenMint
) -> None:
    me = uuid.uuid4()
    await seed(repo, events, me, 1)
    headers = user_headers(token_mint, me)
    first = await client.get("/v1/activity", headers=headers)
    etag = first.headers["etag"]
    again = await client.get("/v1/activity", headers={**headers, "If-None-Match": etag})
    assert again.status_code == 304
    await seed(repo, events, me, 2)
    changed = await client.get("/v1/activity", headers={**headers, "If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.headers["etag"] != etag


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": "Bearer not-a-token"}, 401),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, 401),
    ],
)
async def test_unauthenticated_requests_are_401(
    client: httpx.AsyncClient, headers: dict[str, str], status: int
) -> None:
    response = await client.get("/v1/activity", headers=headers)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"


async def test_tokens_for_other_audiences_or_expired_are_401(
    client: httpx.AsyncClient, token_mint: TokenMint
) -> None:
    me = uuid.uuid4()
    wrong_audience = token_mint.issue(me, audience="taskmesh-tasks", scopes=USER_SCOPES)
    expired = token_mint.issue(
        me, audience=AUDIENCE, scopes=USER_SCOPES, iat=int(time.time()) - 900, exp=1
    )
    for token in (wrong_audience, expired):
        response = await client.get("/v1/activity", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401


async def test_missing_scope_or_service_caller_is_403(
    client: httpx.AsyncClient, token_mint: TokenMint
) -> None:
    no_scope = user_headers(token_mint, uuid.uuid4(), scopes=("tasks:read",))
    assert (await client.get("/v1/activity", headers=no_scope)).status_code == 403
    service = service_headers(token_mint, ("activity:read",))
    assert (await client.get("/v1/activity", headers=service)).status_code == 403


async def test_revoked_tokens_are_refused(
    client: httpx.AsyncClient, token_mint: TokenMint, redis: Redis
) -> None:
    me = uuid.uuid4()
    headers = user_headers(token_mint, me)
    await redis.set(not_before_key(str(me)), int(time.time()) + 5)
    response = await client.get("/v1/activity", headers=headers)
    assert response.status_code == 401
    assert "revoked" in response.json()["detail"]


async def test_purge_needs_a_service_with_the_purge_scope(
    client: httpx.AsyncClient, repo: ActivityRepository, events: Any, token_mint: TokenMint
) -> None:
    me, other = uuid.uuid4(), uuid.uuid4()
    await seed(repo, events, me, 4)
    await seed(repo, events, other, 1)
    path = f"/v1/internal/owners/{me}/activity"

    as_user = user_headers(token_mint, me, scopes=(*USER_SCOPES, "activity:purge"))
    assert (await client.delete(path, headers=as_user)).status_code == 403
    wrong_scope = service_headers(token_mint, ("tasks:purge",))
    assert (await client.delete(path, headers=wrong_scope)).status_code == 403

    purge = service_headers(token_mint, ("activity:purge",))
    response = await client.delete(path, headers=purge)
    assert response.status_code == 200
    assert response.json() == {"deleted": 4}
    feed = await client.get("/v1/activity", headers=user_headers(token_mint, me))
    assert feed.json()["items"] == []
    others = await client.get("/v1/activity", headers=user_headers(token_mint, other))
    assert len(others.json()["items"]) == 1
    bad_id = await client.delete("/v1/internal/owners/not-a-uuid/activity", headers=purge)
    assert bad_id.status_code == 422


async def test_internal_routes_answer_services_but_are_not_in_the_openapi_document(
    client: httpx.AsyncClient, repo: ActivityRepository, events: Any, token_mint: TokenMint
) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert "/v1/activity" in paths
    assert [path for path in paths if path.startswith("/v1/internal/")] == []
    owner = uuid.uuid4()
    await seed(repo, events, owner, 2)
    response = await client.delete(
        f"/v1/internal/owners/{owner}/activity",
        headers=service_headers(token_mint, ("activity:purge",)),
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"deleted": 2}


async def test_health_readiness_and_metrics(
    client: httpx.AsyncClient,
    events: Any,
    publish: Any,
    start_worker: Any,
    eventually: Any,
) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    owner = uuid.uuid4()
    for number in range(1, 4):
        await publish(events.created(owner, number))
    await publish(event=b"junk")

    ready = await client.get("/readyz")
    assert ready.status_code == 200
    checks = ready.json()["checks"]
    assert checks["postgres"]["status"] == "ok"
    assert checks["redis"]["status"] == "ok"
    assert checks["consumer"]["status"] == "ok"

    start_worker()

    async def metrics_show_the_work() -> str:
        text = (await client.get("/metrics")).text
        done = "activity_events_processed_total 3.0" in text
        return text if done and "activity_dead_letters_total 1.0" in text else ""

    text = await eventually(metrics_show_the_work)
    assert text, "metrics never showed the processed events"
    assert "activity_consumer_lag 0.0" in text
    assert "activity_dead_letter_backlog 1.0" in text
    consumer = (await client.get("/readyz")).json()["checks"]["consumer"]
    assert consumer["lag"] == 0
    assert consumer["pending"] == 0


async def test_readiness_fails_when_lag_exceeds_the_limit(
    activity_settings: ActivitySettings, token_mint: TokenMint, events: Any, publish: Any
) -> None:
    for number in range(1, 4):
        await publish(events.created(uuid.uuid4(), number))
    redis = Redis.from_url(activity_settings.redis_url)
    await streams.ensure_group(redis, activity_settings.stream, activity_settings.group)
    await redis.aclose()
    app = create_app(
        activity_settings.model_copy(update={"ready_max_lag": 2}),
        jwks_transport=token_mint.transport(),
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://activity") as http:
            response = await http.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["consumer"]["status"] == "fail"
