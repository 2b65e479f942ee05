"""The API journey through the gateway: sign up, sign in, every task operation, the feed."""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING, Any

import httpx
import pytest

if TYPE_CHECKING:
    from conftest import Account, Running

pytestmark = pytest.mark.e2e


def wait_for_feed(
    client: httpx.Client, account: Account, expected: int, *, timeout: float = 20
) -> list[dict[str, Any]]:
    """The caller's activity feed once it holds at least `expected` items."""
    deadline = time.monotonic() + timeout
    items: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        response = client.get("/api/activity/v1/activity", headers=account.headers)
        assert response.status_code == 200, response.text
        items = response.json()["items"]
        if len(items) >= expected:
            return items
        time.sleep(0.2)
    raise AssertionError(f"the feed has {len(items)} items, expected {expected}: {items}")


def test_api_journey(taskmesh: Running) -> None:
    with taskmesh.client("127.0.0.21") as client:
        alice = taskmesh.register(client, "alice")
        bob = taskmesh.register(client, "bob")

        me = client.get("/api/auth/v1/me", headers=alice.headers)
        assert me.status_code == 200
        assert me.json()["email"] == alice.email

        # create (idempotently), read, conditional read
        key = {"Idempotency-Key": uuid.uuid4().hex}
        body = {"title": "write the gateway", "description": "nginx", "priority": 4}
        created = client.post("/api/tasks/v1/tasks", json=body, headers=alice.headers | key)
        assert created.status_code == 201, created.text
        replayed = client.post("/api/tasks/v1/tasks", json=body, headers=alice.headers | key)
        assert replayed.status_code == 201
        task = created.json()
        assert replayed.json()["id"] == task["id"]
        number = task["number"]
        # The service builds Location from X-Forwarded-Prefix: it works through the gateway.
        assert created.headers["location"].endswith(f"/api/tasks/v1/tasks/{number}")
        etag = created.headers["etag"]
        one = client.get(f"/api/tasks/v1/tasks/{number}", headers=alice.headers)
        assert one.json()["title"] == "write the gateway"
        cached = client.get(
            f"/api/tasks/v1/tasks/{number}", headers=alice.headers | {"If-None-Match": etag}
        )
        assert cached.status_code == 304

        # another user never sees it
        assert client.get(f"/api/tasks/v1/tasks/{number}", headers=bob.headers).status_code == 404
        assert client.get("/api/tasks/v1/tasks", headers=bob.headers).json()["items"] == []

        # update needs If-Match; a stale one is refused
        patch = {"status": "doing"}
        missing = client.patch(f"/api/tasks/v1/tasks/{number}", json=patch, headers=alice.headers)
        assert missing.status_code == 428
        assert missing.headers["content-type"] == "application/problem+json"
        updated = client.patch(
            f"/api/tasks/v1/tasks/{number}", json=patch, headers=alice.headers | {"If-Match": etag}
        )
        assert updated.status_code == 200, updated.text
        assert updated.json()["status"] == "doing"
        stale = client.patch(
            f"/api/tasks/v1/tasks/{number}",
            json={"priority": 1},
            headers=alice.headers | {"If-Match": etag},
        )
        assert stale.status_code == 412

        # list with a filter, delete by title, delete by number, counts
        for title in ("errand", "errand", "keep"):
            made = client.post("/api/tasks/v1/tasks", json={"title": title}, headers=alice.headers)
            assert made.status_code == 201
        listed = client.get(
            "/api/tasks/v1/tasks", params={"status": "doing"}, headers=alice.headers
        )
        assert [t["number"] for t in listed.json()["items"]] == [number]
        by_title = client.delete(
            "/api/tasks/v1/tasks", params={"title": "errand"}, headers=alice.headers
        )
        assert by_title.json() == {"deleted": 2}
        fresh_etag = updated.headers["etag"]
        deleted = client.delete(
            f"/api/tasks/v1/tasks/{number}", headers=alice.headers | {"If-Match": fresh_etag}
        )
        assert deleted.status_code == 204
        assert client.get(f"/api/tasks/v1/tasks/{number}", headers=alice.headers).status_code == 404
        counts = client.get("/api/tasks/v1/tasks/counts", headers=alice.headers).json()
        assert counts["total"] == 1

        # the events reached the activity feed (created x4, updated, deleted x3), newest first
        feed = wait_for_feed(client, alice, expected=8)
        types = [item["type"] for item in feed]
        assert types.count("task.created") == 4
        assert "task.updated" in types
        assert types.count("task.deleted") == 3
        assert wait_for_feed(client, bob, expected=0) == []

        # reset empties the board and restarts numbering
        reset = client.post("/api/tasks/v1/tasks/reset", headers=alice.headers)
        assert reset.json() == {"deleted": 1}
        again = client.post("/api/tasks/v1/tasks", json={"title": "again"}, headers=alice.headers)
        assert again.json()["number"] == 1
